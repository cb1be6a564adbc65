package main

import (
	"context"
	"net/http"
	"sync/atomic"
	"time"
)

// activity tracks plugin requests in flight and the time of the last
// request or D-Bus call, so butterd can exit when idle and be started again
// by its socket or by bus activation.
type activity struct {
	inflight atomic.Int64
	last     atomic.Int64 // unix nanoseconds
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

// idleFor reports how long nothing happened (0 while a request runs).
func (a *activity) idleFor() time.Duration {
	if a.inflight.Load() > 0 {
		return 0
	}
	return time.Since(time.Unix(0, a.last.Load()))
}

// watchIdle calls stop once nothing happened for limit and busy reports
// nothing running. limit 0 means never.
func watchIdle(ctx context.Context, limit time.Duration, a *activity, busy func() bool, stop func()) {
	if limit <= 0 {
		return
	}
	tick := min(limit/4, time.Second)
	t := time.NewTicker(max(tick, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
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
