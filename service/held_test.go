package service

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"
)

// Containers held for a snapshot are on record until they run again; what
// a crash left held is resumed at the next start, also when the engine
// answers only later.
func TestHeldContainersResumedAfterACrash(t *testing.T) {
	f := &fakeEngine{containers: []Container{
		container("a", "running", "butterd.action=pause"),
		container("b", "running", "butterd.action=stop"),
		container("c", "running"),
	}}
	s := quiesceStore(t, f)
	if _, err := s.consistently(context.Background(), []string{"v1"}, f.snapshot(nil)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.heldPath()); !os.IsNotExist(err) {
		t.Fatalf("record of held containers left after a snapshot: %v", err)
	}
	f.fail = map[string]error{"pause a": errors.New("no")}
	s.consistently(context.Background(), []string{"v1"}, f.snapshot(nil))
	if _, err := os.Stat(s.heldPath()); !os.IsNotExist(err) {
		t.Fatalf("record of held containers left after a failed pause undone: %v", err)
	}

	// A crash while held: hold ran, nothing after it.
	f.fail = nil
	qs, _, err := s.containersUsing(context.Background(), []string{"v1"})
	if err != nil {
		t.Fatal(err)
	}
	todo := qs[:2] // a and b: c is left alone
	if err := s.recordHeld(todo); err != nil {
		t.Fatal(err)
	}
	for _, action := range []string{ActionStop, ActionPause} {
		if _, err := s.hold(context.Background(), todo, action); err != nil {
			t.Fatal(err)
		}
	}
	f.takeCalls()

	next := quiesceStore(t, f)
	next.stateDir = s.stateDir
	running := map[string]time.Time{}
	// Docker not up yet; b still stopping (its state is running).
	f.fail = map[string]error{"unpause a": fmt.Errorf("down: %w", ErrNoEngine)}
	if left := next.resumeOnce(running); left != 2 {
		t.Errorf("%d left, want 2", left)
	}
	f.fail = nil
	if left := next.resumeOnce(running); left != 1 {
		t.Errorf("%d left, want 1 (b stopping)", left)
	}
	f.containers[1].State = "exited"
	if left := next.resumeOnce(running); left != 0 {
		t.Errorf("%d left, want 0", left)
	}
	wantCalls(t, f, "unpause a", "state b", "unpause a", "state b", "state b", "start b")
	if _, err := os.Stat(s.heldPath()); !os.IsNotExist(err) {
		t.Errorf("record stays once every container runs again: %v", err)
	}
}

// A container to start again that stays running past the grace (its stop
// never reached Docker) is taken as running.
func TestHeldRunningForGood(t *testing.T) {
	f := &fakeEngine{containers: []Container{container("b", "running", "butterd.action=stop")}}
	s := quiesceStore(t, f)
	qs, _, _ := s.containersUsing(context.Background(), []string{"v1"})
	if err := s.recordHeld(qs); err != nil {
		t.Fatal(err)
	}
	running := map[string]time.Time{"id-b": time.Now().Add(-stopGrace)}
	if left := s.resumeOnce(running); left != 0 {
		t.Errorf("%d left, want 0", left)
	}
	wantCalls(t, f, "list v1", "state b")
}

// A container a snapshot could not unpause is unpaused in the
// background, without waiting for butterd's next start, by one loop at a
// time that ends with the record or with the store.
func TestHeldRetriedInBackground(t *testing.T) {
	defer func(d time.Duration) { resumeEvery = d }(resumeEvery)
	resumeEvery = time.Millisecond
	f := &fakeEngine{containers: []Container{
		container("a", "running", "butterd.action=pause"),
		container("b", "running", "butterd.action=stop"),
	}}
	unpauses := 0
	f.onCall = func(call string) {
		if call == "unpause a" {
			f.mu.Lock()
			unpauses++
			if unpauses == 3 {
				delete(f.fail, "unpause a") // the engine recovers, for a
			}
			f.mu.Unlock()
		}
	}
	f.fail = map[string]error{"unpause a": errors.New("engine hiccup"), "start b": errors.New("engine hiccup")}
	s := quiesceStore(t, f)
	s.closed = make(chan struct{})
	if _, err := s.consistently(context.Background(), []string{"v1"}, f.snapshot(nil)); err == nil {
		t.Fatal("no error for the failed unpause and start")
	}
	f.setState("b", "exited")
	// b's start fails until the store closes; a is unpaused on the third
	// try and leaves the record.
	waitFor(t, "a unpaused in the background", func() bool {
		var d heldData
		readJSON(s.heldPath(), &d)
		return len(d.Held) == 1 && d.Held[0].ID == "id-b"
	})
	s.quiesceMu.Lock()
	if !s.resuming {
		t.Errorf("the background loop ended while b is on record")
	}
	s.quiesceMu.Unlock()
	close(s.closed)
	waitFor(t, "the background loop ends with the store", func() bool {
		s.quiesceMu.Lock()
		defer s.quiesceMu.Unlock()
		return !s.resuming
	})
	calls := f.takeCalls()
	if n := slices.Index(calls, "start b"); n < 0 || !slices.Contains(calls[n+1:], "start b") {
		t.Errorf("calls %q: want the start of b tried again", calls)
	}

	// A container removed meanwhile leaves the record.
	f.fail = map[string]error{"state b": fmt.Errorf("no such container: %w", ErrNotFound)}
	if left := s.resumeOnce(map[string]time.Time{}); left != 0 {
		t.Errorf("%d left, want 0 (b is gone)", left)
	}
}

// waitFor waits until cond holds, or fails after a while.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not seen: %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
