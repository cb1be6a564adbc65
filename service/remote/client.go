package remote

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
)

// Client is a connection to another host's butterd replication endpoint.
// Its methods may run at once (each opens its own session channel).
type Client struct {
	addr    string
	client  *ssh.Client
	bwlimit int64 // bytes per second a Push sends at most; 0: no limit
	idle    time.Duration
	log     *slog.Logger
	closed  chan struct{}

	mu   sync.Mutex
	dead error // why keepalives closed the connection
}

// Dial connects to the butterd at addr (host or host:port; DefaultPort
// when none), checks its host key against the known_hosts file knownHosts
// and authenticates as user with clientKey. The connection sends
// keepalives (see Options) until Close.
func Dial(ctx context.Context, addr, user string, clientKey ssh.Signer, knownHosts string, opts Options) (*Client, error) {
	opts = opts.withDefaults()
	addr = hostPort(addr)
	host := displayHost(addr)
	check, err := HostKeyCallback(knownHosts)
	if err != nil {
		return nil, err
	}
	var hostErr error
	hostOK := false
	cfg := &ssh.ClientConfig{
		User:          user,
		Auth:          []ssh.AuthMethod{ssh.PublicKeys(clientKey)},
		ClientVersion: "SSH-2.0-butterd",
		HostKeyCallback: func(hostname string, remote net.Addr, key ssh.PublicKey) error {
			hostErr = check(hostname, remote, key)
			hostOK = hostErr == nil
			return hostErr
		},
	}
	start := time.Now()
	conn, err := opts.dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	conn.SetDeadline(deadline(ctx, opts.DialTimeout))
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	c, chans, reqs, err := ssh.NewClientConn(conn, addr, cfg)
	stop()
	if err != nil {
		conn.Close()
		switch {
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case hostErr != nil:
			return nil, hostErr
		case hostOK && !netError(err):
			return nil, &kindError{kind: ErrAuth, err: err, msg: fmt.Sprintf(
				"%s refused our client key %s: add it there as a peer with its rights (butterctl remote add on %s); the key is: %s",
				host, Fingerprint(clientKey.PublicKey()), host, AuthorizedKey(clientKey.PublicKey()))}
		}
		return nil, connError(err, "ssh handshake with %s failed: %v", host, err)
	}
	conn.SetDeadline(time.Time{})
	cl := &Client{addr: addr, client: ssh.NewClient(c, chans, reqs), bwlimit: opts.BandwidthLimit, idle: opts.IdleTimeout, log: opts.Log.With("host", host), closed: make(chan struct{})}
	go func() {
		cl.client.Wait()
		close(cl.closed)
	}()
	go keepAlive(c, opts.KeepaliveInterval, opts.KeepaliveMax, cl.closed, func(err error) {
		cl.mu.Lock()
		cl.dead = connError(err, "%s: %v", host, err)
		cl.mu.Unlock()
		cl.log.Warn("closing the connection", "error", err)
	})
	cl.log.Debug("connected", "duration", time.Since(start))
	return cl, nil
}

// netError reports whether err is the network's, not the peer's answer.
func netError(err error) bool {
	var ne net.Error
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, &ne) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed)
}

// Close closes the connection; running operations fail.
func (c *Client) Close() error { return c.client.Close() }

// Addr is the address dialed (host:port).
func (c *Client) Addr() string { return c.addr }

// List returns the read-only snapshots of volume on the server.
func (c *Client) List(ctx context.Context, volume string) ([]SnapshotRef, error) {
	op, err := c.start(ctx, VerbList, ListRequest{Volume: volume})
	if err != nil {
		return nil, err
	}
	defer op.close()
	op.ch.CloseWrite()
	var out bytes.Buffer
	_, rerr := io.Copy(&out, io.LimitReader(op.ch, 64<<20))
	if err := op.wait(ctx); err != nil {
		return nil, err
	}
	if rerr != nil {
		return nil, c.linkErr(rerr, VerbList)
	}
	var res ListResult
	if err := decodeResult(out.Bytes(), &res); err != nil {
		return nil, fmt.Errorf("%s on %s: %w", VerbList, displayHost(c.addr), err)
	}
	return res.Snapshots, nil
}

