package remote

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// fakeHandler keeps snapshots in memory: a pushed stream becomes a snapshot
// whose UUID is the stream's sha256 (shortened to a UUID's form).
type fakeHandler struct {
	mu        sync.Mutex
	snapshots map[string][]SnapshotRef
	sums      map[string][32]byte // snapshot name → sha256 of its stream
	received  chan error          // each Receive's result
	sent      chan error          // each Send's result, while there is room
	sendSize  int64               // bytes Send writes
	sendErr   error               // Send fails with this after half of them
	discard   bool                // Receive only counts (benchmarks)
}

func newFakeHandler() *fakeHandler {
	return &fakeHandler{snapshots: map[string][]SnapshotRef{}, sums: map[string][32]byte{}, received: make(chan error, 16), sent: make(chan error, 16), sendSize: 8 << 20}
}

func (h *fakeHandler) List(ctx context.Context, peer Peer, volume string) ([]SnapshotRef, error) {
	if volume == "busy" {
		return nil, fmt.Errorf("%w: 2 operations of peers are under way", ErrBusy)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.snapshots[volume], nil
}

func (h *fakeHandler) Receive(ctx context.Context, peer Peer, req ReceiveRequest, stream io.Reader) (res Result, err error) {
	defer func() { h.received <- err }()
	if strings.HasSuffix(req.Name, "@stall") { // a receiver that stops reading
		<-ctx.Done()
		return Result{}, ctx.Err()
	}
	if strings.HasSuffix(req.Name, "@lazy") { // a handler that stops early
		_, err := io.ReadFull(stream, make([]byte, 10))
		return Result{Snapshot: SnapshotRef{Name: req.Name}}, err
	}
	if h.discard {
		n, err := io.Copy(io.Discard, stream)
		return Result{Snapshot: SnapshotRef{Name: req.Name}, Bytes: n}, err
	}
	sum := sha256.New()
	n, err := io.Copy(sum, stream)
	if err != nil {
		return Result{}, err
	}
	var s [32]byte
	copy(s[:], sum.Sum(nil))
	ref := SnapshotRef{Name: req.Name, UUID: uuidOf(s), ReceivedUUID: uuidOf(sha256.Sum256(s[:])), ParentUUID: req.ParentUUID}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.snapshots[req.Volume] = append(h.snapshots[req.Volume], ref)
	h.sums[req.Name] = s
	return Result{Snapshot: ref, Bytes: n}, nil
}

func (h *fakeHandler) Send(ctx context.Context, peer Peer, req SendRequest, stream io.Writer) (err error) {
	defer func() {
		select {
		case h.sent <- err:
		default:
		}
	}()
	if req.Name == req.Volume+"@stall" { // a sender that stops sending
		if _, err := stream.Write(make([]byte, 64<<10)); err != nil {
			return err
		}
		<-ctx.Done()
		return ctx.Err()
	}
	if req.Name == req.Volume+"@missing" {
		return fmt.Errorf("%w: no snapshot %q", ErrNotFound, req.Name)
	}
	src := io.LimitReader(newPattern(1), h.sendSize)
	if h.sendErr != nil {
		src = io.LimitReader(src, h.sendSize/2)
	}
	if _, err := io.Copy(stream, src); err != nil {
		return err
	}
	return h.sendErr
}

// Sync streams the volume's data as Send does; volume "gone" is not found.
func (h *fakeHandler) Sync(ctx context.Context, peer Peer, req SyncRequest, stream io.Writer) error {
	if req.Volume == "gone" {
		return fmt.Errorf("%w: no volume %q", ErrNotFound, req.Volume)
	}
	return h.Send(ctx, peer, SendRequest{Volume: req.Volume, Name: req.Volume + "@now"}, stream)
}

func uuidOf(s [32]byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", s[0:4], s[4:6], s[6:8], s[8:10], s[10:16])
}

// pattern is a cheap endless reader of non-repeating-looking bytes.
type pattern struct{ x uint64 }

func newPattern(seed uint64) *pattern { return &pattern{x: seed*0x9E3779B97F4A7C15 + 1} }

func (p *pattern) Read(b []byte) (int, error) {
	for i := range b {
		p.x ^= p.x << 13
		p.x ^= p.x >> 7
		p.x ^= p.x << 17
		b[i] = byte(p.x)
	}
	return len(b), nil
}

// testEnv is a server on loopback with one peer, and what a client needs.
type testEnv struct {
	dir        string
	addr       string
	handler    *fakeHandler
	server     *Server
	peers      *Peers
	hostKey    ssh.Signer
	clientKey  ssh.Signer
	knownHosts string
	opts       Options
	wrap       func(net.Conn) net.Conn // wraps the server's side of each connection
}

func newTestEnv(t testing.TB, configure func(*testEnv)) *testEnv {
	t.Helper()
	dir := t.TempDir()
	e := &testEnv{dir: dir, handler: newFakeHandler(), knownHosts: filepath.Join(dir, "known_hosts")}
	var err error
	if e.hostKey, err = LoadOrCreateKey(filepath.Join(dir, "host_key")); err != nil {
		t.Fatal(err)
	}
	if e.clientKey, err = LoadOrCreateKey(filepath.Join(dir, "client_key")); err != nil {
		t.Fatal(err)
	}
	e.peers = OpenPeers(filepath.Join(dir, "peers.json"))
	if err := e.peers.Add(Peer{Name: "hostb", PublicKey: e.clientKey.PublicKey(), Push: true, Pull: true}); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	e.server = &Server{HostKey: e.hostKey, Peers: e.peers, Handler: e.handler, Log: log}
	e.opts = Options{DialTimeout: 5 * time.Second, Log: log}
	if configure != nil {
		configure(e)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.addr = l.Addr().String()
	if err := AddKnownHost(e.knownHosts, e.addr, e.hostKey.PublicKey(), false); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- e.server.Serve(ctx, &wrapListener{Listener: l, wrap: e.wrap}) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-served:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Serve did not return 10 s after its context ended")
		}
	})
	return e
}

