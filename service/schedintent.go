package service

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"butterd/units"
)

// Setting and removing a schedule take several steps (write the service,
// write the timer, enable, reload, start; or stop, disable, delete both,
// reload), so each is journaled as an intent of op "schedule" naming the
// timer, and resolved the same way whether it failed or butterd died:
//
//   - a new schedule is taken out again (its timer stopped and disabled,
//     both units deleted): it exists only once the call has succeeded;
//   - a removal is finished;
//   - a change of an existing schedule is kept as far as it went (its
//     service is rewritten from the timer at start, as any unit that
//     differs from what butterd renders);
//   - butterd-schedules.target made by the setting is enabled if it is
//     not yet (a target that exists and is disabled means "all paused");
//   - systemd is reloaded, so that it runs what is on disk.
//
// Resolving needs systemd: without it the intent stays for the next start.

// beginSchedule journals the setting (remove false) or removal of the
// schedule whose timer is timer. It supersedes an earlier change of that
// schedule whose resolving failed (systemd did not answer), taking over
// whether it made the target.
func (s *Store) beginSchedule(volume, timer string, existed, remove, targetNew bool) (*intent, error) {
	in := &intent{Op: opSched, Volume: volume, Unit: timer, Existed: existed, Remove: remove, TargetNew: targetNew}
	earlier, err := s.loadIntents()
	if err != nil {
		return nil, err
	}
	for _, e := range earlier {
		if e.Op == opSched && e.Unit == timer {
			in.TargetNew = in.TargetNew || e.TargetNew
			if err := s.endIntent(e); err != nil {
				return nil, err
			}
		}
	}
	return in, s.beginIntent(in)
}

// endSchedule ends a journaled schedule change that returned err: on
// success the intent goes, on failure the change is resolved.
func (s *Store) endSchedule(in *intent, err error) error {
	if err == nil {
		if err = s.endIntent(in); err == nil {
			return nil
		}
	}
	if _, rerr := s.resolveSchedule(in); rerr != nil {
		s.log.Error("schedule change left in the journal for the next start", "timer", in.Unit, "error", rerr)
	}
	return err
}

// resolveSchedule resolves a schedule intent and reports whether the
// change stays (a removal finished, a change of an existing schedule kept).
func (s *Store) resolveSchedule(in *intent) (forward bool, err error) {
	stem, ok := strings.CutSuffix(in.Unit, ".timer")
	if !ok || !strings.HasPrefix(stem, units.Prefix) || strings.Contains(stem, "/") {
		return false, fmt.Errorf("schedule journal entry %q names %q, not a schedule timer: left alone", in.ID, in.Unit)
	}
	sd := s.sched.sd
	if sd == nil {
		return false, errNoSystemd()
	}
	forward = in.Remove || in.Existed
	if in.Remove || !in.Existed {
		if err := s.dropUnits(in.Unit, stem+".service"); err != nil {
			return forward, err
		}
	}
	if in.TargetNew {
		if err := s.enableNewTarget(); err != nil {
			return forward, err
		}
	}
	if err := sd.Reload(); err != nil {
		return forward, err
	}
	return forward, s.endIntent(in)
}

// enableNewTarget enables butterd-schedules.target when it exists and is
// not enabled.
func (s *Store) enableNewTarget() error {
	if _, err := os.Stat(s.unitPath(units.TargetName)); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	st, err := s.sched.sd.UnitState(units.TargetName)
	if err != nil || enabled(st.UnitFileState) {
		return err
	}
	return s.sched.sd.Enable([]string{units.TargetName})
}
