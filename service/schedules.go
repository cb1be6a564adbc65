package service

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"butterd/service/retention"
	"butterd/units"
)

// Schedules (DESIGN.md "Schedules are systemd timers"). Decisions:
//
//   - The unit files in the unit directory are the only record of the
//     definitions: ListSchedules parses every butterd-sched-*.timer there;
//     butterd keeps no copy. Whether a schedule is paused is its timer's
//     enablement (UnitFileState), and the global pause is the target's, so
//     both survive reboots and show in systemctl.
//   - Files are written atomically, the service before the timer (the
//     timer is the definition), then one daemon-reload. A timer is started
//     when it is new, restarted when its content changed, and left alone
//     otherwise, so that nothing re-arms OnActiveSec= for nothing.
//   - Setting a schedule that exists and is paused resumes it: setting is
//     asking for it to run.
//   - While all schedules are paused (the target disabled and stopped), a
//     new or resumed schedule is enabled but not started: it starts with the
//     target on ResumeAllSchedules.
//   - At Open, units whose content differs from what this version renders
//     (an upgrade, another butterctl path) are rewritten and systemd reloaded
//     once; enabled ones are enabled again in case [Install] changed.
//     Nothing is started: timers start with the target at boot.
//   - Files butterd cannot read back (hand-made or broken timers, a name that
//     is not the one their definition gives, services without a timer) are
//     reported (at Open, and by ListSchedules with their state) and left
//     alone, except by the removal of a volume: it removes those whose
//     names are those of its schedules too (units.NameOf), once the volume
//     is gone, since they can be neither read nor set again.
//   - A replicate or synchronize schedule's hosts must each be a peer's
//     name or a valid host[:port] when it is set; whether they answer shows
//     when it runs (a failed job, a failed unit).

// ErrNoSystemd is the kind of the errors of schedule calls and options
// where no systemd is reachable; they are ErrInvalidArg too.
var ErrNoSystemd = errors.New("no systemd reachable")

// DefaultUnitDir is where schedule units are written unless configured.
const DefaultUnitDir = "/etc/systemd/system"

func errNoSystemd() error {
	return &kindError{kinds: []error{ErrInvalidArg, ErrNoSystemd}, msg: "no systemd reachable: schedules need systemd (butterd runs schedules as systemd timers)"}
}

type schedules struct {
	mu        sync.Mutex // orders changes of the units and their state
	dir       string
	sd        units.Manager
	butterctl string
	// regenerated lists the units rewritten at Open.
	regenerated []string
}

// ScheduleInfo is a schedule with its state in systemd.
type ScheduleInfo struct {
	units.Schedule
	Timer, Service string // unit names
	Paused         bool   // its own timer is disabled
	NextRun        time.Time
	LastRun        time.Time
	LastResult     string // "success", "failed", or "" when it has not run
	// Unreadable says why a unit of the schedule kind could not be read
	// back (then only Timer, the unit, Service and the state are set):
	// butterd leaves it alone, but its timer may still run.
	Unreadable string
}

func (s *Store) initSchedules() error {
	s.sched.dir = s.cfg.UnitDir
	if s.sched.dir == "" {
		s.sched.dir = DefaultUnitDir
	}
	s.sched.butterctl = s.cfg.Butterctl
	if s.sched.butterctl == "" {
		s.sched.butterctl = units.DefaultButterctl
	}
	s.sched.sd = s.cfg.Systemd
	probe := units.Schedule{Action: units.ActionSnapshot, Volume: "probe", Every: time.Hour}
	if _, _, err := units.Render(probe, s.sched.butterctl); err != nil {
		return errorf(ErrInvalidArg, "butterctl path for schedules: %v", err)
	}
	return nil
}

// SchedulesAvailable says whether a systemd is reachable for schedules.
func (s *Store) SchedulesAvailable() bool { return s.sched.sd != nil }