// dial connects as the peer, failing the test on error.
func (e *testEnv) dial(t testing.TB) *Client {
	t.Helper()
	c, err := Dial(context.Background(), e.addr, "butterd", e.clientKey, e.knownHosts, e.opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// rawClient is a plain x/crypto SSH client of the peer, to send what
// butterd's client never does.
func (e *testEnv) rawClient(t testing.TB) *ssh.Client {
	t.Helper()
	c, err := ssh.Dial("tcp", e.addr, &ssh.ClientConfig{
		User:            "someone",
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(e.clientKey)},
		HostKeyCallback: ssh.FixedHostKey(e.hostKey.PublicKey()),
		Timeout:         5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

type wrapListener struct {
	net.Listener
	wrap func(net.Conn) net.Conn
}

func (l *wrapListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil && l.wrap != nil {
		c = l.wrap(c)
	}
	return c, err
}

// blackhole passes the first n bytes read, then reads nothing more and
// drops everything written: a link that died without a word.
type blackhole struct {
	net.Conn
	mu     sync.Mutex
	left   int
	closed chan struct{}
	once   sync.Once
}

func newBlackhole(c net.Conn, n int) *blackhole {
	return &blackhole{Conn: c, left: n, closed: make(chan struct{})}
}

func (b *blackhole) Read(p []byte) (int, error) {
	b.mu.Lock()
	left := b.left
	b.mu.Unlock()
	if left <= 0 {
		<-b.closed
		return 0, net.ErrClosed
	}
	n, err := b.Conn.Read(p[:min(len(p), left)])
	b.mu.Lock()
	b.left -= n
	b.mu.Unlock()
	return n, err
}

func (b *blackhole) Write(p []byte) (int, error) {
	b.mu.Lock()
	dead := b.left <= 0
	b.mu.Unlock()
	if dead {
		return len(p), nil
	}
	return b.Conn.Write(p)
}

// Close ends the server's side only: the client hears nothing, as over a
// dead link. The test closes the TCP connection at its end (cut).
func (b *blackhole) Close() error {
	b.once.Do(func() { close(b.closed) })
	return nil
}

func (b *blackhole) cut() { b.Conn.Close() }

// waitReceived returns the result of the next Receive.
func (h *fakeHandler) waitReceived(t testing.TB) error {
	t.Helper()
	select {
	case err := <-h.received:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("the handler's Receive did not return")
		return errors.New("timeout")
	}
}
