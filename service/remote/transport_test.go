package remote

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

const snap1 = "v1@2024-05-01T10:00:00.000000"

func TestPushAndList(t *testing.T) {
	e := newTestEnv(t, nil)
	c := e.dial(t)
	ctx := context.Background()
	snaps, err := c.List(ctx, "v1")
	if err != nil || len(snaps) != 0 {
		t.Fatalf("List of an empty volume = %v, %v", snaps, err)
	}

	const size = 64 << 20
	sum := sha256.New()
	stream := io.TeeReader(io.LimitReader(newPattern(7), size), sum)
	res, err := c.Push(ctx, ReceiveRequest{Volume: "v1", Name: snap1}, stream)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.handler.waitReceived(t); err != nil {
		t.Fatalf("the handler's Receive failed: %v", err)
	}
	if res.Bytes != size || res.Snapshot.Name != snap1 {
		t.Errorf("Push = %+v: want %d bytes of %s", res, size, snap1)
	}
	e.handler.mu.Lock()
	got := e.handler.sums[snap1]
	e.handler.mu.Unlock()
	if !bytes.Equal(got[:], sum.Sum(nil)) {
		t.Errorf("the stream arrived altered: sha256 %x, sent %x", got, sum.Sum(nil))
	}

	snaps, err = c.List(ctx, "v1")
	if err != nil || len(snaps) != 1 || snaps[0] != res.Snapshot {
		t.Errorf("List = %+v, %v: want [%+v]", snaps, err, res.Snapshot)
	}
}

func TestPull(t *testing.T) {
	e := newTestEnv(t, nil)
	c := e.dial(t)
	ctx := context.Background()
	var got bytes.Buffer
	if err := c.Pull(ctx, SendRequest{Volume: "v1", Name: snap1}, &got); err != nil {
		t.Fatal(err)
	}
	want, _ := io.ReadAll(io.LimitReader(newPattern(1), e.handler.sendSize))
	if !bytes.Equal(got.Bytes(), want) {
		t.Errorf("pulled %d bytes, not the %d sent", got.Len(), len(want))
	}

	err := c.Pull(ctx, SendRequest{Volume: "v1", Name: "v1@missing"}, io.Discard)
	if !errors.Is(err, ErrNotFound) || !IsPermanent(err) || !strings.Contains(err.Error(), `no snapshot "v1@missing"`) {
		t.Errorf("Pull of a missing snapshot = %v: want a permanent not-found error with the server's message", err)
	}

	// A sync pulls the stream of the volume as it is now.
	got.Reset()
	if err := c.Sync(ctx, SyncRequest{Volume: "v1"}, &got); err != nil || !bytes.Equal(got.Bytes(), want) {
		t.Errorf("Sync pulled %d bytes, %v; want the %d sent", got.Len(), err, len(want))
	}
	err = c.Sync(ctx, SyncRequest{Volume: "gone"}, io.Discard)
	if !errors.Is(err, ErrNotFound) || !IsPermanent(err) || !strings.Contains(err.Error(), `no volume "gone"`) {
		t.Errorf("Sync of a missing volume = %v: want a permanent not-found error with the server's message", err)
	}

	e.handler.sendErr = errors.New("send ioctl failed")
	got.Reset()
	err = c.Pull(ctx, SendRequest{Volume: "v1", Name: snap1}, &got)
	var re *RemoteError
	if !errors.As(err, &re) || re.Status != exitFailed || IsPermanent(err) || !strings.Contains(err.Error(), "send ioctl failed") {
		t.Errorf("Pull failing on the server mid-stream = %v: want exit status 1 with its message, not permanent", err)
	}
}