// SetSchedule creates or replaces (same action, volume and, for replicate
// and synchronize, arg) a schedule and returns its timer unit. A bare
// number given for a span means minutes where it is parsed (ParseSpan).
func (s *Store) SetSchedule(sc units.Schedule) (string, error) {
	if err := s.checkSchedule(sc); err != nil {
		return "", err
	}
	defer s.locks.lock(sc.Volume)()
	switch sc.Action {
	case units.ActionPurge, units.ActionSnapshotProject: // Docker knows a project's volumes when it runs
	case units.ActionSnapshotGroup:
		if _, err := s.GetGroup(sc.Volume); err != nil {
			return "", err
		}
	default:
		if _, err := s.GetVolume(sc.Volume); err != nil {
			return "", err
		}
	}
	return s.setSchedule(sc)
}

// checkSchedule validates a schedule as SetSchedule takes it.
func (s *Store) checkSchedule(sc units.Schedule) error {
	if s.sched.sd == nil {
		return errNoSystemd()
	}
	if err := ValidateName(sc.Volume); err != nil {
		return err
	}
	if err := sc.Validate(); err != nil {
		return errorf(ErrInvalidArg, "%v", err)
	}
	if sc.OnCalendar != "" { // before anything is written: a bad one would leave a timer that never runs
		if err := s.sched.sd.CheckCalendar(sc.OnCalendar); err != nil {
			return errorf(ErrInvalidArg, "%v", err)
		}
	}
	switch sc.Action {
	case units.ActionPurge:
		_, warnings, err := retention.ParsePattern(sc.Arg)
		if err != nil {
			return errorf(ErrInvalidArg, "%v", err)
		}
		for _, w := range warnings {
			s.log.Warn("purge schedule", "volume", sc.Volume, "warning", w)
		}
	case units.ActionReplicate, units.ActionSynchronize:
		for _, h := range strings.Split(sc.Arg, ",") {
			if _, _, err := s.resolveHost(h); err != nil {
				return fmt.Errorf("%s schedule of volume %q: %w", sc.Action, sc.Volume, err)
			}
		}
	}
	if _, _, err := units.Render(sc, s.sched.butterctl); err != nil {
		return errorf(ErrInvalidArg, "%v", err)
	}
	return nil
}

func (s *Store) unitPath(unit string) string { return filepath.Join(s.sched.dir, unit) }

// setSchedule writes, enables and starts a checked schedule.
func (s *Store) setSchedule(sc units.Schedule) (unit string, err error) {
	timerData, serviceData, err := units.Render(sc, s.sched.butterctl)
	if err != nil {
		return "", errorf(ErrInvalidArg, "%v", err)
	}
	s.sched.mu.Lock()
	defer s.sched.mu.Unlock()
	sd := s.sched.sd
	timer, service := units.Names(sc)
	if err := os.MkdirAll(s.sched.dir, 0o755); err != nil {
		return "", err
	}
	old, rerr := os.ReadFile(s.unitPath(timer))
	isNew := errors.Is(rerr, fs.ErrNotExist)
	if rerr != nil && !isNew {
		return "", rerr
	}
	_, terr := os.Stat(s.unitPath(units.TargetName))
	in, err := s.beginSchedule(sc.Volume, timer, !isNew, false, errors.Is(terr, fs.ErrNotExist))
	if err != nil {
		return "", err
	}
	// Nothing is left half made: see schedintent.go.
	defer func() { err = s.endSchedule(in, err) }()
	if err := s.writeTarget(); err != nil {
		return "", err
	}
	svcChanged, err := writeIfChanged(s.unitPath(service), serviceData)
	if err != nil {
		return "", err
	}
	changed := isNew || !bytes.Equal(old, timerData)
	if changed {
		if err := writeFileAtomic(s.unitPath(timer), timerData, 0o644); err != nil {
			return "", err
		}
	}
	changed = changed || svcChanged
	enable := []string{timer}
	if in.TargetNew {
		enable = append(enable, units.TargetName)
	}
	if err := sd.Enable(enable); err != nil {
		return "", err
	}
	if err := sd.Reload(); err != nil {
		return "", err
	}
	paused, err := s.allPausedLocked()
	if err != nil {
		return "", err
	}
	if paused {
		s.log.Info("schedule set; all schedules are paused: it starts when they are resumed", "timer", timer, "schedule", sc.Key())
		return timer, nil
	}
	if err := s.startTarget(); err != nil {
		return "", err
	}
	st, err := sd.UnitState(timer)
	if err != nil {
		return "", err
	}
	switch {
	case st.ActiveState != "active": // new, paused, or stopped by hand
		err = sd.Start(timer)
	case changed && !isNew: // a new one was just started with the target
		err = sd.Restart(timer) // the new timing counts from now
	}
	if err != nil {
		return "", err
	}
	s.log.Info("schedule set", "timer", timer, "schedule", sc.Key(), "new", isNew, "changed", changed)
	return timer, nil
}

