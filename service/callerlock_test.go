package service

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestLockCtx(t *testing.T) {
	var k keyedMutex
	unlock := k.lock("v1")

	// Another key is free.
	other, err := k.lockCtx(context.Background(), "v2")
	if err != nil {
		t.Fatalf("lock of a free key: %v", err)
	}
	other()

	// A waiter whose context ends gives up and holds nothing.
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan error, 1)
	go func() {
		u, err := k.lockCtx(ctx, "v1")
		if u != nil {
			u()
		}
		got <- err
	}()
	cancel()
	if err := <-got; !errors.Is(err, context.Canceled) {
		t.Fatalf("lockCtx with its context canceled while the key is held: %v, want context.Canceled", err)
	}

	// A context that has ended never takes the lock, even a free one.
	unlock()
	if u, err := k.lockCtx(ctx, "v1"); err == nil || u != nil {
		t.Fatalf("lockCtx with an ended context took the lock")
	}
	if len(k.m) != 0 {
		t.Fatalf("entries left after every lock was let go: %v", k.m)
	}

	// A waiter gets the lock when it is let go.
	unlock = k.lock("v1")
	go func() {
		u, err := k.lockCtx(context.Background(), "v1")
		if err == nil {
			u()
		}
		got <- err
	}()
	unlock()
	if err := <-got; err != nil {
		t.Fatalf("lockCtx after the holder let go: %v", err)
	}
	if len(k.m) != 0 {
		t.Fatalf("entries left after every lock was let go: %v", k.m)
	}
}

func TestCallerLockBusyNamesTheJob(t *testing.T) {
	s := jobStore(t, t.TempDir())
	s.cfg.BusyWait = time.Millisecond
	unlock := s.locks.lock("v1")
	release := make(chan struct{})
	j, err := s.StartJob("sync", "v1", func(ctx context.Context, p *JobProgress) error {
		<-release
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer close(release)
	waitState(t, s, j.ID, JobRunning)

	_, err = s.callerLock(context.Background(), "mount")("v1")
	if !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), `volume "v1" is busy: sync job`) {
		t.Fatalf("lock of a volume a sync job holds: %v, want busy naming the sync job", err)
	}
	free, err := s.callerLock(context.Background(), "mount")("v2")
	if err != nil {
		t.Fatalf("lock of a free volume: %v", err)
	}
	free()
	unlock()

	// Held by an operation that is no job: busy all the same.
	defer s.locks.lock("v3")()
	_, err = s.callerLock(context.Background(), "mount")("v3")
	if !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "another operation on it") {
		t.Fatalf("lock of a volume held by another operation: %v, want busy", err)
	}
}
