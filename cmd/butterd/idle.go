package main

import (
	"context"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// activity tracks plugin requests in flight and the time of the last
// request or D-Bus call, so butterd can exit when idle and be started again
// by its socket or by bus activation.
type activity struct {
	inflight atomic.Int64
	last     atomic.Int64 // unix nanoseconds
	soon     atomic.Int64 // when set, an idle limit that applies even without EXIT_IDLE (ns)
}

func newActivity() *activity {
	a := &activity{}
	a.touch()
	return a
}

func (a *activity) touch() { a.last.Store(time.Now().UnixNano()) }

// wrap counts a handler's requests.
func (a *activity) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.inflight.Add(1)
		a.touch()
		defer func() {
			a.touch()
			a.inflight.Add(-1)
		}()
		h.ServeHTTP(w, r)
	})
}

// exitWhenIdle asks butterd to exit after limit without activity, even
// when EXIT_IDLE is 0: systemd starts it again, handing it its sockets.
func (a *activity) exitWhenIdle(limit time.Duration) { a.soon.Store(int64(limit)) }

// limit is the idle time after which butterd exits: the shorter of
// EXIT_IDLE (0: never) and exitWhenIdle's; 0 when neither is set.
func (a *activity) limit(exitIdle time.Duration) time.Duration {
	soon := time.Duration(a.soon.Load())
	switch {
	case soon <= 0:
		return exitIdle
	case exitIdle <= 0:
		return soon
	}
	return min(soon, exitIdle)
}

// track counts a connection as a request in flight until it is closed:
// butterd never exits idle while one is open.
func (a *activity) track(c net.Conn) net.Conn {
	a.inflight.Add(1)
	a.touch()
	return &trackedConn{Conn: c, a: a}
}

type trackedConn struct {
	net.Conn
	a    *activity
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.a.touch()
		c.a.inflight.Add(-1)
	})
	return c.Conn.Close()
}

// idleFor reports how long nothing happened (0 while a request runs).
func (a *activity) idleFor() time.Duration {
	if a.inflight.Load() > 0 {
		return 0
	}
	return time.Since(time.Unix(0, a.last.Load()))
}

// watchIdle calls stop once nothing happened for the idle limit (EXIT_IDLE,
// or sooner after exitWhenIdle) and busy reports nothing running. Without
// a limit it only waits for one to be set.
func watchIdle(ctx context.Context, exitIdle time.Duration, a *activity, busy func() bool, stop func()) {
	tick := time.Second
	if exitIdle > 0 {
		tick = min(exitIdle/4, time.Second)
	}
	t := time.NewTicker(max(tick, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			limit := a.limit(exitIdle)
			if limit <= 0 {
				continue
			}
			if busy() {
				a.touch()
				continue
			}
			if a.idleFor() >= limit {
				stop()
				return
			}
		}
	}
}