// writeIfChanged writes data to path (mode 0644) unless it holds it
// already, and says whether it wrote.
func writeIfChanged(path string, data []byte) (bool, error) {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		return false, nil
	}
	return true, writeFileAtomic(path, data, 0o644)
}

// writeTarget writes butterd-schedules.target as this version renders it.
// Callers hold s.sched.mu.
func (s *Store) writeTarget() error {
	_, err := writeIfChanged(s.unitPath(units.TargetName), units.RenderTarget())
	return err
}

// startTarget starts the target when it is not active (timers started one
// by one work without it, but the global pause stops it).
func (s *Store) startTarget() error {
	st, err := s.sched.sd.UnitState(units.TargetName)
	if err != nil || st.ActiveState == "active" {
		return err
	}
	return s.sched.sd.Start(units.TargetName)
}

// allPausedLocked says whether all schedules are paused: the target exists
// and is disabled. Callers hold s.sched.mu or only read.
func (s *Store) allPausedLocked() (bool, error) {
	if _, err := os.Stat(s.unitPath(units.TargetName)); err != nil {
		return false, nil
	}
	st, err := s.sched.sd.UnitState(units.TargetName)
	if err != nil {
		return false, err
	}
	return !enabled(st.UnitFileState), nil
}

func enabled(unitFileState string) bool {
	return unitFileState == "enabled" || unitFileState == "enabled-runtime"
}

// scheduleOf identifies a schedule by action, volume and, for replicate
// and synchronize, arg (for snapshot and purge arg is not part of the key
// and is ignored).
func scheduleOf(action, volume, arg string) (units.Schedule, error) {
	if err := ValidateName(volume); err != nil {
		return units.Schedule{}, err
	}
	sc := units.Schedule{Action: action, Volume: volume}
	switch action {
	case units.ActionSnapshot, units.ActionPurge, units.ActionSnapshotGroup, units.ActionSnapshotProject:
	case units.ActionReplicate, units.ActionSynchronize:
		if arg == "" {
			return sc, errorf(ErrInvalidArg, "a %s schedule is named by its host(s) too", action)
		}
		sc.Arg = arg
	default:
		return sc, errorf(ErrInvalidArg, "schedule action %q: use %s, %s, %s, %s, %s or %s", action,
			units.ActionSnapshot, units.ActionPurge, units.ActionReplicate, units.ActionSynchronize,
			units.ActionSnapshotGroup, units.ActionSnapshotProject)
	}
	return sc, nil
}

// existing finds the timer of a schedule on disk. Callers hold s.sched.mu.
func (s *Store) existing(sc units.Schedule) (timer, service string, err error) {
	timer, service = units.Names(sc)
	if _, err := os.Stat(s.unitPath(timer)); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			what := sc.Action + " schedule"
			if sc.Arg != "" {
				what += " (" + sc.Arg + ")"
			}
			return "", "", errorf(ErrNotFound, "no %s for volume %q (butterctl scheduled lists them)", what, sc.Volume)
		}
		return "", "", err
	}
	return timer, service, nil
}

// RemoveSchedule stops and disables a schedule's timer and deletes both
// units.
func (s *Store) RemoveSchedule(action, volume, arg string) error {
	return s.onSchedule(action, volume, arg, func(timer, service string) error {
		// Resolving a removal's intent is finishing it: see schedintent.go.
		in, err := s.beginSchedule(volume, timer, true, true, false)
		if err != nil {
			return err
		}
		if _, err := s.resolveSchedule(in); err != nil {
			return err
		}
		s.forgetFailed(timer, service)
		s.log.Info("schedule removed", "timer", timer)
		return nil
	})
}

// PauseSchedule stops and disables the schedule's timer: it stays off
// across reboots until resumed.
func (s *Store) PauseSchedule(action, volume, arg string) error {
	return s.onSchedule(action, volume, arg, func(timer, _ string) error {
		sd := s.sched.sd
		if err := sd.Stop(timer); err != nil {
			return err
		}
		if err := sd.Disable([]string{timer}); err != nil {
			return err
		}
		if err := sd.Reload(); err != nil {
			return err
		}
		s.log.Info("schedule paused", "timer", timer)
		return nil
	})
}