func TestReceiverStoppingEarlyFails(t *testing.T) {
	e := newTestEnv(t, nil)
	c := e.dial(t)
	_, err := c.Push(context.Background(), ReceiveRequest{Volume: "v1", Name: "v1@lazy"}, io.LimitReader(newPattern(1), 1<<20))
	var re *RemoteError
	if !errors.As(err, &re) || re.Status != exitFailed || !strings.Contains(err.Error(), "stopped after 10 bytes") {
		t.Errorf("Push to a receiver that stops early = %v: want a failure", err)
	}
	if _, err := c.Push(context.Background(), ReceiveRequest{Volume: "v1", Name: "v1@lazy"}, io.LimitReader(newPattern(1), 10)); err != nil {
		t.Errorf("Push of exactly what the receiver reads: %v", err)
	}
}

func TestUnknownClientKey(t *testing.T) {
	e := newTestEnv(t, nil)
	other, err := LoadOrCreateKey(filepath.Join(e.dir, "other_key"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Dial(context.Background(), e.addr, "butterd", other, e.knownHosts, e.opts)
	if !errors.Is(err, ErrAuth) || !IsPermanent(err) || IsConnectivity(err) {
		t.Fatalf("Dial with an unknown key = %v: want a permanent ErrAuth", err)
	}
	if msg := err.Error(); !strings.Contains(msg, Fingerprint(other.PublicKey())) || !strings.Contains(msg, AuthorizedKey(other.PublicKey())) {
		t.Errorf("the error should name the key to add: %v", err)
	}
	// The peer's own key still gets in.
	e.dial(t)
}

func TestHostKeyUnknown(t *testing.T) {
	e := newTestEnv(t, nil)
	os.Remove(e.knownHosts)
	_, err := Dial(context.Background(), e.addr, "butterd", e.clientKey, e.knownHosts, e.opts)
	var hk *HostKeyError
	if !errors.As(err, &hk) || !errors.Is(err, ErrHostKey) || !IsPermanent(err) {
		t.Fatalf("Dial to an unknown host = %v: want a permanent *HostKeyError", err)
	}
	fp := Fingerprint(e.hostKey.PublicKey())
	cmd := TrustCommand + " " + e.addr + " " + fp
	if !strings.Contains(err.Error(), cmd) || !strings.Contains(err.Error(), "unknown") {
		t.Fatalf("the error should say the key is unknown and give %q: %v", cmd, err)
	}

	// What the command does: a wrong fingerprint is refused, the right one trusted.
	ctx := context.Background()
	if _, err := TrustHost(ctx, e.knownHosts, e.addr, "SHA256:AAAA", false, e.opts); !errors.Is(err, ErrHostKey) {
		t.Errorf("TrustHost with another fingerprint = %v: want ErrHostKey", err)
	}
	if _, err := TrustHost(ctx, e.knownHosts, e.addr, fp, false, e.opts); err != nil {
		t.Fatal(err)
	}
	e.dial(t)
}

func TestHostKeyChanged(t *testing.T) {
	e := newTestEnv(t, nil)
	old, err := LoadOrCreateKey(filepath.Join(e.dir, "old_host_key"))
	if err != nil {
		t.Fatal(err)
	}
	if err := AddKnownHost(e.knownHosts, e.addr, old.PublicKey(), true); err != nil {
		t.Fatal(err)
	}
	_, err = Dial(context.Background(), e.addr, "butterd", e.clientKey, e.knownHosts, e.opts)
	var hk *HostKeyError
	if !errors.As(err, &hk) || len(hk.Known) != 1 || !IsPermanent(err) {
		t.Fatalf("Dial to a host whose key changed = %v: want a permanent *HostKeyError with the known key", err)
	}
	fp := Fingerprint(e.hostKey.PublicKey())
	for _, want := range []string{"CHANGED", fp, Fingerprint(old.PublicKey()), TrustCommand + " --replace " + e.addr + " " + fp} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error should contain %q: %v", want, err)
		}
	}
	if _, err := TrustHost(context.Background(), e.knownHosts, e.addr, fp, false, e.opts); !errors.Is(err, ErrExists) {
		t.Errorf("TrustHost without replace over another key = %v: want ErrExists", err)
	}
	if _, err := TrustHost(context.Background(), e.knownHosts, e.addr, fp, true, e.opts); err != nil {
		t.Fatal(err)
	}
	e.dial(t)
}

