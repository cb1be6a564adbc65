package remote

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// DefaultIdleTimeout bounds how long a transfer waits on the other end:
// keepalives show that the link is up, not that the other end still
// sends or reads the stream.
const DefaultIdleTimeout = 5 * time.Minute

// errIdle marks a transfer abandoned because the other end moved no data
// for the idle timeout.
var errIdle = errors.New("transfer abandoned")

// idlePiece is the most an idleWriter hands to its writer at once, so
// that a slow but moving link is never taken for a stalled one.
const idlePiece = 32 << 10

// idleGuard abandons a transfer when one read or write of it waits on the
// other end longer than its timeout: it calls abort with the error, which
// closes what the read or write waits on, and that read or write returns
// the error. Only time spent waiting counts: our own side being slow
// between reads or writes does not.
type idleGuard struct {
	timeout time.Duration
	what    string // "no data from X" or "X took no data"
	abort   func(error)

	mu    sync.Mutex
	timer *time.Timer
	err   error
}

func newIdleGuard(timeout time.Duration, what string, abort func(error)) *idleGuard {
	return &idleGuard{timeout: orDefault(timeout, DefaultIdleTimeout), what: what, abort: abort}
}

// wait runs fn, one read or write, under the guard.
func (g *idleGuard) wait(fn func() (int, error)) (int, error) {
	g.mu.Lock()
	if g.err != nil {
		g.mu.Unlock()
		return 0, g.err
	}
	if g.timer == nil {
		g.timer = time.AfterFunc(g.timeout, g.expire)
	} else {
		g.timer.Reset(g.timeout)
	}
	g.mu.Unlock()
	n, err := fn()
	g.mu.Lock()
	g.timer.Stop()
	if g.err != nil {
		err = g.err
	}
	g.mu.Unlock()
	return n, err
}

func (g *idleGuard) expire() {
	g.mu.Lock()
	if g.err != nil {
		g.mu.Unlock()
		return
	}
	g.err = connError(errIdle, "%s for %v: %v", g.what, g.timeout, errIdle)
	err := g.err
	g.mu.Unlock()
	g.abort(err)
}

// fired is the guard's error once it abandoned the transfer, else nil.
func (g *idleGuard) fired() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.err
}

// idleReader reads r under a guard.
type idleReader struct {
	r io.Reader
	g *idleGuard
}

func (ir *idleReader) Read(p []byte) (int, error) {
	return ir.g.wait(func() (int, error) { return ir.r.Read(p) })
}

// idleWriter writes to w under a guard, in pieces of at most idlePiece.
type idleWriter struct {
	w io.Writer
	g *idleGuard
}

func (iw *idleWriter) Write(p []byte) (int, error) {
	done := 0
	for len(p) > 0 {
		piece := p[:min(len(p), idlePiece)]
		n, err := iw.g.wait(func() (int, error) { return iw.w.Write(piece) })
		done += n
		if err != nil {
			return done, err
		}
		p = p[len(piece):]
	}
	return done, nil
}

// idleFrom and idleTo word the guard's error: who kept the transfer
// waiting, and how.
func idleFrom(who string) string { return fmt.Sprintf("no data from %s", who) }
func idleTo(who string) string   { return fmt.Sprintf("%s took no data", who) }
