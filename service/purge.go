package service

import (
	"context"
	"errors"
	"fmt"
	"time"

	"butterd/service/retention"
)

// PurgeEntry is one snapshot of a purge plan and why it is kept or deleted.
type PurgeEntry struct {
	Name   string
	Time   time.Time // zero when the name does not parse
	Reason string
	// Overridden is the pattern's reason to delete a snapshot that a
	// protection keeps.
	Overridden string
}

// PurgePlan is what a purge of a volume's snapshots does at a moment.
type PurgePlan struct {
	Volume   string
	Pattern  string // canonical
	At       time.Time
	Keep     []PurgeEntry
	Delete   []PurgeEntry
	Warnings []string
}

// PlanPurge computes, without changing anything, what purging the
// snapshots of volume with pattern at the moment at deletes and keeps. The
// volume need not exist locally any more.
func (s *Store) PlanPurge(volume, pattern string, at time.Time) (PurgePlan, error) {
	if err := ValidateName(volume); err != nil {
		return PurgePlan{}, err
	}
	p, warnings, err := retention.ParsePattern(pattern)
	if err != nil {
		return PurgePlan{}, errorf(ErrInvalidArg, "%v", err)
	}
	protect := s.snapshotsInUse()
	for name, why := range s.sharedProtections(volume) {
		if prev, ok := protect[name]; ok {
			why = prev + "; " + why
		}
		protect[name] = why
	}
	s.mu.RLock()
	entries := s.snapshotsOfLocked(volume)
	snaps := make([]retention.Snapshot, 0, len(entries))
	for _, e := range entries {
		t := time.Time{}
		if !e.nameTime.IsZero() {
			t = e.time()
		}
		snaps = append(snaps, retention.Snapshot{Name: e.name, Time: t})
		if s.meta.isPinned(e.name) {
			protect[e.name] = "pinned"
		}
	}
	s.mu.RUnlock()
	res := retention.Plan(p, snaps, at, time.Local, protect)
	plan := PurgePlan{Volume: volume, Pattern: p.String(), At: at, Warnings: warnings}
	for _, e := range res.Keep {
		plan.Keep = append(plan.Keep, PurgeEntry(e))
	}
	for _, e := range res.Delete {
		plan.Delete = append(plan.Delete, PurgeEntry(e))
	}
	return plan, nil
}

// Purge deletes, as a job, what PlanPurge says at the moment the job runs.
// Snapshots that disappear meanwhile are skipped; the first other failure
// stops the job.
func (s *Store) Purge(volume, pattern string) (Job, error) {
	if _, err := s.PlanPurge(volume, pattern, s.cfg.Now()); err != nil {
		return Job{}, err
	}
	return s.StartJob("purge", volume, func(ctx context.Context, p *JobProgress) error {
		plan, err := s.PlanPurge(volume, pattern, s.cfg.Now())
		if err != nil {
			return err
		}
		err = lowPriority(s.log, func() error {
			for i, e := range plan.Delete {
				if err := ctx.Err(); err != nil {
					return err
				}
				if err := s.RemoveSnapshot(e.Name); err != nil && !errors.Is(err, ErrNotFound) {
					return fmt.Errorf("purge of %q stopped after %d of %d snapshots: %w", volume, i, len(plan.Delete), err)
				}
				p.SetFraction(float64(i+1) / float64(len(plan.Delete)))
			}
			return nil
		})
		if err != nil {
			return err
		}
		s.log.Info("purged", "volume", volume, "pattern", plan.Pattern, "deleted", len(plan.Delete), "kept", len(plan.Keep))
		return nil
	})
}

// Pin keeps a snapshot from being purged (on=false lets purge take it
// again).
func (s *Store) Pin(name string, on bool) error {
	if _, err := s.GetSnapshot(name); err != nil {
		return err
	}
	return s.meta.update(func(d *metaData) { setFlag(&d.Pinned, name, on) })
}
