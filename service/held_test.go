package service

import (
	"context"
	"errors"
	"fmt"
	"os"
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
		t.Fatalf("record of held containers left after a failed pause: %v", err)
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