func TestRights(t *testing.T) {
	e := newTestEnv(t, nil)
	c := e.dial(t)
	ctx := context.Background()
	set := func(p Peer) {
		t.Helper()
		p.Name, p.PublicKey = "hostb", e.clientKey.PublicKey()
		if err := e.peers.Update(p); err != nil {
			t.Fatal(err)
		}
	}
	denied := func(what string, err error, want string) {
		t.Helper()
		if !errors.Is(err, ErrDenied) || !IsPermanent(err) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s = %v: want a permanent ErrDenied saying %q", what, err, want)
		}
	}
	// Rights are read at each connection.
	redial := func() *Client { c.Close(); c = e.dial(t); return c }

	set(Peer{Pull: true})
	_, err := redial().Push(ctx, ReceiveRequest{Volume: "v1", Name: snap1}, io.LimitReader(newPattern(1), 4<<20))
	denied("Push without the push right", err, `peer "hostb" has no push right`)

	set(Peer{Push: true})
	denied("Pull without the pull right", redial().Pull(ctx, SendRequest{Volume: "v1", Name: snap1}, io.Discard), "no pull right")
	denied("Sync without the pull right", c.Sync(ctx, SyncRequest{Volume: "v1"}, io.Discard), "no pull right")

	set(Peer{Push: true, Pull: true, Volumes: []string{"v2"}})
	_, err = redial().Push(ctx, ReceiveRequest{Volume: "v1", Name: snap1}, strings.NewReader("x"))
	denied("Push to a volume not allowed", err, `may not use volume "v1"`)
	_, err = c.List(ctx, "v1")
	denied("List of a volume not allowed", err, `may not use volume "v1"`)
	denied("Sync of a volume not allowed", c.Sync(ctx, SyncRequest{Volume: "v1"}, io.Discard), `may not use volume "v1"`)
	if _, err := c.List(ctx, "v2"); err != nil {
		t.Errorf("List of an allowed volume: %v", err)
	}

	set(Peer{})
	_, err = redial().List(ctx, "v2")
	denied("List without push or pull", err, "no push or pull right")

	if err := e.peers.Remove("hostb"); err != nil {
		t.Fatal(err)
	}
	if _, err := Dial(ctx, e.addr, "butterd", e.clientKey, e.knownHosts, e.opts); !errors.Is(err, ErrAuth) {
		t.Errorf("Dial after the peer was removed = %v: want ErrAuth", err)
	}
}

func TestBadRequestRefusedByClient(t *testing.T) {
	e := newTestEnv(t, nil)
	c := e.dial(t)
	for _, req := range []ReceiveRequest{
		{Volume: "v/1", Name: "v/1@x"},
		{Volume: "v1", Name: "v2@x"},
		{Volume: "v1", Name: "v1@../x"},
		{Volume: "v1", Name: snap1, ParentUUID: "nope"},
	} {
		if _, err := c.Push(context.Background(), req, strings.NewReader("x")); !IsPermanent(err) {
			t.Errorf("Push(%+v) = %v: want a permanent error", req, err)
		}
	}
}

// exitOf runs cmd in a new session of a raw client and returns its exit
// status and stderr.
func exitOf(t *testing.T, c *ssh.Client, prepare func(*ssh.Session) error, cmd string) (int, string, string) {
	t.Helper()
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var stdout, stderr bytes.Buffer
	s.Stdout, s.Stderr = &stdout, &stderr
	if prepare != nil {
		if err := prepare(s); err == nil {
			t.Errorf("the request before %q was accepted", cmd)
		}
	}
	switch cmd {
	case "shell":
		err = s.Shell()
	default:
		err = s.Start(cmd)
	}
	if err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	err = s.Wait()
	var ee *ssh.ExitError
	switch {
	case err == nil:
		return 0, stdout.String(), stderr.String()
	case errors.As(err, &ee):
		return ee.ExitStatus(), stdout.String(), stderr.String()
	}
	t.Fatalf("%s: %v", cmd, err)
	return -1, "", ""
}

