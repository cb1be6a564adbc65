package remote

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
)

// Handler does the storage work of the replication operations, for a peer
// whose rights the server has checked. Its errors reach the client as the
// exit status and message of the operation: wrap them with ErrNotFound,
// ErrExists, ErrBadRequest or ErrDenied when retrying cannot help.
type Handler interface {
	// List returns the read-only snapshots of volume.
	List(ctx context.Context, peer Peer, volume string) ([]SnapshotRef, error)
	// Receive reads a send stream from stream to its end (io.EOF; a cut
	// stream is an error wrapping ErrConnectivity) and makes the snapshot
	// req names, checking the stream's header against req. ctx ends when
	// the client goes away.
	Receive(ctx context.Context, peer Peer, req ReceiveRequest, stream io.Reader) (Result, error)
	// Send writes the send stream req asks for into stream.
	Send(ctx context.Context, peer Peer, req SendRequest, stream io.Writer) error
	// Sync writes the send stream of a temporary read-only snapshot of
	// the volume req names into stream, and deletes the snapshot.
	Sync(ctx context.Context, peer Peer, req SyncRequest, stream io.Writer) error
}

// Server is butterd's replication endpoint: SSH with public-key
// authentication against Peers, and nothing but the replication operations
// (see the package documentation).
type Server struct {
	HostKey ssh.Signer
	Peers   *Peers
	Handler Handler
	Log     *slog.Logger

	// HandshakeTimeout bounds the SSH handshake and authentication of a
	// connection (DefaultHandshakeTimeout when 0); an authenticated
	// connection then lives as long as its keepalives are answered.
	HandshakeTimeout time.Duration
	// Serve refuses at once, by closing it, a connection that would make
	// more than MaxHandshakes handshakes wait at once, or more than
	// MaxHandshakesPerIP from one source address (an IPv6 /64)
	// (DefaultMaxHandshakes and DefaultMaxHandshakesPerIP when 0).
	MaxHandshakes      int
	MaxHandshakesPerIP int
	KeepaliveInterval  time.Duration // DefaultKeepaliveInterval when 0
	KeepaliveMax       int           // DefaultKeepaliveMax when 0
	MaxSessions        int           // operations at once per connection; 4 when 0
	// IdleTimeout abandons a stream that the peer leaves waiting that
	// long: a push that sends nothing more, a pull that reads nothing more
	// (DefaultIdleTimeout when 0).
	IdleTimeout time.Duration
}

// Serve accepts connections on l and serves each (ServeConn) until ctx
// ends; then it closes l and the connections and returns nil once they are
// gone. It returns the listener's error when accepting fails for good.
// Connections beyond the bounds on handshakes (MaxHandshakes,
// MaxHandshakesPerIP) are closed at once.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	gate := newHandshakeGate(orDefault(s.MaxHandshakes, DefaultMaxHandshakes), orDefault(s.MaxHandshakesPerIP, DefaultMaxHandshakesPerIP), s.log())
	var wg sync.WaitGroup
	defer wg.Wait()
	backoff := 5 * time.Millisecond
	for {
		conn, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if temporaryAccept(err) {
				s.log().Warn("accept failed; retrying", "error", err, "in", backoff)
				time.Sleep(backoff)
				backoff = min(2*backoff, time.Second)
				continue
			}
			return err
		}
		backoff = 5 * time.Millisecond
		source, ok := gate.enter(conn.RemoteAddr())
		if !ok {
			conn.Close()
			continue
		}
		wg.Go(func() { s.serveConn(ctx, conn, func() { gate.leave(source) }) })
	}
}

