package remote

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"golang.org/x/crypto/ssh"
)

// Defaults of Options and Server.
const (
	DefaultKeepaliveInterval = 15 * time.Second
	DefaultKeepaliveMax      = 3
	DefaultDialTimeout       = 30 * time.Second
)

// keepaliveRequest is the global request OpenSSH uses for the same purpose;
// any answer, even a failure, shows the link is up.
const keepaliveRequest = "keepalive@openssh.com"

// keepAlive sends a keepalive request every interval, one at a time, and
// when max intervals in a row pass with one unanswered it calls dead and
// closes conn: a link that stops carrying anything fails within
// (max+1)×interval. It stops when stop is closed.
func keepAlive(conn ssh.Conn, interval time.Duration, max int, stop <-chan struct{}, dead func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	replied := make(chan struct{}, 1)
	outstanding, missed := false, 0
	for {
		select {
		case <-stop:
			return
		case <-replied:
			outstanding, missed = false, 0
		case <-t.C:
			if !outstanding {
				outstanding = true
				go func() {
					if _, _, err := conn.SendRequest(keepaliveRequest, true, nil); err == nil {
						replied <- struct{}{}
					}
				}()
				continue
			}
			if missed++; missed >= max {
				dead(fmt.Errorf("no answer to a keepalive for %v (%d × %v): the link is down", time.Duration(max)*interval, max, interval))
				conn.Close()
				return
			}
		}
	}
}

// Options tune a client connection.
type Options struct {
	// DialTimeout bounds the TCP connect and, again, the SSH handshake
	// (DefaultDialTimeout when 0).
	DialTimeout time.Duration
	// A keepalive goes out every KeepaliveInterval; after KeepaliveMax
	// intervals without its answer the connection is closed
	// (DefaultKeepaliveInterval and DefaultKeepaliveMax when 0).
	KeepaliveInterval time.Duration
	KeepaliveMax      int
	// IdleTimeout abandons a transfer that the server leaves waiting
	// that long: a Push it reads nothing more of, a Pull or Sync it sends
	// nothing more of, an answer that does not come after a Push's end
	// (DefaultIdleTimeout when 0).
	IdleTimeout time.Duration
	// BandwidthLimit caps the stream bytes a Push sends, on the wire
	// (after compression), in bytes per second; 0: no limit.
	BandwidthLimit int64
	// Dial makes the TCP connection (a net.Dialer's when nil).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	Log  *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.DialTimeout <= 0 {
		o.DialTimeout = DefaultDialTimeout
	}
	if o.KeepaliveInterval <= 0 {
		o.KeepaliveInterval = DefaultKeepaliveInterval
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.KeepaliveMax <= 0 {
		o.KeepaliveMax = DefaultKeepaliveMax
	}
	if o.Dial == nil {
		o.Dial = (&net.Dialer{KeepAlive: o.KeepaliveInterval}).DialContext
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	o.Log = o.Log.With("subsystem", "ssh")
	return o
}

// dial connects within DialTimeout; its errors are connectivity errors.
func (o Options) dial(ctx context.Context, addr string) (net.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, o.DialTimeout)
	defer cancel()
	conn, err := o.Dial(dctx, "tcp", addr)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, connError(err, "connect to %s: %v", displayHost(addr), err)
	}
	return conn, nil
}

// deadline is d from now, or ctx's deadline when sooner.
func deadline(ctx context.Context, d time.Duration) time.Time {
	t := time.Now().Add(d)
	if dl, ok := ctx.Deadline(); ok && dl.Before(t) {
		return dl
	}
	return t
}