func TestForbiddenRequests(t *testing.T) {
	e := newTestEnv(t, nil)
	c := e.rawClient(t)
	list := VerbList + ` {"volume":"v1"}`
	for _, tc := range []struct {
		name    string
		prepare func(*ssh.Session) error
		cmd     string
		status  int
		stderr  string
	}{
		{"shell", nil, "shell", exitBadRequest, "shell refused: this endpoint only runs butterd's replication operations"},
		{"other command", nil, "cat /etc/passwd", exitBadRequest, `"cat" is not a butterd operation`},
		{"verb without args", nil, VerbList, exitBadRequest, "arguments are not a JSON object"},
		{"malformed JSON", nil, VerbList + ` {"volume":`, exitBadRequest, "arguments are not a JSON object"},
		{"unknown field", nil, VerbList + ` {"volume":"v1","all":true}`, exitBadRequest, `unknown field "all"`},
		{"two objects", nil, VerbList + ` {"volume":"v1"} {}`, exitBadRequest, "nothing after it"},
		{"path in a name", nil, VerbReceive + ` {"volume":"v1","name":"v1@../../etc"}`, exitBadRequest, "must not contain '..'"},
		{"slash in a volume", nil, VerbSend + ` {"volume":"a/b","name":"a/b@x"}`, exitBadRequest, "invalid character '/'"},
		// A refused preliminary request leaves the session usable.
		{"pty then list", func(s *ssh.Session) error { return s.RequestPty("xterm", 24, 80, nil) }, list, exitOK, "pty-req refused: no terminal"},
		{"env then list", func(s *ssh.Session) error { return s.Setenv("LANG", "C") }, list, exitOK, "env refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, stdout, stderr := exitOf(t, c, tc.prepare, tc.cmd)
			if status != tc.status || !strings.Contains(stderr, tc.stderr) {
				t.Errorf("exit status %d, stderr %q: want %d and %q", status, stderr, tc.status, tc.stderr)
			}
			if tc.status == exitOK && !strings.Contains(stdout, `"snapshots":[]`) {
				t.Errorf("stdout %q: want the list", stdout)
			}
		})
	}

	// x/crypto's Session does not start with a subsystem: a raw channel.
	ch, reqs, err := c.OpenChannel("session", nil)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := ch.SendRequest("subsystem", true, ssh.Marshal(struct{ Name string }{"sftp"})); err != nil || !ok {
		t.Fatalf("subsystem request: %v, %v", ok, err)
	}
	status := -1
	for r := range reqs {
		if r.Type == "exit-status" {
			status = int(r.Payload[3])
		}
	}
	stderr, _ := io.ReadAll(ch.Stderr())
	if status != exitBadRequest || !strings.Contains(string(stderr), "subsystem refused") {
		t.Errorf("subsystem: exit status %d, stderr %q: want %d and a refusal", status, stderr, exitBadRequest)
	}

	if _, err := c.Dial("tcp", e.addr); err == nil || !strings.Contains(err.Error(), "direct-tcpip") {
		t.Errorf("port forwarding (direct-tcpip) = %v: want refused", err)
	}
	if _, err := c.Listen("tcp", "127.0.0.1:0"); err == nil {
		t.Error("remote forwarding (tcpip-forward) was accepted")
	}
	// The connection still runs operations.
	if status, stdout, _ := exitOf(t, c, nil, list); status != 0 || !strings.Contains(stdout, "snapshots") {
		t.Errorf("list after the refusals: exit status %d, stdout %q", status, stdout)
	}
}

