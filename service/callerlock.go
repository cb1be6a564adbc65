package service

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// DefaultBusyWait is how long a call made for a waiting client (Docker's
// plugin calls) waits for a volume that another operation holds before it
// is answered busy.
const DefaultBusyWait = 5 * time.Second

// lockFunc takes a volume's lock, or says why it was not taken.
type lockFunc func(name string) (unlock func(), err error)

// waitLock waits for a volume's lock for as long as it takes: for callers
// that wait themselves (D-Bus, jobs, the CLI).
func (s *Store) waitLock(name string) (func(), error) { return s.locks.lock(name), nil }

// callerLock locks volumes for what (a mount, a removal) on behalf of a
// client waiting for the answer. It never keeps that client waiting long:
// when another operation holds the volume for longer than the busy wait,
// it answers busy at once, naming the job working on the volume when there
// is one; when ctx ends first (the client went away), it gives up. Either
// way nothing is locked and the caller changes nothing.
func (s *Store) callerLock(ctx context.Context, what string) lockFunc {
	return func(name string) (func(), error) {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("%s of volume %q not done: its caller went away (%w)", what, name, context.Cause(ctx))
		}
		// A free volume is taken at once, however short the wait.
		if unlock, ok := s.locks.tryLock(name); ok {
			return unlock, nil
		}
		wait := s.cfg.BusyWait
		if wait <= 0 {
			wait = DefaultBusyWait
		}
		wctx, cancel := context.WithTimeout(ctx, wait)
		defer cancel()
		unlock, err := s.locks.lockCtx(wctx, name)
		switch {
		case err == nil:
			return unlock, nil
		case ctx.Err() != nil:
			return nil, fmt.Errorf("%s of volume %q not done: its caller went away while it waited for the volume (%w)", what, name, context.Cause(ctx))
		}
		return nil, s.busyVolume(name, wait)
	}
}

// busyVolume is the answer to a caller that found a volume held for wait.
func (s *Store) busyVolume(name string, wait time.Duration) error {
	if j, ok := s.jobOn(name); ok {
		return errorf(ErrBusy, "volume %q is busy: %s job %d is working on it; try again when it ends (butterctl job %d shows how far it is)", name, j.Kind, j.ID, j.ID)
	}
	return errorf(ErrBusy, "volume %q is busy: another operation on it (a snapshot, restore or removal) has held it for over %v; try again in a moment", name, wait)
}

// jobOn finds the running job, the oldest first, that works on a volume or
// one of its snapshots.
func (s *Store) jobOn(volume string) (Job, bool) {
	if s.jobs == nil {
		return Job{}, false
	}
	s.jobs.mu.Lock()
	var on []Job
	for _, e := range s.jobs.active {
		target, _, _ := strings.Cut(e.job.Target, "@")
		if e.job.State == JobRunning && target == volume {
			on = append(on, e.job)
		}
	}
	s.jobs.mu.Unlock()
	if len(on) == 0 {
		return Job{}, false
	}
	return slices.MinFunc(on, func(a, b Job) int { return cmp.Compare(a.ID, b.ID) }), true
}