// Push streams a send stream from stream to the server, which receives it
// as the snapshot req names, and returns what the server made. Canceling
// ctx aborts the transfer (the server keeps nothing of it); a read of
// stream that blocks is the caller's to end, by closing it.
func (c *Client) Push(ctx context.Context, req ReceiveRequest, stream io.Reader) (Result, error) {
	op, err := c.start(ctx, VerbReceive, req)
	if err != nil {
		return Result{}, err
	}
	defer op.close()
	var out bytes.Buffer
	stdout := make(chan struct{})
	go func() {
		io.Copy(&out, io.LimitReader(op.ch, 1<<20))
		io.Copy(io.Discard, op.ch)
		close(stdout)
	}()
	src := stream
	if req.Compression == CompressZstd {
		z := compressing(stream)
		defer z.Close()
		src = z
	}
	host := displayHost(c.addr)
	sent := newIdleGuard(c.idle, idleTo(host), op.abort)
	var dst io.Writer = &idleWriter{w: op.ch, g: sent}
	if c.bwlimit > 0 {
		dst = newPacer(ctx, dst, c.bwlimit)
	}
	n, readErr, writeErr := copyFramed(dst, src)
	if readErr != nil {
		op.ch.Close() // the server sees a cut stream and keeps nothing
	} else if writeErr == nil {
		op.ch.CloseWrite()
	}
	// The server answers once it has made the snapshot.
	answer := newIdleGuard(c.idle, "no answer from "+host, op.abort)
	var werr error
	if sent.fired() == nil {
		_, werr = answer.wait(func() (int, error) { return 0, op.wait(ctx) })
	}
	switch {
	case ctx.Err() != nil:
		return Result{}, ctx.Err()
	case readErr != nil: // the cause, whatever the server made of the cut
		return Result{}, fmt.Errorf("%s of %q: read the stream: %w", VerbReceive, req.Name, readErr)
	case sent.fired() != nil:
		return Result{}, fmt.Errorf("%s of %q: %w", VerbReceive, req.Name, sent.fired())
	case answer.fired() != nil:
		return Result{}, fmt.Errorf("%s of %q: %w", VerbReceive, req.Name, answer.fired())
	case werr != nil:
		return Result{}, werr
	}
	<-stdout // the server closed the channel: it ends
	if writeErr != nil {
		return Result{}, fmt.Errorf("%s of %q on %s: the server took %d bytes of the stream, then stopped reading but said it succeeded", VerbReceive, req.Name, displayHost(c.addr), n)
	}
	var res Result
	if err := decodeResult(out.Bytes(), &res); err != nil {
		return Result{}, fmt.Errorf("%s on %s: %w", VerbReceive, displayHost(c.addr), err)
	}
	return res, nil
}

// Pull writes the send stream req asks for into stream. Only a nil error
// means the stream is complete.
func (c *Client) Pull(ctx context.Context, req SendRequest, stream io.Writer) error {
	return c.pull(ctx, VerbSend, req, strconv.Quote(req.Name), stream)
}

// Sync writes the stream of a temporary snapshot of the server's volume as
// it is now (see SyncRequest) into stream. Only a nil error means the
// stream is complete.
func (c *Client) Sync(ctx context.Context, req SyncRequest, stream io.Writer) error {
	return c.pull(ctx, VerbSync, req, "volume "+strconv.Quote(req.Volume), stream)
}

// pull runs an operation whose answer is a stream; what names it in errors.
func (c *Client) pull(ctx context.Context, verb string, req request, what string, stream io.Writer) error {
	op, err := c.start(ctx, verb, req)
	if err != nil {
		return err
	}
	defer op.close()
	op.ch.CloseWrite()
	got := newIdleGuard(c.idle, idleFrom(displayHost(c.addr)), op.abort)
	fr := &frameReader{r: &idleReader{r: op.ch, g: got}}
	lw := &localWriter{w: stream}
	_, err = io.Copy(lw, fr)
	if lw.err != nil {
		op.ch.Close()
	}
	var werr error
	if got.fired() == nil {
		werr = op.wait(ctx)
	}
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case lw.err != nil: // the cause, whatever the server made of it
		return fmt.Errorf("%s of %s: write the stream: %w", verb, what, lw.err)
	case got.fired() != nil:
		return fmt.Errorf("%s of %s: %w", verb, what, got.fired())
	case werr != nil:
		return werr
	case err != nil:
		return fmt.Errorf("%s of %s on %s: %w", verb, what, displayHost(c.addr), err)
	}
	return nil
}