// ResumeSchedule enables the schedule's timer and starts it, unless all
// schedules are paused (it then starts when they are resumed).
func (s *Store) ResumeSchedule(action, volume, arg string) error {
	return s.onSchedule(action, volume, arg, func(timer, _ string) error {
		sd := s.sched.sd
		if err := sd.Enable([]string{timer}); err != nil {
			return err
		}
		if err := sd.Reload(); err != nil {
			return err
		}
		paused, err := s.allPausedLocked()
		if err != nil || paused {
			return err
		}
		if err := sd.Start(timer); err != nil {
			return err
		}
		s.log.Info("schedule resumed", "timer", timer)
		return nil
	})
}

// onSchedule runs fn on an existing schedule's units under the lock.
func (s *Store) onSchedule(action, volume, arg string, fn func(timer, service string) error) error {
	if s.sched.sd == nil {
		return errNoSystemd()
	}
	sc, err := scheduleOf(action, volume, arg)
	if err != nil {
		return err
	}
	s.sched.mu.Lock()
	defer s.sched.mu.Unlock()
	timer, service, err := s.existing(sc)
	if err != nil {
		return err
	}
	return fn(timer, service)
}

// dropUnits stops and disables a timer and deletes its two files; the
// caller reloads systemd. Either file may be missing (a schedule half
// made), and the timer unknown to systemd. The timer is stopped first, so
// that it starts no new run, then a run under way (waiting for it to end),
// so that no run fails after its units are gone: a deleted unit that failed
// would stay listed as failed, and the system "degraded".
func (s *Store) dropUnits(timer, service string) error {
	sd := s.sched.sd
	for _, u := range []string{timer, service} {
		st, err := sd.UnitState(u)
		if err != nil {
			return err
		}
		// A loaded service may have a start queued that shows in no state.
		if unitBusy(st.ActiveState) || u == service && st.LoadState == "loaded" {
			if err := sd.Stop(u); err != nil {
				return err
			}
		}
	}
	if _, err := os.Stat(s.unitPath(timer)); err == nil {
		if err := sd.Disable([]string{timer}); err != nil {
			return err
		}
	}
	if err := removeSynced(s.unitPath(timer)); err != nil {
		return err
	}
	return removeSynced(s.unitPath(service))
}

// forgetFailed drops what systemd remembers of deleted units (a run that
// failed before its schedule was removed); dropUnits stopped them, so
// nothing runs that could fail later.
func (s *Store) forgetFailed(units ...string) {
	for _, u := range units {
		s.sched.sd.ResetFailed(u) // a unit that never failed is not an error worth reporting
	}
}

func unitBusy(activeState string) bool {
	return activeState == "active" || activeState == "activating" || activeState == "deactivating" || activeState == "reloading"
}

// PauseAllSchedules stops the target, which stops every timer, and disables
// it so they stay paused after a reboot; each schedule keeps its own state.
func (s *Store) PauseAllSchedules() error {
	return s.onTarget(func(sd units.Manager) error {
		if err := sd.Stop(units.TargetName); err != nil {
			return err
		}
		if err := sd.Disable([]string{units.TargetName}); err != nil {
			return err
		}
		if err := sd.Reload(); err != nil {
			return err
		}
		s.log.Info("all schedules paused")
		return nil
	})
}

// ResumeAllSchedules enables and starts the target, which starts the timers
// of the schedules that are not paused themselves.
func (s *Store) ResumeAllSchedules() error {
	return s.onTarget(func(sd units.Manager) error {
		if err := sd.Enable([]string{units.TargetName}); err != nil {
			return err
		}
		if err := sd.Reload(); err != nil {
			return err
		}
		if err := sd.Start(units.TargetName); err != nil {
			return err
		}
		s.log.Info("all schedules resumed")
		return nil
	})
}

func (s *Store) onTarget(fn func(units.Manager) error) error {
	if s.sched.sd == nil {
		return errNoSystemd()
	}
	s.sched.mu.Lock()
	defer s.sched.mu.Unlock()
	if err := os.MkdirAll(s.sched.dir, 0o755); err != nil {
		return err
	}
	if err := s.writeTarget(); err != nil {
		return err
	}
	return fn(s.sched.sd)
}