func TestDeadLink(t *testing.T) {
	e := newTestEnv(t, func(e *testEnv) {
		e.wrap = func(c net.Conn) net.Conn {
			b := newBlackhole(c, 4<<20)
			t.Cleanup(b.cut)
			return b
		}
		e.opts.KeepaliveInterval, e.opts.KeepaliveMax = 200*time.Millisecond, 3
		e.server.KeepaliveInterval, e.server.KeepaliveMax = 200*time.Millisecond, 3
	})
	c := e.dial(t)
	start := time.Now()
	_, err := c.Push(context.Background(), ReceiveRequest{Volume: "v1", Name: snap1}, newPattern(3))
	took := time.Since(start)
	if !IsConnectivity(err) || IsPermanent(err) || !strings.Contains(err.Error(), "keepalive") {
		t.Errorf("Push over a dead link = %v: want a connectivity error naming the keepalives", err)
	}
	// (max+1) × interval, and room for a slow machine.
	if took > 3*time.Second {
		t.Errorf("the dead link was noticed after %v: want about 800ms", took)
	}
	if err := e.handler.waitReceived(t); err == nil {
		t.Error("the server's Receive succeeded on a cut stream")
	}
	if _, err := c.List(context.Background(), "v1"); !IsConnectivity(err) {
		t.Errorf("List on the closed connection = %v: want a connectivity error", err)
	}
}

func TestDialTimeout(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() { // accepts and never speaks
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	key, err := LoadOrCreateKey(filepath.Join(t.TempDir(), "key"))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = Dial(context.Background(), l.Addr().String(), "butterd", key, "", Options{DialTimeout: 300 * time.Millisecond})
	if !IsConnectivity(err) || time.Since(start) > 3*time.Second {
		t.Errorf("Dial to a silent server = %v after %v: want a connectivity error after 300ms", err, time.Since(start))
	}
}

// stallingReader yields n bytes and then blocks until closed.
type stallingReader struct {
	r      io.Reader
	closed chan struct{}
}

func (s *stallingReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err == io.EOF {
		<-s.closed
		return 0, os.ErrClosed
	}
	return n, err
}

func TestCancelPush(t *testing.T) {
	e := newTestEnv(t, nil)
	c := e.dial(t)
	ctx, cancel := context.WithCancel(context.Background())
	src := &stallingReader{r: io.LimitReader(newPattern(5), 8<<20), closed: make(chan struct{})}
	// As a job does: canceling also closes what it reads.
	context.AfterFunc(ctx, func() { close(src.closed) })
	time.AfterFunc(300*time.Millisecond, cancel)
	start := time.Now()
	_, err := c.Push(ctx, ReceiveRequest{Volume: "v1", Name: snap1}, src)
	if !errors.Is(err, context.Canceled) || time.Since(start) > 3*time.Second {
		t.Errorf("canceled Push = %v after %v: want context.Canceled at once", err, time.Since(start))
	}
	if err := e.handler.waitReceived(t); !IsConnectivity(err) {
		t.Errorf("the server's Receive of a canceled push = %v: want a cut stream", err)
	}
	if snaps, err := c.List(context.Background(), "v1"); err != nil || len(snaps) != 0 {
		t.Errorf("after the canceled push: List = %v, %v: want nothing, and the connection usable", snaps, err)
	}

	// Canceling while the stream flows (never stalls) works too.
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	if _, err := c.Push(ctx, ReceiveRequest{Volume: "v1", Name: snap1}, newPattern(6)); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled endless Push = %v: want context.Canceled", err)
	}
	if err := e.handler.waitReceived(t); err == nil {
		t.Error("the server's Receive of a canceled push succeeded")
	}
}

