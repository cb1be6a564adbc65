package service

import (
	"context"
	"errors"
	"fmt"
	"strings"
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
// stops the job. The pattern's warnings (PurgePlan.Warnings) are returned,
// logged by the job and part of its summary.
func (s *Store) Purge(volume, pattern string) (Job, []string, error) {
	first, err := s.PlanPurge(volume, pattern, s.cfg.Now())
	if err != nil {
		return Job{}, nil, err
	}
	j, err := s.StartJob("purge", volume, func(ctx context.Context, p *JobProgress) error {
		plan, err := s.PlanPurge(volume, pattern, s.cfg.Now())
		if err != nil {
			return err
		}
		for _, w := range plan.Warnings {
			s.jobLog(p).Warn("purge pattern", "pattern", pattern, "warning", w)
		}
		var skipped []string
		err = lowPriority(s.jobLog(p), func() error {
			for i, e := range plan.Delete {
				if err := ctx.Err(); err != nil {
					return err
				}
				why, err := s.purgeOne(volume, pattern, e.Name, s.cfg.Now())
				if err != nil && !errors.Is(err, ErrNotFound) {
					return fmt.Errorf("purge of %q stopped after %d of %d snapshots: %w", volume, i, len(plan.Delete), err)
				}
				if why != "" {
					s.jobLog(p).Info("purge skips a snapshot protected since the plan", "snapshot", e.Name, "reason", why)
					skipped = append(skipped, fmt.Sprintf("%s (%s)", e.Name, why))
				}
				p.SetFraction(float64(i+1) / float64(len(plan.Delete)))
			}
			return nil
		})
		if err != nil {
			return err
		}
		deleted := len(plan.Delete) - len(skipped)
		summary := fmt.Sprintf("deleted %d snapshot(s) of %s, kept %d", deleted, volume, len(plan.Keep)+len(skipped))
		if len(skipped) > 0 {
			summary += "; kept because protected since the plan: " + strings.Join(skipped, ", ")
		}
		if len(plan.Warnings) > 0 {
			summary += "; pattern: " + strings.Join(plan.Warnings, "; ")
		}
		p.SetSummary(summary)
		s.jobLog(p).Info("purged", "pattern", plan.Pattern, "deleted", deleted, "kept", len(plan.Keep)+len(skipped), "skipped", len(skipped))
		return nil
	})
	return j, first.Warnings, err
}

// purgeOne deletes a planned snapshot unless, planned again under the
// volume's lock at at, it is kept now (pinned, used by a job, newest,
// newest shared with a peer since the plan was made): it then returns why.
func (s *Store) purgeOne(volume, pattern, name string, at time.Time) (kept string, err error) {
	defer s.locks.lock(volume)()
	plan, err := s.PlanPurge(volume, pattern, at)
	if err != nil {
		return "", err
	}
	for _, e := range plan.Keep {
		if e.Name == name {
			return e.Reason, nil
		}
	}
	return "", s.removeSnapshotLocked(name)
}

// Pin keeps a snapshot from being purged (on=false lets purge take it
// again).
func (s *Store) Pin(name string, on bool) error {
	if _, err := s.GetSnapshot(name); err != nil {
		return err
	}
	volume, _, _ := strings.Cut(name, "@")
	defer s.locks.lock(volume)() // a purge checks pins under it
	return s.meta.update(func(d *metaData) { setFlag(&d.Pinned, name, on) })
}