// scheduleFile is a timer read back from the unit directory.
type scheduleFile struct {
	sched          units.Schedule
	timer, service string
}

// unreadableUnit is a unit of the unit directory named like a schedule's
// that butterd cannot read back, and why.
type unreadableUnit struct{ unit, reason string }

func (u unreadableUnit) Error() string { return u.unit + ": " + u.reason }

// stem is the unit's name without .timer or .service.
func (u unreadableUnit) stem() string {
	return strings.TrimSuffix(strings.TrimSuffix(u.unit, ".timer"), ".service")
}

// readSchedules parses every schedule timer in the unit directory. problems
// are the files left alone: timers that cannot be read or do not parse or
// whose name is not the one their definition gives, and services without a
// timer.
func (s *Store) readSchedules() (files []scheduleFile, problems []unreadableUnit, err error) {
	entries, err := os.ReadDir(s.sched.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	timers := map[string]bool{}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, units.Prefix) || !strings.HasSuffix(name, ".timer") {
			continue
		}
		f, err := s.readSchedule(name)
		if err != nil {
			var u unreadableUnit
			if !errors.As(err, &u) {
				u = unreadableUnit{unit: name, reason: err.Error()}
			}
			problems = append(problems, u)
			continue
		}
		timers[strings.TrimSuffix(name, ".timer")] = true
		files = append(files, f)
	}
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, units.Prefix) && strings.HasSuffix(name, ".service") && !timers[strings.TrimSuffix(name, ".service")] {
			if _, err := os.Stat(s.unitPath(strings.TrimSuffix(name, ".service") + ".timer")); err != nil {
				problems = append(problems, unreadableUnit{unit: name, reason: "no timer of that name"})
			}
		}
	}
	slices.SortFunc(files, func(a, b scheduleFile) int {
		return strings.Compare(a.sched.Volume+"\x00"+a.sched.Action+"\x00"+a.sched.Arg, b.sched.Volume+"\x00"+b.sched.Action+"\x00"+b.sched.Arg)
	})
	slices.SortFunc(problems, func(a, b unreadableUnit) int { return strings.Compare(a.unit, b.unit) })
	return files, problems, nil
}

// readSchedule reads one timer of the unit directory. A timer that is
// there but cannot be taken for a schedule is an unreadableUnit error.
func (s *Store) readSchedule(timer string) (scheduleFile, error) {
	data, err := os.ReadFile(s.unitPath(timer))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return scheduleFile{}, err
		}
		return scheduleFile{}, unreadableUnit{unit: timer, reason: err.Error()}
	}
	sc, err := units.Parse(data)
	if err != nil {
		return scheduleFile{}, unreadableUnit{unit: timer, reason: err.Error()}
	}
	t, svc := units.Names(sc)
	if t != timer {
		return scheduleFile{}, unreadableUnit{unit: timer, reason: fmt.Sprintf("its definition (%s) belongs in %s", sc.Key(), t)}
	}
	return scheduleFile{sched: sc, timer: t, service: svc}, nil
}

// ListSchedules lists the schedules, from their units, with their state in
// systemd, and says whether all are paused.
func (s *Store) ListSchedules() ([]ScheduleInfo, bool, error) {
	if s.sched.sd == nil {
		return nil, false, errNoSystemd()
	}
	files, problems, err := s.readSchedules()
	if err != nil {
		return nil, false, err
	}
	allPaused, err := s.allPausedLocked()
	if err != nil {
		return nil, false, err
	}
	out := make([]ScheduleInfo, 0, len(files)+len(problems))
	for _, f := range files {
		info, err := s.scheduleInfo(f)
		if err != nil {
			return nil, false, err
		}
		out = append(out, info)
	}
	// Units butterd cannot read come last, with what systemd says of them:
	// a timer of theirs may well be running a job that fails each time.
	for _, p := range problems {
		info := ScheduleInfo{Timer: p.unit, Service: p.stem() + ".service", Unreadable: p.reason}
		if err := s.unitInfo(&info); err != nil {
			return nil, false, err
		}
		out = append(out, info)
	}
	return out, allPaused, nil
}