// localWriter keeps the error of the caller's writer apart from the link's.
type localWriter struct {
	w   io.Writer
	err error
}

func (l *localWriter) Write(p []byte) (int, error) {
	n, err := l.w.Write(p)
	if err != nil {
		l.err = err
	}
	return n, err
}

// op is one operation: a session channel with its exec running.
type op struct {
	c      *Client
	verb   string
	ch     ssh.Channel
	status chan int // the exit status, or -1 when the channel ended without one
	stderr *headBuffer
	errEOF chan struct{}
	stop   func() bool
	start  time.Time
}

// start opens a session channel and execs the operation in it.
func (c *Client) start(ctx context.Context, verb string, req request) (*op, error) {
	cmd, err := command(verb, req)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	start := time.Now()
	ch, reqs, err := c.client.OpenChannel("session", nil)
	if err != nil {
		var oe *ssh.OpenChannelError
		if errors.As(err, &oe) {
			return nil, fmt.Errorf("%s on %s: session refused: %v", verb, displayHost(c.addr), oe)
		}
		return nil, c.linkErr(err, verb)
	}
	o := &op{c: c, verb: verb, ch: ch, status: make(chan int, 1), stderr: &headBuffer{max: 4 << 10}, errEOF: make(chan struct{}), start: start}
	go func() {
		status := -1
		for r := range reqs {
			if r.Type == "exit-status" && len(r.Payload) >= 4 {
				status = int(binary.BigEndian.Uint32(r.Payload))
			}
			if r.WantReply {
				r.Reply(false, nil)
			}
		}
		o.status <- status
	}()
	go func() {
		io.Copy(o.stderr, ch.Stderr())
		close(o.errEOF)
	}()
	// Canceling closes the channel: reads and writes on it end at once.
	o.stop = context.AfterFunc(ctx, func() { ch.Close() })
	ok, err := ch.SendRequest("exec", true, ssh.Marshal(struct{ Command string }{cmd}))
	if err != nil || !ok {
		o.close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if err != nil {
			return nil, c.linkErr(err, verb)
		}
		return nil, errorf(ErrBadRequest, "%s on %s: the server refused to run it", verb, displayHost(c.addr))
	}
	return o, nil
}

// wait waits for the end of the channel and turns its exit status into the
// operation's error.
func (o *op) wait(ctx context.Context) error {
	var status int
	select {
	case status = <-o.status:
	case <-ctx.Done():
		// The channel is closed; on a dead link its end may never come.
		return ctx.Err()
	}
	o.ch.Close()
	<-o.errEOF
	o.c.log.Debug("operation ended", "verb", o.verb, "status", status, "duration", time.Since(o.start))
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case status == exitOK:
		return nil
	case status > 0:
		return &RemoteError{Host: displayHost(o.c.addr), Verb: o.verb, Status: status, Message: o.stderr.message()}
	}
	return o.c.linkErr(io.ErrUnexpectedEOF, o.verb)
}

// abort ends the operation at once: its reads and writes fail.
func (o *op) abort(error) { o.ch.Close() }

func (o *op) close() {
	o.stop()
	o.ch.Close()
}

// linkErr is the connectivity error of a failed operation: why keepalives
// closed the connection when they did.
func (c *Client) linkErr(err error, verb string) error {
	c.mu.Lock()
	dead := c.dead
	c.mu.Unlock()
	if dead != nil {
		return fmt.Errorf("%s: %w", verb, dead)
	}
	return connError(err, "%s on %s: the connection ended before it finished: %v", verb, displayHost(c.addr), err)
}

// headBuffer keeps the first max bytes written to it and drops the rest.
type headBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
}

func (h *headBuffer) Write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if room := h.max - h.buf.Len(); room > 0 {
		h.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// message is what the server wrote, without its "butterd: " prefixes.
func (h *headBuffer) message() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	lines := bytes.Split(bytes.TrimSpace(h.buf.Bytes()), []byte("\n"))
	for i, l := range lines {
		lines[i] = bytes.TrimPrefix(l, []byte("butterd: "))
	}
	return string(bytes.Join(lines, []byte("; ")))
}
