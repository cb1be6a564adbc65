package remote

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestSourceOf(t *testing.T) {
	for addr, want := range map[string]string{
		"192.0.2.1:1122":          "192.0.2.1",
		"[::ffff:192.0.2.1]:1122": "192.0.2.1",
		"[2001:db8::1]:1122":      "2001:db8::/64",
		"[2001:db8::ffff:1]:9":    "2001:db8::/64",
		"[2001:db8:0:1::1]:9":     "2001:db8:0:1::/64",
		"[fe80::1%eth0]:1122":     "fe80::/64",
	} {
		a, err := net.ResolveTCPAddr("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := sourceOf(a); got != want {
			t.Errorf("sourceOf(%s) = %q, want %q", addr, got, want)
		}
	}
	if got := sourceOf(&net.UnixAddr{Name: "@", Net: "unix"}); got != "@" {
		t.Errorf("sourceOf(unix @) = %q", got)
	}
}

// silentConn is a TCP connection to the server, from the loopback address
// from, that never says a word.
type silentConn struct {
	net.Conn
	r *bufio.Reader
}

func dialSilent(t *testing.T, e *testEnv, from string) *silentConn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &silentConn{Conn: c, r: bufio.NewReader(c)}
}

// admitted reads what the server does with a connection that never speaks:
// an admitted one gets the server's version line (and the server then
// waits for the client's), a refused one is closed without a word.
func (c *silentConn) admitted(t *testing.T) bool {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := c.r.ReadString('\n')
	switch {
	case err == nil && strings.HasPrefix(line, "SSH-2.0-butterd"):
		return true
	case line == "" && closedByPeer(err):
		return false
	}
	t.Fatalf("from %s: read %q, %v: want the server's version line or the connection closed", c.LocalAddr(), line, err)
	return false
}

// closedLater requires the server to close an admitted connection.
func (c *silentConn) closedLater(t *testing.T) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	if n, err := c.r.Read(make([]byte, 1)); n != 0 || !closedByPeer(err) {
		t.Fatalf("from %s: read %d bytes, %v: want the connection closed by the server", c.LocalAddr(), n, err)
	}
}

func closedByPeer(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
}

// fromAddress makes the clients of e connect from the loopback address ip.
func fromAddress(e *testEnv, ip string) {
	e.opts.Dial = (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}).DialContext
}

// Connections that never authenticate take at most 8 handshake slots per
// source address and 32 in all; the excess is closed at once, and a peer
// connecting from elsewhere still gets through.
func TestServeBoundsHandshakes(t *testing.T) {
	e := newTestEnv(t, func(e *testEnv) { fromAddress(e, "127.0.0.9") })
	ctx := context.Background()
	for range DefaultMaxHandshakesPerIP {
		if !dialSilent(t, e, "127.0.0.1").admitted(t) {
			t.Fatal("a silent connection within the bounds was refused")
		}
	}
	if dialSilent(t, e, "127.0.0.1").admitted(t) {
		t.Fatalf("connection %d from one address was admitted, want it closed at once", DefaultMaxHandshakesPerIP+1)
	}
	peer := e.dial(t)
	if _, err := peer.List(ctx, "v1"); err != nil {
		t.Fatalf("the peer, connecting from another address during the flood: %v", err)
	}
	// The peer's handshake slot was given back: three more addresses
	// fill the 32 slots, and a fifth is refused.
	for _, from := range []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"} {
		for range DefaultMaxHandshakesPerIP {
			if !dialSilent(t, e, from).admitted(t) {
				t.Fatalf("a silent connection from %s was refused before %d handshakes in all", from, DefaultMaxHandshakes)
			}
		}
	}
	if dialSilent(t, e, "127.0.0.5").admitted(t) {
		t.Fatalf("connection %d was admitted, want it closed at once", DefaultMaxHandshakes+1)
	}
	// The authenticated connection is no handshake: it goes on.
	if _, err := peer.List(ctx, "v1"); err != nil {
		t.Fatalf("the connected peer, while the handshake slots are full: %v", err)
	}
}

// A connection that does not finish its handshake in time is closed and
// its slot given back; an authenticated connection outlives that deadline.
func TestServeHandshakeDeadline(t *testing.T) {
	e := newTestEnv(t, func(e *testEnv) {
		e.server.HandshakeTimeout = time.Second
		e.server.MaxHandshakesPerIP = 1
		fromAddress(e, "127.0.0.9")
	})
	peer := e.dial(t)
	silent := dialSilent(t, e, "127.0.0.1")
	if !silent.admitted(t) {
		t.Fatal("the first silent connection was refused")
	}
	if dialSilent(t, e, "127.0.0.1").admitted(t) {
		t.Fatal("a second connection from the address was admitted beyond MaxHandshakesPerIP=1")
	}
	silent.closedLater(t)
	if !dialSilent(t, e, "127.0.0.1").admitted(t) {
		t.Fatal("the slot of the connection closed at its deadline was not given back")
	}
	if _, err := peer.List(context.Background(), "v1"); err != nil {
		t.Fatalf("the peer connected before the silent connection's deadline: %v", err)
	}
}