// GetSchedule reads one schedule by its timer unit name.
func (s *Store) GetSchedule(timer string) (ScheduleInfo, error) {
	if s.sched.sd == nil {
		return ScheduleInfo{}, errNoSystemd()
	}
	if !strings.HasPrefix(timer, units.Prefix) || !strings.HasSuffix(timer, ".timer") || strings.Contains(timer, "/") {
		return ScheduleInfo{}, errorf(ErrNotFound, "no schedule with timer %q", timer)
	}
	f, err := s.readSchedule(timer)
	if errors.Is(err, fs.ErrNotExist) {
		return ScheduleInfo{}, errorf(ErrNotFound, "no schedule with timer %q", timer)
	}
	if err != nil {
		return ScheduleInfo{}, err
	}
	return s.scheduleInfo(f)
}

func (s *Store) scheduleInfo(f scheduleFile) (ScheduleInfo, error) {
	info := ScheduleInfo{Schedule: f.sched, Timer: f.timer, Service: f.service}
	return info, s.unitInfo(&info)
}

// unitInfo fills in the state in systemd of info's units; a service
// without a timer has only its last result.
func (s *Store) unitInfo(info *ScheduleInfo) error {
	sd := s.sched.sd
	if strings.HasSuffix(info.Timer, ".timer") {
		st, err := sd.UnitState(info.Timer)
		if err != nil {
			return err
		}
		tt, err := sd.TimerTimes(info.Timer)
		if err != nil {
			return err
		}
		info.Paused = !enabled(st.UnitFileState)
		if st.ActiveState == "active" {
			info.NextRun = tt.Next
		}
		info.LastRun = tt.Last
	}
	res, err := sd.ServiceResult(info.Service)
	if err != nil {
		return err
	}
	if info.LastRun.IsZero() {
		info.LastRun = res.Exited
	}
	if !res.Exited.IsZero() {
		info.LastResult = "failed"
		if res.Result == "success" {
			info.LastResult = "success"
		}
	}
	return nil
}

// reportOrphanSchedules logs the snapshot, replicate and synchronize
// schedules whose volume does not exist (left by a removal that was cut
// short, or set by hand): each fails when it runs. They are left alone: a
// volume of that name may come back. Purge schedules need no volume.
func (s *Store) reportOrphanSchedules(files []scheduleFile) {
	for _, f := range files {
		switch f.sched.Action {
		case units.ActionSnapshot, units.ActionReplicate, units.ActionSynchronize:
		default:
			continue
		}
		if _, err := s.GetVolume(f.sched.Volume); errors.Is(err, ErrNoSuchVolume) {
			s.log.Warn("schedule of a volume that does not exist: it fails when it runs; remove it with 'butterctl schedule "+f.sched.Action+" delete' or create the volume",
				"timer", f.timer, "schedule", f.sched.Key(), "volume", f.sched.Volume)
		}
	}
}