func TestServeConn(t *testing.T) {
	// One connection handed over as systemd's Accept=yes would.
	e := newTestEnv(t, nil)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	done := make(chan error, 1)
	go func() {
		a, err := l.Accept()
		if err != nil {
			done <- err
			return
		}
		done <- e.server.ServeConn(context.Background(), a)
	}()
	opts := e.opts
	opts.Dial = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, l.Addr().String())
	}
	c, err := Dial(context.Background(), e.addr, "butterd", e.clientKey, e.knownHosts, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.List(context.Background(), "v1"); err != nil {
		t.Error(err)
	}
	c.Close()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Error("ServeConn did not return when the client closed")
	}
}

func BenchmarkPush(b *testing.B) {
	e := newTestEnv(b, func(e *testEnv) { e.handler.discard = true })
	c := e.dial(b)
	const size = 64 << 20
	buf := make([]byte, 1<<20)
	newPattern(9).Read(buf)
	b.SetBytes(size)
	b.ResetTimer()
	for b.Loop() {
		if _, err := c.Push(context.Background(), ReceiveRequest{Volume: "v1", Name: snap1}, io.LimitReader(repeat(buf), size)); err != nil {
			b.Fatal(err)
		}
		<-e.handler.received
	}
}

// repeat reads buf over and over.
func repeat(buf []byte) io.Reader { return &repeater{buf: buf} }

type repeater struct {
	buf []byte
	off int
}

func (r *repeater) Read(p []byte) (int, error) {
	n := copy(p, r.buf[r.off:])
	r.off = (r.off + n) % len(r.buf)
	return n, nil
}

func TestKeepaliveKeepsIdleLinkUp(t *testing.T) {
	e := newTestEnv(t, func(e *testEnv) {
		e.opts.KeepaliveInterval, e.opts.KeepaliveMax = 50*time.Millisecond, 2
		e.server.KeepaliveInterval, e.server.KeepaliveMax = 50*time.Millisecond, 2
	})
	c := e.dial(t)
	time.Sleep(time.Second) // 20 keepalives each way: an idle link with answers stays up
	if _, err := c.List(context.Background(), "v1"); err != nil {
		t.Errorf("List after an idle second: %v", err)
	}
}

// The messages people read name the problem and what to do next.
func TestErrorMessages(t *testing.T) {
	says := func(err error, want ...string) {
		t.Helper()
		if err == nil {
			t.Fatalf("no error, want one saying %q", want)
		}
		t.Log(err)
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%q does not say %q", err, w)
			}
		}
	}
	e := newTestEnv(t, nil)
	ctx := context.Background()
	other, _ := LoadOrCreateKey(filepath.Join(e.dir, "other"))
	_, err := Dial(ctx, e.addr, "butterd", other, e.knownHosts, e.opts)
	says(err, "refused our client key SHA256:", "butterctl remote add")
	_, err = Dial(ctx, e.addr, "butterd", e.clientKey, filepath.Join(e.dir, "none"), e.opts)
	says(err, "is unknown", "SHA256:", "butterctl remote trust")
	AddKnownHost(e.knownHosts, e.addr, other.PublicKey(), true)
	_, err = Dial(ctx, e.addr, "butterd", e.clientKey, e.knownHosts, e.opts)
	says(err, "CHANGED", "the known one is")
	AddKnownHost(e.knownHosts, e.addr, e.hostKey.PublicKey(), true)
	e.peers.Update(Peer{Name: "hostb", PublicKey: e.clientKey.PublicKey(), Pull: true, Volumes: []string{"v2"}})
	c := e.dial(t)
	_, err = c.Push(ctx, ReceiveRequest{Volume: "v1", Name: snap1}, strings.NewReader("x"))
	says(err, `peer "hostb" has no push right`)
	_, err = c.List(ctx, "v1")
	says(err, `may not use volume "v1"`)
	err = c.Pull(ctx, SendRequest{Volume: "v2", Name: "v2@missing"}, io.Discard)
	says(err, `no snapshot "v2@missing"`)
	_, err = Dial(ctx, "127.0.0.1:1", "butterd", e.clientKey, e.knownHosts, e.opts)
	says(err, "connect to 127.0.0.1:1")
}
