package main

import (
	"net"
	"testing"
	"time"
)

// A connection the activity tracks (an SSH connection to the replication
// endpoint) keeps butterd busy until it is closed, however long it stays
// quiet.
func TestActivityTracksConnections(t *testing.T) {
	a := newActivity()
	long := time.Now().Add(-time.Hour).UnixNano()
	a.last.Store(long)
	if a.idleFor() < time.Hour {
		t.Fatalf("idle for %v, want an hour", a.idleFor())
	}
	c1, c2 := net.Pipe()
	defer c2.Close()
	c := a.track(c1)
	a.last.Store(long)
	if d := a.idleFor(); d != 0 {
		t.Errorf("idle for %v with a connection open, want 0", d)
	}
	c.Close()
	c.Close() // twice: counted once
	if n := a.inflight.Load(); n != 0 {
		t.Errorf("%d requests in flight after the close, want 0", n)
	}
	if d := a.idleFor(); d <= 0 || d > time.Minute {
		t.Errorf("idle for %v right after the close, want a moment", d)
	}
}

// exitWhenIdle sets an idle limit even without EXIT_IDLE, and the shorter
// of both applies.
func TestActivityLimit(t *testing.T) {
	a := newActivity()
	if got := a.limit(0); got != 0 {
		t.Errorf("limit without EXIT_IDLE = %v, want 0 (never)", got)
	}
	if got := a.limit(time.Minute); got != time.Minute {
		t.Errorf("limit = %v, want EXIT_IDLE", got)
	}
	a.exitWhenIdle(2 * time.Second)
	if got := a.limit(0); got != 2*time.Second {
		t.Errorf("limit after exitWhenIdle = %v, want 2s", got)
	}
	if got := a.limit(time.Second); got != time.Second {
		t.Errorf("limit = %v, want the shorter EXIT_IDLE", got)
	}
}