// regenerateSchedules rewrites, at Open, the units whose content differs
// from what this version renders, reloads systemd once and reports each.
func (s *Store) regenerateSchedules() {
	files, problems, err := s.readSchedules()
	if err != nil {
		s.log.Warn("schedule units not read", "dir", s.sched.dir, "error", err)
		return
	}
	for _, p := range problems {
		s.log.Warn("schedule unit not understood: left alone ('butterctl scheduled' lists it; removing its volume removes it)", "dir", s.sched.dir, "unit", p.unit, "problem", p.reason)
	}
	s.reportOrphanSchedules(files)
	sd := s.sched.sd
	if sd == nil {
		if len(files) > 0 {
			s.log.Warn("schedule units found but no systemd reachable: they are neither checked nor changed", "dir", s.sched.dir, "schedules", len(files))
		}
		return
	}
	s.sched.mu.Lock()
	defer s.sched.mu.Unlock()
	var changed, reenable []string
	for _, f := range files {
		timerData, serviceData, err := units.Render(f.sched, s.sched.butterctl)
		if err != nil {
			s.log.Warn("schedule unit not regenerated", "timer", f.timer, "error", err)
			continue
		}
		fileChanged := false
		for _, u := range []struct {
			name string
			data []byte
		}{{f.service, serviceData}, {f.timer, timerData}} { // the timer, the definition, last
			wrote, err := writeIfChanged(s.unitPath(u.name), u.data)
			if err != nil {
				s.log.Warn("schedule unit not regenerated", "unit", u.name, "error", err)
				continue
			}
			if wrote {
				changed = append(changed, u.name)
				fileChanged = true
			}
		}
		if fileChanged {
			if st, err := sd.UnitState(f.timer); err == nil && enabled(st.UnitFileState) {
				reenable = append(reenable, f.timer)
			}
		}
	}
	if _, err := os.Stat(s.unitPath(units.TargetName)); err == nil {
		if wrote, err := writeIfChanged(s.unitPath(units.TargetName), units.RenderTarget()); err != nil {
			s.log.Warn("schedule target not regenerated", "error", err)
		} else if wrote {
			changed = append(changed, units.TargetName)
			if st, err := sd.UnitState(units.TargetName); err == nil && enabled(st.UnitFileState) {
				reenable = append(reenable, units.TargetName)
			}
		}
	}
	if len(changed) == 0 {
		if len(files) > 0 {
			s.log.Info("schedule units up to date", "schedules", len(files))
		}
		return
	}
	if len(reenable) > 0 {
		if err := sd.Enable(reenable); err != nil {
			s.log.Warn("regenerated schedule units not enabled again", "units", reenable, "error", err)
		}
	}
	if err := sd.Reload(); err != nil {
		s.log.Warn("systemd not reloaded after regenerating schedule units", "error", err)
	}
	for _, u := range changed {
		s.log.Info("schedule unit regenerated", "unit", u)
	}
	s.sched.regenerated = changed
}

// volumeSchedules are the schedules of a volume on disk (those of a
// group of the same name aside).
func (s *Store) volumeSchedules(volume string) []scheduleFile {
	return s.schedulesOf(volume, func(action string) bool {
		return action != units.ActionSnapshotGroup && action != units.ActionSnapshotProject
	})
}

// schedulesOf are the schedules on disk of name whose action is one of
// those that name a volume, group or project as asked.
func (s *Store) schedulesOf(name string, actionOf func(string) bool) []scheduleFile {
	files, _, err := s.readSchedules()
	if err != nil {
		s.log.Warn("schedule units not read", "dir", s.sched.dir, "error", err)
		return nil
	}
	var out []scheduleFile
	for _, f := range files {
		if f.sched.Volume == name && actionOf(f.sched.Action) {
			out = append(out, f)
		}
	}
	return out
}

// removedSchedule is a schedule taken away with its volume, as it was.
type removedSchedule struct {
	scheduleFile
	paused bool // its own timer was disabled
}

// removeVolumeSchedules removes the schedules of a volume being removed
// (its snapshots stay) and returns them, so that they can be set again
// if the volume stays after all.
func (s *Store) removeVolumeSchedules(volume string) []removedSchedule {
	return s.removeSchedules("volume", volume, s.volumeSchedules(volume))
}

// removeSchedules removes the schedules of a removed volume or group
// (what) and returns those removed.
func (s *Store) removeSchedules(what, volume string, files []scheduleFile) []removedSchedule {
	if len(files) == 0 {
		return nil
	}
	if s.sched.sd == nil {
		s.log.Warn(what+" removed but its schedules stay: no systemd reachable", what, volume, "schedules", len(files))
		return nil
	}
	s.sched.mu.Lock()
	defer s.sched.mu.Unlock()
	var removed []removedSchedule
	for _, f := range files {
		st, err := s.sched.sd.UnitState(f.timer)
		if err == nil {
			err = s.dropUnits(f.timer, f.service)
		}
		if err != nil {
			s.log.Warn("schedule of a removed "+what+" not removed", what, volume, "timer", f.timer, "error", err)
			continue
		}
		removed = append(removed, removedSchedule{scheduleFile: f, paused: !enabled(st.UnitFileState)})
	}
	if err := s.sched.sd.Reload(); err != nil {
		s.log.Warn("systemd not reloaded after removing schedules", "error", err)
	}
	for _, f := range files {
		s.forgetFailed(f.timer, f.service)
	}
	if len(removed) > 0 {
		s.log.Info("schedules of the removed "+what+" removed; its snapshots stay", what, volume, "timers", timersOf(removed))
	}
	return removed
}

