package service

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"time"
)

// Containers that a consistent snapshot pauses or stops are recorded in
// state/held.json before the engine is asked to, and dropped once they run
// again. Those that could not be put back (a failed unpause or start, a
// crash in between) are unpaused or started again in the background,
// at once at the next start, with growing pauses between the tries, until
// the record is empty or the store closes: Docker may well start after
// butterd (it waits for the plugin). Their post commands are not run then
// (the log says so).

// heldRecord is a container held for a snapshot.
type heldRecord struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Action string `json:"action"` // pause or stop
}

type heldData struct {
	Held []heldRecord `json:"held"`
}

// Resuming held containers in the background: the first pause between
// tries and the longest, and how long a container to be started again may
// still be running (its stop under way, or never issued) before it is
// taken as running for good.
var (
	resumeEvery   = 2 * time.Second
	resumeMaxWait = 5 * time.Minute
	stopGrace     = time.Minute
)

func (s *Store) heldPath() string { return filepath.Join(s.stateDir, "held.json") }

// changeHeld rewrites the record with fn. Callers hold s.quiesceMu.
func (s *Store) changeHeld(fn func([]heldRecord) []heldRecord) error {
	var d heldData
	if _, err := readJSON(s.heldPath(), &d); err != nil {
		return err
	}
	next := fn(d.Held)
	if len(next) == 0 {
		return removeSynced(s.heldPath())
	}
	return writeJSON(s.heldPath(), heldData{next})
}

// recordHeld adds containers about to be held.
func (s *Store) recordHeld(qs []*quiesced) error {
	return s.changeHeld(func(rs []heldRecord) []heldRecord {
		for _, q := range qs {
			r := heldRecord{ID: q.c.ID, Name: q.c.Name, Action: q.action}
			if i := slices.IndexFunc(rs, func(r heldRecord) bool { return r.ID == q.c.ID }); i >= 0 {
				rs[i] = r
			} else {
				rs = append(rs, r)
			}
		}
		return rs
	})
}

// dropHeld removes containers that run again, or that are beyond help.
func (s *Store) dropHeld(ids ...string) error {
	return s.changeHeld(func(rs []heldRecord) []heldRecord {
		return slices.DeleteFunc(rs, func(r heldRecord) bool { return slices.Contains(ids, r.ID) })
	})
}

// resumeHeld starts, at Open, the resumption of the containers a crash
// left paused or stopped, if any.
func (s *Store) resumeHeld() {
	var d heldData
	if _, err := readJSON(s.heldPath(), &d); err != nil || len(d.Held) == 0 {
		if err != nil {
			s.log.Error("containers held for a snapshot: record not read", "file", s.heldPath(), "error", err)
		}
		return
	}
	if s.cfg.Containers == nil {
		s.log.Error("butterd stopped while containers were held for a snapshot, and no container engine is configured: unpause or start them by hand", "containers", d.Held)
		return
	}
	s.log.Warn("butterd stopped while containers were held for a snapshot: resuming them (their post commands do not run)", "containers", d.Held)
	s.quiesceMu.Lock()
	defer s.quiesceMu.Unlock()
	s.resumeInBackground(0)
}

// resumeInBackground starts resumeLoop, first trying after wait, unless
// it runs. Callers hold s.quiesceMu.
func (s *Store) resumeInBackground(wait time.Duration) {
	if s.resuming {
		return
	}
	s.resuming = true
	go s.resumeLoop(wait)
}

// resumeLoop resumes the recorded containers until none is left or the
// store closes, the pause between tries doubling up to resumeMaxWait.
func (s *Store) resumeLoop(wait time.Duration) {
	running := map[string]time.Time{}
	for {
		t := time.NewTimer(wait)
		select {
		case <-s.closed:
			t.Stop()
			s.quiesceMu.Lock()
			s.resuming = false
			s.quiesceMu.Unlock()
			return
		case <-t.C:
		}
		if s.resumeOnce(running) == 0 {
			return
		}
		wait = min(max(2*wait, resumeEvery), resumeMaxWait)
	}
}

// resumeOnce tries each recorded container once and says how many are
// left to try again; with none left, resumeLoop ends. running holds since
// when each container to start again was seen running.
func (s *Store) resumeOnce(running map[string]time.Time) (left int) {
	s.quiesceMu.Lock()
	defer s.quiesceMu.Unlock()
	defer func() {
		if left == 0 {
			s.resuming = false
		}
	}()
	var d heldData
	if _, err := readJSON(s.heldPath(), &d); err != nil {
		s.log.Error("containers held for a snapshot: record not read; unpause or start them by hand", "file", s.heldPath(), "error", err)
		return 0
	}
	eng := s.cfg.Containers
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var done []string
	for _, r := range d.Held {
		var err error
		if r.Action == ActionPause {
			err = eng.Unpause(ctx, r.ID)
		} else {
			var state string
			state, err = eng.State(ctx, r.ID)
			if err == nil && (state == "running" || state == "restarting") {
				// Its stop may still be under way: start it once it ends.
				if since, ok := running[r.ID]; !ok {
					running[r.ID] = time.Now()
					continue
				} else if time.Since(since) < stopGrace {
					continue
				}
				s.log.Info("container held for a snapshot runs", "container", r.Name)
				done = append(done, r.ID)
				continue
			}
			if err == nil {
				err = eng.Start(ctx, r.ID)
			}
		}
		switch {
		case errors.Is(err, ErrNoEngine):
			continue // Docker is not up yet
		case errors.Is(err, ErrNotFound):
			s.log.Info("container held for a snapshot is gone", "container", r.Name, "action", r.Action)
		case err != nil:
			s.log.Error("container held for a snapshot not resumed yet: tried again later", "container", r.Name, "action", r.Action, "error", err)
			continue
		default:
			s.log.Info("container held for a snapshot resumed", "container", r.Name, "action", r.Action)
		}
		done = append(done, r.ID)
	}
	if err := s.dropHeld(done...); err != nil {
		s.log.Error("containers held for a snapshot: record not updated", "file", s.heldPath(), "error", err)
		return 0
	}
	return len(d.Held) - len(done)
}