func temporaryAccept(err error) bool {
	for _, e := range []error{syscall.ECONNABORTED, syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.EINTR} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

type peerKey struct{}

// ServeConn serves one connection (from Serve, or one that systemd passes
// with Accept=yes) until the client closes it, the link dies (keepalives)
// or ctx ends. It closes conn.
func (s *Server) ServeConn(ctx context.Context, conn net.Conn) error {
	return s.serveConn(ctx, conn, func() {})
}

// serveConn is ServeConn; it calls handshakeDone once the handshake has
// ended, before conn is closed if the handshake failed.
func (s *Server) serveConn(ctx context.Context, conn net.Conn, handshakeDone func()) error {
	// ssh.NewServerConn closes conn when the handshake fails: the slot is
	// given back before, so that the client sees it free once closed.
	handshakeDone = sync.OnceFunc(handshakeDone)
	conn = &closeHook{Conn: conn, before: handshakeDone}
	defer conn.Close()
	// Closing conn ends the handshake, the connection and its operations.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	log := s.log().With("remote", conn.RemoteAddr().String())
	cfg := &ssh.ServerConfig{
		ServerVersion: "SSH-2.0-butterd",
		PublicKeyCallback: func(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			peer, ok, err := s.Peers.byKey(key)
			if err != nil {
				log.Error("peers file unreadable: refusing every client", "error", err)
				return nil, err
			}
			if !ok {
				return nil, fmt.Errorf("key %s is no peer's", Fingerprint(key))
			}
			return &ssh.Permissions{ExtraData: map[any]any{peerKey{}: peer}}, nil
		},
		AuthLogCallback: func(meta ssh.ConnMetadata, method string, err error) {
			if err != nil && method != "none" {
				log.Info("client refused", "user", meta.User(), "method", method, "error", err)
			}
		},
	}
	cfg.AddHostKey(s.HostKey)
	conn.SetDeadline(time.Now().Add(orDefault(s.HandshakeTimeout, DefaultHandshakeTimeout)))
	start := time.Now()
	sconn, chans, reqs, err := ssh.NewServerConn(conn, cfg)
	handshakeDone()
	if err != nil {
		log.Debug("ssh handshake failed", "error", err, "duration", time.Since(start))
		return err
	}
	conn.SetDeadline(time.Time{})
	peer := sconn.Permissions.ExtraData[peerKey{}].(Peer)
	log = log.With("peer", peer.Name)
	log.Debug("peer connected", "user", sconn.User(), "duration", time.Since(start))

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	closed := make(chan struct{})
	go func() {
		sconn.Wait()
		close(closed)
		cancel()
	}()
	go keepAlive(sconn, orDefault(s.KeepaliveInterval, DefaultKeepaliveInterval), orDefault(s.KeepaliveMax, DefaultKeepaliveMax), closed, func(err error) {
		log.Warn("closing the connection", "error", err)
	})
	go refuseGlobal(log, reqs)

	var wg sync.WaitGroup
	defer wg.Wait()
	slots := make(chan struct{}, orDefault(s.MaxSessions, 4))
	for nc := range chans {
		if t := nc.ChannelType(); t != "session" {
			log.Info("channel refused", "type", t)
			nc.Reject(ssh.Prohibited, fmt.Sprintf("butterd: %q channels are refused: this endpoint only runs butterd's replication operations (no forwarding)", t))
			continue
		}
		select {
		case slots <- struct{}{}:
		default:
			nc.Reject(ssh.ResourceShortage, "butterd: too many operations at once on this connection")
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			<-slots
			continue
		}
		wg.Go(func() {
			defer func() { <-slots }()
			s.session(ctx, log, peer, ch, creqs)
		})
	}
	return nil
}

// closeHook calls before when it is closed, then closes its Conn.
type closeHook struct {
	net.Conn
	before func()
}

func (c *closeHook) Close() error {
	c.before()
	return c.Conn.Close()
}

// refuseGlobal answers every global request from the client (tcpip-forward,
// keepalives, ...) with a failure.
func refuseGlobal(log *slog.Logger, reqs <-chan *ssh.Request) {
	for r := range reqs {
		if r.Type != keepaliveRequest {
			log.Info("global request refused", "type", r.Type)
		}
		if r.WantReply {
			r.Reply(false, nil)
		}
	}
}

// refusedNotes are the channel requests refused with a note on stderr (and a
// failure reply); other unknown ones get the failure reply alone.
var refusedNotes = map[string]string{
	"pty-req":                    "no terminal is given",
	"env":                        "environment variables are not taken",
	"x11-req":                    "no X11 forwarding",
	"auth-agent-req@openssh.com": "no agent forwarding",
}

// session runs one session channel: requests before the exec are refused
// (see refusedNotes), a shell or subsystem ends it with exit status 2, the
// exec runs one operation and ends it.
func (s *Server) session(ctx context.Context, log *slog.Logger, peer Peer, ch ssh.Channel, reqs <-chan *ssh.Request) {
	defer ch.Close()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// abort ends the operation with err as its context's cause.
	abort := func(err error) {
		cancel(err)
		ch.Close()
	}
	// Closing the channel ends a handler's reads and writes at once.
	context.AfterFunc(ctx, func() { ch.Close() })
	noted := map[string]bool{}
	for req := range reqs {
		switch req.Type {
		case "exec":
			var payload struct{ Command string }
			if err := ssh.Unmarshal(req.Payload, &payload); err != nil {
				req.Reply(false, nil)
				continue
			}
			req.Reply(true, nil)
			// The client's channel requests after the exec get no answer
			// but a failure; the client closing the channel cancels.
			go func() {
				for r := range reqs {
					if r.WantReply {
						r.Reply(false, nil)
					}
				}
				cancel(nil)
			}()
			status := s.exec(ctx, log, peer, ch, abort, payload.Command)
			exit(ch, status)
			return
		case "shell", "subsystem":
			req.Reply(true, nil)
			log.Info("request refused", "type", req.Type)
			refuse(ch, fmt.Sprintf("%s refused: this endpoint only runs butterd's replication operations (%s, %s, %s, %s), no shell or subsystem", req.Type, VerbList, VerbReceive, VerbSend, VerbSync))
			exit(ch, exitBadRequest)
			return
		default:
			if req.WantReply {
				req.Reply(false, nil)
			}
			if note, ok := refusedNotes[req.Type]; ok && !noted[req.Type] {
				noted[req.Type] = true
				log.Debug("request refused", "type", req.Type)
				refuse(ch, fmt.Sprintf("%s refused: %s on this endpoint, which only runs butterd's replication operations", req.Type, note))
			}
		}
	}
}

// exec runs one operation and returns its exit status, having written its
// result on stdout, or its error on stderr. Its stream is abandoned
// (abort) when the peer leaves it waiting for IdleTimeout.
func (s *Server) exec(ctx context.Context, log *slog.Logger, peer Peer, ch ssh.Channel, abort func(error), cmd string) int {
	start := time.Now()
	_, req, err := parseCommand(cmd)
	if err == nil {
		err = authorize(peer, req)
	}
	if err != nil {
		log.Info("operation refused", "command", truncate(cmd, 200), "error", err)
		refuse(ch, err.Error())
		return exitStatus(err)
	}
	var bytes int64
	switch r := req.(type) {
	case *ListRequest:
		var snaps []SnapshotRef
		if snaps, err = s.Handler.List(ctx, peer, r.Volume); err == nil {
			if snaps == nil {
				snaps = []SnapshotRef{}
			}
			err = json.NewEncoder(ch).Encode(ListResult{Snapshots: snaps})
		}
	case *ReceiveRequest:
		fr := &frameReader{r: &idleReader{r: ch, g: newIdleGuard(s.IdleTimeout, idleFrom(fmt.Sprintf("peer %q", peer.Name)), abort)}}
		var in io.Reader = fr
		var z *zstdReader
		if r.Compression == CompressZstd {
			if z, err = decompressing(fr); err != nil {
				break
			}
			in = z
		}
		var res Result
		res, err = s.Handler.Receive(ctx, peer, *r, in)
		if z != nil {
			if zerr := z.end(); err == nil {
				err = zerr
			}
		}
		if err == nil {
			err = checkEnd(fr)
		}
		if err == nil {
			if res.Bytes == 0 {
				res.Bytes = fr.n
			}
			err = json.NewEncoder(ch).Encode(res)
		}
		bytes = fr.n
	case *SendRequest:
		w := s.streamWriter(peer, ch, abort)
		fw := &frameWriter{w: w}
		if err = s.Handler.Send(ctx, peer, *r, fw); err == nil {
			err = writeEnd(w)
		}
		bytes = fw.n
	case *SyncRequest:
		w := s.streamWriter(peer, ch, abort)
		fw := &frameWriter{w: w}
		if err = s.Handler.Sync(ctx, peer, *r, fw); err == nil {
			err = writeEnd(w)
		}
		bytes = fw.n
	}
	log = log.With("command", truncate(cmd, 200), "bytes", bytes, "duration", time.Since(start))
	if err != nil {
		switch cause := context.Cause(ctx); {
		case errors.Is(cause, errIdle):
			err = cause
		case ctx.Err() != nil:
			err = fmt.Errorf("canceled: the client went away (%v)", err)
		}
		log.Warn("operation failed", "error", err)
		refuse(ch, err.Error())
		return exitStatus(err)
	}
	log.Debug("operation done")
	return exitOK
}

// streamWriter is where a pull's stream goes: ch, abandoned when the peer
// reads nothing for IdleTimeout.
func (s *Server) streamWriter(peer Peer, ch ssh.Channel, abort func(error)) io.Writer {
	return &idleWriter{w: ch, g: newIdleGuard(s.IdleTimeout, idleTo(fmt.Sprintf("peer %q", peer.Name)), abort)}
}

// checkEnd makes sure a handler that succeeded had the whole stream: a cut
// stream fails, whatever the handler made of it, and so does a handler that
// left data unread.
func checkEnd(fr *frameReader) error {
	if fr.done {
		return nil
	}
	if fr.err != nil {
		return fr.err
	}
	for b := make([]byte, 1); ; {
		n, err := fr.Read(b)
		switch {
		case err == io.EOF:
			return nil
		case err != nil:
			return err
		case n > 0:
			return fmt.Errorf("the receiver stopped after %d bytes, before the end of the stream", fr.n-1)
		}
	}
}

// authorize checks the peer's rights: push for receive, pull for send and
// sync, either for list, and the volume among its volumes.
func authorize(peer Peer, req request) error {
	var volume, right string
	var ok bool
	switch r := req.(type) {
	case *ListRequest:
		volume, right, ok = r.Volume, "push or pull", peer.Push || peer.Pull
	case *ReceiveRequest:
		volume, right, ok = r.Volume, "push", peer.Push
	case *SendRequest:
		volume, right, ok = r.Volume, "pull", peer.Pull
	case *SyncRequest:
		volume, right, ok = r.Volume, "pull", peer.Pull
	}
	if !ok {
		return errorf(ErrDenied, "refused: peer %q has no %s right on this host (butterctl remote ls there shows its rights)", peer.Name, right)
	}
	if !peer.MayUse(volume) {
		return errorf(ErrDenied, "refused: peer %q may not use volume %q here, only %q", peer.Name, volume, peer.Volumes)
	}
	return nil
}

// refuse writes one line "butterd: msg" on the channel's stderr.
func refuse(ch ssh.Channel, msg string) {
	fmt.Fprintf(ch.Stderr(), "butterd: %s\n", msg)
}

// exit ends the channel's output with the exit status, as sshd does: EOF,
// exit-status; the caller closes the channel.
func exit(ch ssh.Channel, status int) {
	ch.CloseWrite()
	ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{uint32(status)}))
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

func (s *Server) log() *slog.Logger {
	if s.Log == nil {
		return slog.Default().With("subsystem", "ssh")
	}
	return s.Log.With("subsystem", "ssh")
}