// restoreSchedules sets again, from their definitions, the schedules
// removed with a volume that stays after all; those that were paused are
// paused again. Each is set as a new schedule would be (journaled: a kill
// meanwhile takes it out again, leaving the volume without it).
func (s *Store) restoreSchedules(volume string, removed []removedSchedule) {
	var back, lost []string
	for _, r := range removed {
		_, err := s.setSchedule(r.sched)
		if err == nil && r.paused {
			err = s.PauseSchedule(r.sched.Action, r.sched.Volume, r.sched.Arg)
		}
		if err != nil {
			s.log.Error("schedule of a volume that was not removed not set again: set it again with butterctl schedule",
				"volume", volume, "schedule", r.sched.Key(), "timer", r.timer, "error", err)
			lost = append(lost, r.timer)
			continue
		}
		back = append(back, r.timer)
	}
	if len(back) > 0 {
		s.log.Info("volume not removed: its schedules were set again", "volume", volume, "timers", back, "not_set_again", lost)
	}
}

// volumeActions are the actions of schedules that name a volume.
var volumeActions = []string{units.ActionSnapshot, units.ActionPurge, units.ActionReplicate, units.ActionSynchronize}

// removeUnreadableSchedules removes, once a volume is gone, the units named
// as its schedules are that butterd could not read back (so that they were
// not removed with the others), and returns those units (timers, or
// services without a timer). The caller holds
// the volume's lock, so no schedule of it is being set meanwhile.
func (s *Store) removeUnreadableSchedules(volume string) []string {
	if s.sched.sd == nil {
		return nil
	}
	s.sched.mu.Lock()
	defer s.sched.mu.Unlock()
	_, problems, err := s.readSchedules()
	if err != nil {
		s.log.Warn("schedule units not read", "dir", s.sched.dir, "error", err)
		return nil
	}
	var found []unreadableUnit // one per stem: a timer, or a service without one
	for _, p := range problems {
		if slices.ContainsFunc(volumeActions, func(a string) bool { return units.NameOf(p.unit, a, volume) }) {
			found = append(found, p)
		}
	}
	if len(found) == 0 {
		return nil
	}
	var removed []string
	for _, u := range found {
		if err := s.dropUnits(u.stem()+".timer", u.stem()+".service"); err != nil {
			s.log.Warn("unreadable schedule unit of a removed volume not removed", "volume", volume, "unit", u.unit, "error", err)
			continue
		}
		removed = append(removed, u.unit)
	}
	if err := s.sched.sd.Reload(); err != nil {
		s.log.Warn("systemd not reloaded after removing schedules", "error", err)
	}
	for _, u := range found {
		s.forgetFailed(u.stem()+".timer", u.stem()+".service")
	}
	if len(removed) > 0 {
		s.log.Info("unreadable schedule units of the removed volume removed", "volume", volume, "units", removed)
	}
	return removed
}

func timersOf(removed []removedSchedule) []string {
	out := make([]string, len(removed))
	for i, r := range removed {
		out[i] = r.timer
	}
	return out
}

// prepareVolumeSchedules checks the schedules a new volume's options ask
// for, before the volume exists.
func (s *Store) prepareVolumeSchedules(volume string, opts CreateOptions) ([]units.Schedule, error) {
	scheds := opts.schedules(volume)
	for _, sc := range scheds {
		if err := s.checkSchedule(sc); err != nil {
			return nil, fmt.Errorf("option %s: %w", sc.Action, err)
		}
	}
	return scheds, nil
}

// setVolumeSchedules sets a new volume's schedules; on failure it removes
// those it set.
func (s *Store) setVolumeSchedules(scheds []units.Schedule) ([]string, error) {
	var set []string
	for _, sc := range scheds {
		timer, err := s.setSchedule(sc)
		if err != nil {
			for _, done := range scheds[:len(set)] {
				if err := s.RemoveSchedule(done.Action, done.Volume, done.Arg); err != nil {
					s.log.Warn("schedule not removed after a failed create", "schedule", done.Key(), "error", err)
				}
			}
			return nil, fmt.Errorf("schedule %s of volume %q: %w", sc.Action, sc.Volume, err)
		}
		set = append(set, timer)
	}
	return set, nil
}
