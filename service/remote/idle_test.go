package remote

import (
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

// A peer that opens a push, sends the start of a stream and then nothing
// has it abandoned after the server's idle timeout; the connection stays
// usable.
func TestIdleTimeoutStalledPush(t *testing.T) {
	e := newTestEnv(t, func(e *testEnv) { e.server.IdleTimeout = 200 * time.Millisecond })
	c := e.dial(t)
	src := &stallingReader{r: io.LimitReader(newPattern(9), 64<<10), closed: make(chan struct{})}
	pushed := make(chan error, 1)
	go func() {
		_, err := c.Push(context.Background(), ReceiveRequest{Volume: "v1", Name: snap1}, src)
		pushed <- err
	}()
	err := e.handler.waitReceived(t)
	if !IsConnectivity(err) || !strings.Contains(err.Error(), `no data from peer "hostb" for 200ms: transfer abandoned`) {
		t.Errorf("the server's Receive of a stalled push = %v: want it abandoned, naming the peer and the timeout", err)
	}
	close(src.closed)
	if err := <-pushed; err == nil {
		t.Error("the stalled push succeeded")
	}
	if _, err := c.List(context.Background(), "v1"); err != nil {
		t.Errorf("List after the abandoned push: %v", err)
	}
}

// A pull whose client stops reading is abandoned by the server.
func TestIdleTimeoutStalledPuller(t *testing.T) {
	e := newTestEnv(t, func(e *testEnv) { e.server.IdleTimeout = 200 * time.Millisecond })
	e.handler.sendSize = 64 << 20
	c := e.dial(t)
	r, w, err := os.Pipe() // nobody reads r: the puller stops reading
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	pulled := make(chan error, 1)
	go func() { pulled <- c.Pull(context.Background(), SendRequest{Volume: "v1", Name: snap1}, w) }()
	select {
	case err := <-e.handler.sent:
		if !strings.Contains(err.Error(), `peer "hostb" took no data for 200ms: transfer abandoned`) {
			t.Errorf("the server's Send to a puller that stopped reading = %v: want it abandoned", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the server's Send to a puller that stopped reading did not end")
	}
	w.Close()
	if err := <-pulled; err == nil {
		t.Error("the stalled pull succeeded")
	}
}

// Our own transfers give up on a server that stalls them: one that stops
// reading a push, one that stops sending a pull.
func TestIdleTimeoutStalledServer(t *testing.T) {
	e := newTestEnv(t, func(e *testEnv) { e.opts.IdleTimeout = 200 * time.Millisecond })
	c := e.dial(t)
	ctx := context.Background()
	_, err := c.Push(ctx, ReceiveRequest{Volume: "v1", Name: "v1@stall"}, newPattern(4))
	if !IsConnectivity(err) || !strings.Contains(err.Error(), e.addr+" took no data for 200ms: transfer abandoned") {
		t.Errorf("Push to a server that stops reading = %v: want it abandoned, naming the host", err)
	}
	err = c.Pull(ctx, SendRequest{Volume: "v1", Name: "v1@stall"}, io.Discard)
	if !IsConnectivity(err) || !strings.Contains(err.Error(), "no data from "+e.addr+" for 200ms: transfer abandoned") {
		t.Errorf("Pull from a server that stops sending = %v: want it abandoned, naming the host", err)
	}
	if _, err := c.List(ctx, "v1"); err != nil {
		t.Errorf("List after the abandoned transfers: %v", err)
	}
}

// A server that takes no more operations of peers says so: busy, retry
// later, and a retry may succeed.
func TestBusyStatus(t *testing.T) {
	e := newTestEnv(t, nil)
	c := e.dial(t)
	_, err := c.List(context.Background(), "busy")
	var re *RemoteError
	if !errors.As(err, &re) || re.Status != exitBusy || !errors.Is(err, ErrBusy) || IsPermanent(err) ||
		!strings.Contains(err.Error(), "peer busy, retry later") || !strings.Contains(err.Error(), "2 operations of peers are under way") {
		t.Errorf("List on a busy server = %v: want exit status %d, peer busy, retry later, with the server's reason", err, exitBusy)
	}
}
