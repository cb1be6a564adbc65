package service

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"butterd/service/remote"
	"butterd/units"
)

// fakeSystemd models what butterd relies on: enablement is a file state
// (read from the unit directory), timers are PartOf the target (stopping it
// stops them) and starting the target starts the enabled timers.
type fakeSystemd struct {
	mu      sync.Mutex
	dir     string
	enabled map[string]bool
	active  map[string]bool
	calls   []string
	fail    map[string]error // "verb unit" -> error
	result  map[string]units.ServiceResult
	last    map[string]time.Time
}

func newFakeSystemd(dir string) *fakeSystemd {
	return &fakeSystemd{dir: dir, enabled: map[string]bool{}, active: map[string]bool{},
		fail: map[string]error{}, result: map[string]units.ServiceResult{}, last: map[string]time.Time{}}
}

func (f *fakeSystemd) do(verb, unit string) error {
	f.calls = append(f.calls, strings.TrimSpace(verb+" "+unit))
	if err := f.fail[verb+" "+unit]; err != nil {
		return err
	}
	return nil
}

func (f *fakeSystemd) exists(unit string) bool {
	_, err := os.Stat(filepath.Join(f.dir, unit))
	return err == nil
}

func (f *fakeSystemd) Reload() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.do("reload", "")
}

func (f *fakeSystemd) Enable(us []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, u := range us {
		if err := f.do("enable", u); err != nil {
			return err
		}
		if !f.exists(u) {
			return fmt.Errorf("enable %s: no such unit file", u)
		}
		f.enabled[u] = true
	}
	return nil
}

func (f *fakeSystemd) Disable(us []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, u := range us {
		if err := f.do("disable", u); err != nil {
			return err
		}
		delete(f.enabled, u)
	}
	return nil
}

func (f *fakeSystemd) Start(u string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.do("start", u); err != nil {
		return err
	}
	if !f.exists(u) {
		return fmt.Errorf("start %s: unit not found", u)
	}
	f.active[u] = true
	if u == units.TargetName {
		for e := range f.enabled {
			if strings.HasSuffix(e, ".timer") && f.exists(e) {
				f.active[e] = true
			}
		}
	}
	return nil
}

func (f *fakeSystemd) Stop(u string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.do("stop", u); err != nil {
		return err
	}
	delete(f.active, u)
	if u == units.TargetName {
		for a := range f.active {
			if strings.HasPrefix(a, units.Prefix) {
				delete(f.active, a)
			}
		}
	}
	return nil
}

func (f *fakeSystemd) Restart(u string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.do("restart", u); err != nil {
		return err
	}
	f.active[u] = true
	return nil
}

func (f *fakeSystemd) ResetFailed(u string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.do("reset-failed", u)
}

func (f *fakeSystemd) UnitState(u string) (units.UnitState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := units.UnitState{LoadState: "not-found", ActiveState: "inactive"}
	if f.exists(u) {
		st.LoadState, st.UnitFileState = "loaded", "disabled"
		if f.enabled[u] {
			st.UnitFileState = "enabled"
		}
	}
	if f.active[u] {
		st.ActiveState = "active"
	}
	return st, nil
}

func (f *fakeSystemd) TimerTimes(timer string) (units.TimerTimes, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var tt units.TimerTimes
	if f.active[timer] {
		tt.Next = time.UnixMicro(2_000_000_000_000_000)
	}
	tt.Last = f.last[timer]
	return tt, nil
}

func (f *fakeSystemd) QueueRestart(u string) error { return f.Restart(u) }

// CheckCalendar refuses what starts with "bad" (the real parser is tested
// in units/systemd).
func (f *fakeSystemd) CheckCalendar(expr string) error {
	if strings.HasPrefix(expr, "bad") {
		return units.CalendarError(expr, "Failed to parse calendar specification")
	}
	return nil
}

func (f *fakeSystemd) ServiceResult(service string) (units.ServiceResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.result[service]
	if !ok {
		r.Result = "success"
	}
	return r, nil
}

// takeCalls returns the calls since the last take.
func (f *fakeSystemd) takeCalls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.calls
	f.calls = nil
	return c
}

// schedStore is a store without BTRFS: volumes are index entries only.
func schedStore(t *testing.T, sd units.Manager, volumes ...string) (*Store, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "units")
	s := &Store{cfg: Config{Now: time.Now, UnitDir: dir, Systemd: sd}, log: slog.New(slog.DiscardHandler),
		volumesDir: "/nonexistent", stateDir: t.TempDir(), volumes: map[string]*volumeEntry{},
		peers: remote.OpenPeers(filepath.Join(t.TempDir(), "peers.json"))}
	if err := os.Mkdir(s.journalDir(), 0o700); err != nil {
		t.Fatal(err)
	}
	if f, ok := sd.(*fakeSystemd); ok {
		f.dir = dir
	}
	if err := s.initSchedules(); err != nil {
		t.Fatal(err)
	}
	for _, v := range volumes {
		s.volumes[v] = &volumeEntry{name: v}
	}
	return s, dir
}

func unitFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestSchedulesRefusedWithoutSystemd(t *testing.T) {
	s, dir := schedStore(t, nil, "v1")
	sc := units.Schedule{Action: units.ActionSnapshot, Volume: "v1", Every: time.Hour}
	_, err := s.SetSchedule(sc)
	if !errors.Is(err, ErrNoSystemd) || !errors.Is(err, ErrInvalidArg) || !strings.Contains(err.Error(), "schedules need systemd") {
		t.Fatalf("SetSchedule without systemd: %v", err)
	}
	for name, err := range map[string]error{
		"remove":     s.RemoveSchedule("snapshot", "v1", ""),
		"pause":      s.PauseSchedule("snapshot", "v1", ""),
		"resume":     s.ResumeSchedule("snapshot", "v1", ""),
		"pause all":  s.PauseAllSchedules(),
		"resume all": s.ResumeAllSchedules(),
	} {
		if !errors.Is(err, ErrNoSystemd) {
			t.Errorf("%s without systemd: %v", name, err)
		}
	}
	if _, _, err := s.ListSchedules(); !errors.Is(err, ErrNoSystemd) {
		t.Errorf("list without systemd: %v", err)
	}
	opts, err := ParseCreateOptions(map[string]string{"snapshot": "1h"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.prepareVolumeSchedules("v2", opts); !errors.Is(err, ErrNoSystemd) {
		t.Errorf("create option snapshot=1h without systemd: %v", err)
	}
	if files := unitFiles(t, dir); len(files) != 0 {
		t.Fatalf("refused calls wrote %v", files)
	}
	// Options without schedules need no systemd.
	if scheds, err := s.prepareVolumeSchedules("v2", CreateOptions{NoCOW: true}); err != nil || len(scheds) != 0 {
		t.Fatalf("plain options: %v %v", scheds, err)
	}
}

func TestSetScheduleWritesEnablesStarts(t *testing.T) {
	sd := newFakeSystemd("")
	s, dir := schedStore(t, sd, "v1")
	sc := units.Schedule{Action: units.ActionSnapshot, Volume: "v1", Every: time.Hour}
	timer, err := s.SetSchedule(sc)
	if err != nil {
		t.Fatal(err)
	}
	wantTimer, wantService := units.Names(sc)
	if timer != wantTimer {
		t.Fatalf("unit %q, want %q", timer, wantTimer)
	}
	if got := unitFiles(t, dir); !slices.Equal(got, []string{wantService, wantTimer, units.TargetName}) {
		t.Fatalf("unit files %v", got)
	}
	timerData, serviceData, _ := units.Render(sc, units.DefaultButterctl)
	for name, want := range map[string][]byte{wantTimer: timerData, wantService: serviceData, units.TargetName: units.RenderTarget()} {
		got, _ := os.ReadFile(filepath.Join(dir, name))
		if string(got) != string(want) {
			t.Errorf("%s:\n%s\nwant:\n%s", name, got, want)
		}
		if fi, _ := os.Stat(filepath.Join(dir, name)); fi.Mode().Perm() != 0o644 {
			t.Errorf("%s mode %v", name, fi.Mode())
		}
	}
	calls := sd.takeCalls()
	want := []string{"enable " + timer, "enable " + units.TargetName, "reload", "start " + units.TargetName}
	if !slices.Equal(calls, want) {
		t.Fatalf("calls %q, want %q", calls, want)
	}
	if !sd.active[timer] || !sd.enabled[timer] || !sd.enabled[units.TargetName] {
		t.Fatalf("timer not enabled and running: %+v", sd)
	}

	// The same schedule again: nothing is restarted.
	if _, err := s.SetSchedule(sc); err != nil {
		t.Fatal(err)
	}
	if calls := sd.takeCalls(); slices.ContainsFunc(calls, func(c string) bool {
		return strings.HasPrefix(c, "start") || strings.HasPrefix(c, "restart")
	}) {
		t.Fatalf("unchanged schedule set again: %q", calls)
	}

	// Another interval replaces it and restarts the timer.
	sc.Every = 2 * time.Hour
	if timer2, err := s.SetSchedule(sc); err != nil || timer2 != timer {
		t.Fatalf("replace: %q %v", timer2, err)
	}
	if calls := sd.takeCalls(); !slices.Contains(calls, "restart "+timer) {
		t.Fatalf("changed schedule not restarted: %q", calls)
	}
	got, _ := os.ReadFile(filepath.Join(dir, timer))
	if !strings.Contains(string(got), "OnUnitActiveSec=2h") {
		t.Fatalf("timer not replaced:\n%s", got)
	}
	if files := unitFiles(t, dir); len(files) != 3 {
		t.Fatalf("replacing made new files: %v", files)
	}

	// A new purge pattern replaces the volume's purge schedule.
	p1, err := s.SetSchedule(units.Schedule{Action: units.ActionPurge, Volume: "v1", Arg: "1d:4w", Every: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	p2, err := s.SetSchedule(units.Schedule{Action: units.ActionPurge, Volume: "v1", Arg: "2d:8w", Every: time.Hour})
	if err != nil || p1 != p2 {
		t.Fatalf("purge replace: %q %q %v", p1, p2, err)
	}
	list, paused, err := s.ListSchedules()
	if err != nil || paused || len(list) != 2 {
		t.Fatalf("list: %+v %v %v", list, paused, err)
	}
	if list[0].Action != "purge" || list[0].Arg != "2d:8w" || list[1].Action != "snapshot" || list[1].Every != 2*time.Hour {
		t.Fatalf("list: %+v", list)
	}
}

func TestSetScheduleRefusals(t *testing.T) {
	sd := newFakeSystemd("")
	s, dir := schedStore(t, sd, "v1")
	cases := []struct {
		sc   units.Schedule
		kind error
		want string
	}{
		{units.Schedule{Action: "snapshot", Volume: "nope", Every: time.Hour}, ErrNoSuchVolume, "no such volume"},
		{units.Schedule{Action: "snapshot", Volume: "a@b", Every: time.Hour}, ErrInvalidName, "invalid character"},
		{units.Schedule{Action: "purge", Volume: "v1", Arg: "1d:1h", Every: time.Hour}, ErrInvalidArg, "strictly increasing"},
		{units.Schedule{Action: "purge", Volume: "v1", Arg: "1x", Every: time.Hour}, ErrInvalidArg, "item"},
		{units.Schedule{Action: "snapshot", Volume: "v1"}, ErrInvalidArg, "interval or a calendar"},
		{units.Schedule{Action: "snapshot", Volume: "v1", Every: time.Millisecond}, ErrInvalidArg, "too short"},
		{units.Schedule{Action: "bogus", Volume: "v1", Every: time.Hour}, ErrInvalidArg, "use snapshot"},
		{units.Schedule{Action: "replicate", Volume: "v1", Arg: "backup@nas", Every: time.Hour}, ErrInvalidArg, `"backup@nas" is neither a peer`},
		{units.Schedule{Action: "replicate", Volume: "v1", Arg: "nas:99999", Every: time.Hour}, ErrInvalidArg, "port"},
		{units.Schedule{Action: "replicate", Volume: "v1", Arg: "", Every: time.Hour}, ErrInvalidArg, "host is empty"},
		{units.Schedule{Action: "replicate", Volume: "nope", Arg: "nas", Every: time.Hour}, ErrNoSuchVolume, "no such volume"},
		{units.Schedule{Action: "synchronize", Volume: "v1", Arg: "a,,b", Every: time.Hour}, ErrInvalidArg, "empty item"},
		{units.Schedule{Action: "synchronize", Volume: "v1", Arg: "a,b,a", Every: time.Hour}, ErrInvalidArg, `"a" appears twice`},
		{units.Schedule{Action: "synchronize", Volume: "v1", Arg: "a,u@b", Every: time.Hour}, ErrInvalidArg, `"u@b" is neither a peer`},
		{units.Schedule{Action: "synchronize", Volume: "v1", Arg: "a, b", Every: time.Hour}, ErrInvalidArg, "host"},
		{units.Schedule{Action: "snapshot", Volume: "v1", OnCalendar: "daily\nExecStart=/bin/sh", Every: 0}, ErrInvalidArg, "newline"},
	}
	for _, c := range cases {
		_, err := s.SetSchedule(c.sc)
		if !errors.Is(err, c.kind) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %v containing %q", c.sc, err, c.kind, c.want)
		}
	}
	// A purge schedule needs no volume: snapshots outlive theirs.
	if _, err := s.SetSchedule(units.Schedule{Action: "purge", Volume: "gone", Arg: "1w", OnCalendar: "daily"}); err != nil {
		t.Fatalf("purge of a removed volume's snapshots: %v", err)
	}
	if files := unitFiles(t, dir); len(files) != 3 {
		t.Fatalf("files: %v", files)
	}
}

func TestBadCalendarChangesNothing(t *testing.T) {
	sd := newFakeSystemd("")
	s, dir := schedStore(t, sd, "v1", "v2")
	timer, err := s.SetSchedule(units.Schedule{Action: "snapshot", Volume: "v1", OnCalendar: "daily"})
	if err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(filepath.Join(dir, timer))
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.SetSchedule(units.Schedule{Action: "snapshot", Volume: "v1", OnCalendar: "bad o'clock"})
	if !errors.Is(err, ErrInvalidArg) || !strings.Contains(err.Error(), `"bad o'clock"`) || !strings.Contains(err.Error(), "daily") {
		t.Fatalf("changing to a bad calendar: %v", err)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, timer)); !bytes.Equal(before, after) {
		t.Fatalf("the working timer was replaced:\n%s", after)
	}
	if err := s.PauseAllSchedules(); err != nil {
		t.Fatal(err)
	}
	files := unitFiles(t, dir)
	if _, err := s.SetSchedule(units.Schedule{Action: "snapshot", Volume: "v2", OnCalendar: "bad"}); !errors.Is(err, ErrInvalidArg) {
		t.Fatalf("a bad calendar while all are paused: %v", err)
	}
	if got := unitFiles(t, dir); !slices.Equal(got, files) {
		t.Fatalf("files %v, want %v", got, files)
	}
}

func TestSetScheduleFailureLeavesNothing(t *testing.T) {
	sd := newFakeSystemd("")
	s, dir := schedStore(t, sd, "v1", "v2")
	if _, err := s.SetSchedule(units.Schedule{Action: units.ActionSnapshot, Volume: "v2", Every: time.Hour}); err != nil {
		t.Fatal(err)
	}
	before := unitFiles(t, dir)
	sc := units.Schedule{Action: units.ActionSnapshot, Volume: "v1", Every: time.Hour}
	timer, _ := units.Names(sc)
	sd.fail["start "+timer] = errors.New("boom")
	if _, err := s.SetSchedule(sc); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("failed start: %v", err)
	}
	if files := unitFiles(t, dir); !slices.Equal(files, before) {
		t.Fatalf("a failed new schedule left %v", files)
	}
	if sd.enabled[timer] {
		t.Fatal("a failed new schedule stays enabled")
	}
}

// The first schedule makes butterd-schedules.target; when setting it fails
// before the target is enabled, the target must not stay behind disabled,
// which would read as "all schedules paused" from then on.
func TestFirstScheduleFailureLeavesTargetUsable(t *testing.T) {
	sd := newFakeSystemd("")
	s, dir := schedStore(t, sd, "v1", "v2")
	sc := units.Schedule{Action: units.ActionSnapshot, Volume: "v1", Every: time.Hour}
	timer, _ := units.Names(sc)
	sd.fail["enable "+timer] = errors.New("boom")
	if _, err := s.SetSchedule(sc); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("failed enable: %v", err)
	}
	if files := unitFiles(t, dir); !slices.Equal(files, []string{units.TargetName}) {
		t.Fatalf("a failed first schedule left %v", files)
	}
	if _, all, err := s.ListSchedules(); err != nil || all {
		t.Fatalf("after a failed first schedule: all paused %v, %v", all, err)
	}
	t2, err := s.SetSchedule(units.Schedule{Action: units.ActionSnapshot, Volume: "v2", Every: time.Hour})
	if err != nil || !sd.active[t2] {
		t.Fatalf("the next schedule: %v, active %v", err, sd.active)
	}
	if entries, err := os.ReadDir(s.journalDir()); err != nil || len(entries) != 0 {
		t.Fatalf("journal holds %v (%v)", entries, err)
	}
}

// A failed setting whose undoing failed too stays in the journal, to be
// undone at the next start, until the schedule is set again.
func TestScheduleSetAgainSupersedesUnresolved(t *testing.T) {
	sd := newFakeSystemd("")
	s, _ := schedStore(t, sd, "v1")
	sc := units.Schedule{Action: units.ActionSnapshot, Volume: "v1", Every: time.Hour}
	sd.fail["reload "] = errors.New("boom")
	if _, err := s.SetSchedule(sc); err == nil {
		t.Fatal("SetSchedule with systemd failing: no error")
	}
	if entries, _ := os.ReadDir(s.journalDir()); len(entries) != 1 {
		t.Fatalf("journal after a failure not undone: %d entries, want 1", len(entries))
	}
	delete(sd.fail, "reload ")
	timer, err := s.SetSchedule(sc)
	if err != nil || !sd.active[timer] || !sd.enabled[units.TargetName] {
		t.Fatalf("set again: %v, active %v, enabled %v", err, sd.active, sd.enabled)
	}
	if entries, _ := os.ReadDir(s.journalDir()); len(entries) != 0 {
		t.Fatalf("journal after setting again: %d entries; the next start would undo the schedule", len(entries))
	}
}

func TestPauseResumeRemove(t *testing.T) {
	sd := newFakeSystemd("")
	s, dir := schedStore(t, sd, "v1", "v2")
	t1, err := s.SetSchedule(units.Schedule{Action: "snapshot", Volume: "v1", Every: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t2, err := s.SetSchedule(units.Schedule{Action: "snapshot", Volume: "v2", OnCalendar: "hourly"})
	if err != nil {
		t.Fatal(err)
	}
	state := func() map[string]bool {
		list, all, err := s.ListSchedules()
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]bool{"all": all}
		for _, l := range list {
			m[l.Volume] = l.Paused
			if l.Paused != l.NextRun.IsZero() && !all {
				t.Errorf("%s: paused %v but next run %v", l.Timer, l.Paused, l.NextRun)
			}
		}
		return m
	}

	if err := s.PauseSchedule("snapshot", "v1", ""); err != nil {
		t.Fatal(err)
	}
	if sd.active[t1] || sd.enabled[t1] || !sd.active[t2] {
		t.Fatalf("pause: active %v enabled %v", sd.active, sd.enabled)
	}
	if st := state(); !st["v1"] || st["v2"] || st["all"] {
		t.Fatalf("after pause: %v", st)
	}

	// The global pause keeps each schedule's own state.
	if err := s.PauseAllSchedules(); err != nil {
		t.Fatal(err)
	}
	if sd.active[t2] || sd.enabled[units.TargetName] || !sd.enabled[t2] {
		t.Fatalf("pause all: active %v enabled %v", sd.active, sd.enabled)
	}
	if st := state(); !st["all"] || !st["v1"] || st["v2"] {
		t.Fatalf("after pause all: %v", st)
	}
	// Resuming one while all are paused enables it but does not start it.
	if err := s.ResumeSchedule("snapshot", "v1", ""); err != nil {
		t.Fatal(err)
	}
	if sd.active[t1] || !sd.enabled[t1] {
		t.Fatalf("resume during pause all: active %v enabled %v", sd.active, sd.enabled)
	}
	if err := s.PauseSchedule("snapshot", "v1", ""); err != nil {
		t.Fatal(err)
	}
	// A new schedule during the global pause waits for it too.
	t3, err := s.SetSchedule(units.Schedule{Action: "purge", Volume: "v2", Arg: "1d", Every: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if sd.active[t3] || !sd.enabled[t3] {
		t.Fatalf("new schedule during pause all: active %v enabled %v", sd.active, sd.enabled)
	}
	if err := s.ResumeAllSchedules(); err != nil {
		t.Fatal(err)
	}
	if sd.active[t1] || !sd.active[t2] || !sd.active[t3] || !sd.active[units.TargetName] {
		t.Fatalf("resume all must start the schedules not paused themselves: %v", sd.active)
	}
	if st := state(); st["all"] || !st["v1"] || st["v2"] {
		t.Fatalf("after resume all: %v", st)
	}
	if err := s.ResumeSchedule("snapshot", "v1", ""); err != nil {
		t.Fatal(err)
	}
	if !sd.active[t1] || !sd.enabled[t1] {
		t.Fatal("resume did not start the timer")
	}

	sd.takeCalls()
	if err := s.RemoveSchedule("snapshot", "v1", ""); err != nil {
		t.Fatal(err)
	}
	_, svc1 := units.Names(units.Schedule{Action: "snapshot", Volume: "v1"})
	if calls := sd.takeCalls(); !slices.Equal(calls, []string{"stop " + t1, "stop " + svc1, "disable " + t1, "reload", "reset-failed " + t1, "reset-failed " + svc1}) {
		t.Fatalf("remove calls %q", calls)
	}
	if files := unitFiles(t, dir); slices.Contains(files, t1) || slices.Contains(files, svc1) || len(files) != 5 {
		t.Fatalf("files after remove: %v", files)
	}
	for name, err := range map[string]error{
		"remove":  s.RemoveSchedule("snapshot", "v1", ""),
		"pause":   s.PauseSchedule("snapshot", "v1", ""),
		"resume":  s.ResumeSchedule("snapshot", "v1", ""),
		"unknown": s.RemoveSchedule("snapshot", "nope", ""),
	} {
		if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "butterctl scheduled") {
			t.Errorf("%s of a missing schedule: %v", name, err)
		}
	}
	if err := s.RemoveSchedule("bogus", "v1", ""); !errors.Is(err, ErrInvalidArg) {
		t.Errorf("bad action: %v", err)
	}
	// The purge schedule is named without its pattern.
	if err := s.RemoveSchedule("purge", "v2", ""); err != nil {
		t.Fatal(err)
	}
}

func TestListSchedulesResults(t *testing.T) {
	sd := newFakeSystemd("")
	s, _ := schedStore(t, sd, "v1", "v2")
	t1, _ := s.SetSchedule(units.Schedule{Action: "snapshot", Volume: "v1", Every: time.Hour})
	t2, _ := s.SetSchedule(units.Schedule{Action: "snapshot", Volume: "v2", Every: time.Hour})
	_, svc1 := units.Names(units.Schedule{Action: "snapshot", Volume: "v1"})
	ran := time.UnixMicro(1_800_000_000_000_000)
	sd.last[t1] = ran
	sd.result[svc1] = units.ServiceResult{Result: "exit-code", Exited: ran.Add(time.Second)}
	list, _, err := s.ListSchedules()
	if err != nil {
		t.Fatal(err)
	}
	if l := list[0]; l.Timer != t1 || !l.LastRun.Equal(ran) || l.LastResult != "failed" || l.NextRun.IsZero() {
		t.Errorf("v1: %+v", l)
	}
	if l := list[1]; l.Timer != t2 || !l.LastRun.IsZero() || l.LastResult != "" {
		t.Errorf("v2 never ran: %+v", l)
	}
	info, err := s.GetSchedule(t1)
	if err != nil || info.Volume != "v1" || info.LastResult != "failed" {
		t.Fatalf("GetSchedule: %+v %v", info, err)
	}
	for _, bad := range []string{"nope.timer", units.Prefix + "x.timer", "../" + t1, units.TargetName} {
		if _, err := s.GetSchedule(bad); !errors.Is(err, ErrNotFound) {
			t.Errorf("GetSchedule(%q): %v", bad, err)
		}
	}
}

func TestRegenerateAtOpen(t *testing.T) {
	sd := newFakeSystemd("")
	s, dir := schedStore(t, sd, "v1", "v2")
	t1, _ := s.SetSchedule(units.Schedule{Action: "snapshot", Volume: "v1", Every: time.Hour})
	t2, _ := s.SetSchedule(units.Schedule{Action: "snapshot", Volume: "v2", Every: time.Hour})
	_, svc2 := units.Names(units.Schedule{Action: "snapshot", Volume: "v2"})
	if err := s.PauseSchedule("snapshot", "v2", ""); err != nil {
		t.Fatal(err)
	}
	// An older version wrote other text around the same definition.
	old, _ := os.ReadFile(filepath.Join(dir, t1))
	os.WriteFile(filepath.Join(dir, t1), []byte(strings.Replace(string(old), "AccuracySec=1min", "AccuracySec=5min", 1)), 0o644)
	os.WriteFile(filepath.Join(dir, svc2), []byte("[Service]\nExecStart=/old/butterctl snapshot v2\n"), 0o644)
	// Files butterd cannot read back are left alone.
	junk := []byte("[Unit]\nDescription=hand-made\n")
	os.WriteFile(filepath.Join(dir, units.Prefix+"junk.timer"), junk, 0o644)
	os.WriteFile(filepath.Join(dir, units.Prefix+"lonely.service"), junk, 0o644)
	sd.takeCalls()

	s2, _ := schedStore(t, sd)
	s2.sched.dir, sd.dir = dir, dir
	s2.regenerateSchedules()
	calls := sd.takeCalls()
	if want := []string{"enable " + t1, "reload"}; !slices.Equal(calls, want) {
		t.Fatalf("regeneration calls %q, want %q (re-enable only what was enabled, reload once, start nothing)", calls, want)
	}
	if !slices.Equal(s2.sched.regenerated, []string{t1, svc2}) {
		t.Fatalf("regenerated %v", s2.sched.regenerated)
	}
	for _, sc := range []units.Schedule{{Action: "snapshot", Volume: "v1", Every: time.Hour}, {Action: "snapshot", Volume: "v2", Every: time.Hour}} {
		timer, service := units.Names(sc)
		td, sdata, _ := units.Render(sc, units.DefaultButterctl)
		if got, _ := os.ReadFile(filepath.Join(dir, timer)); string(got) != string(td) {
			t.Errorf("%s not regenerated:\n%s", timer, got)
		}
		if got, _ := os.ReadFile(filepath.Join(dir, service)); string(got) != string(sdata) {
			t.Errorf("%s not regenerated:\n%s", service, got)
		}
	}
	if got, _ := os.ReadFile(filepath.Join(dir, units.Prefix+"junk.timer")); string(got) != string(junk) {
		t.Error("an unreadable timer was changed")
	}
	if sd.enabled[t2] {
		t.Error("regeneration enabled a paused schedule")
	}
	// Up to date: nothing to do.
	s2.regenerateSchedules()
	if calls := sd.takeCalls(); len(calls) != 0 {
		t.Fatalf("second regeneration: %q", calls)
	}
	// Another butterctl path rewrites every service.
	s3, _ := schedStore(t, sd)
	s3.sched.dir, sd.dir, s3.sched.butterctl = dir, dir, "/opt/butterd/bin/butterctl"
	s3.regenerateSchedules()
	if len(s3.sched.regenerated) != 2 {
		t.Fatalf("new butterctl path: regenerated %v", s3.sched.regenerated)
	}
}

func TestCreateOptionSchedulesAndVolumeRemoval(t *testing.T) {
	sd := newFakeSystemd("")
	s, dir := schedStore(t, sd, "v1")
	opts, err := ParseCreateOptions(map[string]string{"snapshot": "90", "purge": "1d:4w:1y"})
	if err != nil {
		t.Fatal(err)
	}
	scheds, err := s.prepareVolumeSchedules("new", opts)
	if err != nil {
		t.Fatal(err)
	}
	want := []units.Schedule{
		{Action: "snapshot", Volume: "new", Every: 90 * time.Minute},
		{Action: "purge", Volume: "new", Arg: "1d:4w:1y", Every: PurgeEvery},
	}
	if !slices.Equal(scheds, want) {
		t.Fatalf("schedules %+v, want %+v", scheds, want)
	}
	timers, err := s.setVolumeSchedules(scheds)
	if err != nil || len(timers) != 2 {
		t.Fatalf("set: %v %v", timers, err)
	}
	if _, err := s.SetSchedule(units.Schedule{Action: "snapshot", Volume: "v1", Every: time.Hour}); err != nil {
		t.Fatal(err)
	}
	removed := timersOf(s.removeVolumeSchedules("new"))
	slices.Sort(removed)
	slices.Sort(timers)
	if !slices.Equal(removed, timers) {
		t.Fatalf("removed %v, want %v", removed, timers)
	}
	list, _, _ := s.ListSchedules()
	if len(list) != 1 || list[0].Volume != "v1" {
		t.Fatalf("other volumes' schedules must stay: %+v", list)
	}
	if got := s.removeVolumeSchedules("v9"); got != nil {
		t.Fatalf("a volume without schedules: %v", got)
	}
	// A failing second schedule takes the first back.
	sc2 := units.Schedule{Action: "purge", Volume: "other", Arg: "1d", Every: PurgeEvery}
	t2, _ := units.Names(sc2)
	sd.fail["start "+t2] = errors.New("boom")
	before := unitFiles(t, dir)
	if _, err := s.setVolumeSchedules([]units.Schedule{{Action: "snapshot", Volume: "other", Every: time.Hour}, sc2}); err == nil {
		t.Fatal("failure not reported")
	}
	if after := unitFiles(t, dir); !slices.Equal(before, after) {
		t.Fatalf("a failed create left units: %v, before %v", after, before)
	}
}

// A removal that fails after the schedules went (here the delete: this
// store's volumes have no subvolume) sets them again as they were, a
// paused one paused; one refused before (a container holds the volume)
// does not touch them.
func TestFailedVolumeRemovalKeepsSchedules(t *testing.T) {
	sd := newFakeSystemd("")
	s, dir := schedStore(t, sd, "v1")
	snap, err := s.SetSchedule(units.Schedule{Action: "snapshot", Volume: "v1", Every: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	purge, err := s.SetSchedule(units.Schedule{Action: "purge", Volume: "v1", Arg: "1d:4w", Every: 2 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PauseSchedule("purge", "v1", ""); err != nil {
		t.Fatal(err)
	}
	before, _, err := s.ListSchedules()
	if err != nil {
		t.Fatal(err)
	}
	sd.takeCalls()
	r, err := s.RemoveVolumeReport("v1", RemoveOptions{NoFinalSnapshot: true})
	if err == nil {
		t.Fatal("removal of a volume without subvolume succeeded")
	}
	if len(r.Schedules) != 0 {
		t.Errorf("a failed removal reports schedules removed: %v", r.Schedules)
	}
	if calls := sd.takeCalls(); !slices.Contains(calls, "disable "+snap) || !slices.Contains(calls, "start "+snap) {
		t.Errorf("calls %q: the schedules are expected to go before the delete and come back after it failed", calls)
	}
	after, _, err := s.ListSchedules()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(before, after, func(a, b ScheduleInfo) bool {
		return a.Schedule == b.Schedule && a.Timer == b.Timer && a.Paused == b.Paused
	}) {
		t.Fatalf("schedules after a failed removal %+v, want them as before %+v", after, before)
	}
	if st, _ := sd.UnitState(snap); st.ActiveState != "active" {
		t.Errorf("timer %s not running again: %+v", snap, st)
	}
	if st, _ := sd.UnitState(purge); st.ActiveState == "active" || st.UnitFileState == "enabled" {
		t.Errorf("the paused timer %s came back unpaused: %+v", purge, st)
	}

	s.mounts.data.Mounts = map[string]map[string]int{"v1": {"m1": 1}}
	sd.takeCalls()
	if _, err := s.RemoveVolumeReport("v1", RemoveOptions{}); !errors.Is(err, ErrInUse) {
		t.Fatalf("removal of a mounted volume: %v", err)
	}
	if calls := sd.takeCalls(); len(calls) != 0 {
		t.Errorf("a refused removal touched the schedules: %q", calls)
	}
	if files := unitFiles(t, dir); !slices.Contains(files, snap) || !slices.Contains(files, purge) {
		t.Errorf("unit files after a refused removal: %v", files)
	}
}

func TestRemovalStopsARunUnderWay(t *testing.T) {
	sd := newFakeSystemd("")
	s, dir := schedStore(t, sd, "v1")
	timer, err := s.SetSchedule(units.Schedule{Action: "snapshot", Volume: "v1", Every: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	_, service := units.Names(units.Schedule{Action: "snapshot", Volume: "v1"})
	sd.active[service] = true // its timer just fired
	sd.takeCalls()
	if err := s.RemoveSchedule("snapshot", "v1", ""); err != nil {
		t.Fatal(err)
	}
	calls := sd.takeCalls()
	stop := slices.Index(calls, "stop "+service)
	if stop < 0 || slices.Index(calls, "stop "+timer) > stop || slices.Index(calls, "reset-failed "+service) < stop {
		t.Fatalf("calls %q: the timer, then the run must be stopped before the units go and are reset", calls)
	}
	if st, _ := sd.UnitState(service); st.ActiveState != "inactive" {
		t.Fatalf("the run goes on after its schedule was removed: %+v", st)
	}
	if files := unitFiles(t, dir); slices.Contains(files, service) {
		t.Fatalf("files %v", files)
	}
}

func TestOrphanSchedulesReportedAtStart(t *testing.T) {
	sd := newFakeSystemd("")
	s, dir := schedStore(t, sd, "v1", "v2")
	snap, err := s.SetSchedule(units.Schedule{Action: "snapshot", Volume: "v1", Every: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	purge, err := s.SetSchedule(units.Schedule{Action: "purge", Volume: "v1", Arg: "1d", Every: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	kept, err := s.SetSchedule(units.Schedule{Action: "snapshot", Volume: "v2", Every: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	delete(s.volumes, "v1")
	var log bytes.Buffer
	s.log = slog.New(slog.NewTextHandler(&log, nil))
	s.regenerateSchedules()
	out := log.String()
	if !strings.Contains(out, "schedule of a volume that does not exist") || !strings.Contains(out, snap) {
		t.Fatalf("the snapshot schedule of a missing volume is not reported:\n%s", out)
	}
	if strings.Contains(out, purge) || strings.Contains(out, kept) {
		t.Fatalf("a purge schedule or one of an existing volume reported:\n%s", out)
	}
	if files := unitFiles(t, dir); !slices.Contains(files, snap) {
		t.Fatalf("an orphan schedule was deleted: %v", files)
	}
}

func TestReplicateSchedules(t *testing.T) {
	sd := newFakeSystemd("")
	s, dir := schedStore(t, sd, "v1")
	rep := units.Schedule{Action: "replicate", Volume: "v1", Arg: "nas.lan:2222", Every: 6 * time.Hour}
	syn := units.Schedule{Action: "synchronize", Volume: "v1", Arg: "a.lan,[fe80::1]:1122", OnCalendar: "daily"}
	for _, sc := range []units.Schedule{rep, syn} {
		timer, err := s.SetSchedule(sc)
		if err != nil {
			t.Fatalf("%s: %v", sc.Key(), err)
		}
		data, err := os.ReadFile(filepath.Join(dir, timer))
		if err != nil || !strings.Contains(string(data), "\nX-Butterd-Arg="+sc.Arg+"\n") {
			t.Fatalf("%s: timer %s lacks its hosts: %s %v", sc.Key(), timer, data, err)
		}
	}
	list, _, err := s.ListSchedules()
	if err != nil || len(list) != 2 {
		t.Fatalf("list: %+v %v", list, err)
	}
	got := map[string]units.Schedule{}
	for _, l := range list {
		got[l.Key()] = l.Schedule
	}
	if got[rep.Key()] != rep || got[syn.Key()] != syn {
		t.Fatalf("read back %+v, want %+v and %+v", got, rep, syn)
	}
	// Keyed by host: a second replicate schedule to another host is another one.
	rep2 := rep
	rep2.Arg = "other.lan"
	if _, err := s.SetSchedule(rep2); err != nil {
		t.Fatal(err)
	}
	if list, _, _ := s.ListSchedules(); len(list) != 3 {
		t.Fatalf("two hosts, two schedules: %+v", list)
	}
	if err := s.RemoveSchedule("replicate", "v1", "nas.lan:2222"); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveSchedule("replicate", "v1", "nas.lan:2222"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "(nas.lan:2222)") {
		t.Fatalf("removed twice: %v", err)
	}
}

func TestCreateOptionsReplicate(t *testing.T) {
	o, err := ParseCreateOptions(map[string]string{"replicate": "nas.lan", "synchronize": "a,b:2222"})
	if err != nil {
		t.Fatal(err)
	}
	want := []units.Schedule{
		{Action: "replicate", Volume: "v", Arg: "nas.lan", Every: ReplicateEvery},
		{Action: "synchronize", Volume: "v", Arg: "a,b:2222", Every: ReplicateEvery},
	}
	if got := o.schedules("v"); !slices.Equal(got, want) {
		t.Fatalf("schedules %+v, want %+v", got, want)
	}
	s := &Store{policies: map[string]CreateOptions{}}
	s.policies["offsite"], _ = ParseCreateOptions(map[string]string{"replicate": "nas.lan"})
	o, _ = ParseCreateOptions(map[string]string{"policy": "offsite"})
	if o, err = s.withPolicy(o); err != nil || o.Replicate != "nas.lan" {
		t.Fatalf("from the policy: %+v %v", o, err)
	}
	o, _ = ParseCreateOptions(map[string]string{"policy": "offsite", "replicate": "none"})
	if o, err = s.withPolicy(o); err != nil || o.Replicate != "" || len(o.schedules("v")) != 0 {
		t.Fatalf("replicate=none under the policy: %+v %v", o, err)
	}
}

func TestCreateOptionsSchedulesAndPolicies(t *testing.T) {
	o, err := ParseCreateOptions(map[string]string{"snapshot": "1h", "purge": "1d:4w", "policy": "nightly"})
	if err != nil || o.Snapshot != time.Hour || o.Purge != "1d:4w" || o.Policy != "nightly" {
		t.Fatalf("%+v %v", o, err)
	}
	for opts, want := range map[string]string{
		"snapshot=1x":      "time span",
		"snapshot=10ms":    "at least 1s",
		"purge=1d:1h":      "strictly increasing",
		"replicate=a b":    "not a host name",
		"synchronize=a,,b": "empty item",
		"synchronize=a,a":  "appears twice",
		"policy=":          "[policy NAME]",
		"colour=blue":      "allowed options are copyonwrite, finalsnapshot, from, policy, purge, replicate, snapshot, synchronize",
		"copyonwrite=nope": "true or false",
	} {
		k, v, _ := strings.Cut(opts, "=")
		if _, err := ParseCreateOptions(map[string]string{k: v}); err == nil || !strings.Contains(err.Error(), want) || !errors.Is(err, ErrInvalidArg) {
			t.Errorf("%s: %v, want %q", opts, err, want)
		}
	}
	if o, err := ParseCreateOptions(map[string]string{"snapshot": "0", "purge": "none"}); err != nil || o.Snapshot != 0 || o.Purge != "" || len(o.schedules("v")) != 0 {
		t.Fatalf("none: %+v %v", o, err)
	}

	pols, err := parsePolicies(map[string]map[string]string{
		"nightly": {"snapshot": "1d", "purge": "1d:4w:1y", "copyonwrite": "false"},
		"scratch": {"finalsnapshot": "false"},
	})
	if err != nil {
		t.Fatal(err)
	}
	s := &Store{policies: pols}
	// Explicit options win over the policy's; the rest comes from it.
	o, err = ParseCreateOptions(map[string]string{"policy": "nightly", "snapshot": "2h", "purge": "none"})
	if err != nil {
		t.Fatal(err)
	}
	o, err = s.withPolicy(o)
	if err != nil || o.Snapshot != 2*time.Hour || o.Purge != "" || !o.NoCOW || o.NoFinalSnapshot {
		t.Fatalf("with policy: %+v %v", o, err)
	}
	o, _ = ParseCreateOptions(map[string]string{"policy": "nightly", "copyonwrite": "true"})
	if o, _ = s.withPolicy(o); o.NoCOW || o.Snapshot != 24*time.Hour || o.Purge != "1d:4w:1y" {
		t.Fatalf("policy under explicit copyonwrite=true: %+v", o)
	}
	o, _ = ParseCreateOptions(map[string]string{"policy": "nope"})
	if _, err := s.withPolicy(o); !errors.Is(err, ErrInvalidArg) || !strings.Contains(err.Error(), "known policies are nightly, scratch") {
		t.Fatalf("unknown policy: %v", err)
	}
	if _, err := (&Store{}).withPolicy(o); err == nil || !strings.Contains(err.Error(), "no policies are configured") {
		t.Fatalf("unknown policy, none configured: %v", err)
	}
	for pol, want := range map[string]string{
		"from=v1":       "per volume",
		"policy=x":      "per volume",
		"bogus=1":       "unknown option",
		"snapshot=soon": "time span",
	} {
		k, v, _ := strings.Cut(pol, "=")
		if _, err := parsePolicies(map[string]map[string]string{"p1": {k: v}}); err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), `policy "p1"`) {
			t.Errorf("policy %s: %v, want %q", pol, err, want)
		}
	}
}

// Schedule options repeated for a volume that exists: those it has (in
// any spelling) are applied already, the others are listed.
func TestUnappliedScheduleOptions(t *testing.T) {
	s, _ := schedStore(t, newFakeSystemd(""), "v1")
	if _, err := s.SetSchedule(units.Schedule{Action: "snapshot", Volume: "v1", Every: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetSchedule(units.Schedule{Action: "purge", Volume: "v1", Arg: "1d:4w", Every: PurgeEvery}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		opts map[string]string
		want []string
	}{
		{map[string]string{"snapshot": "60", "purge": "1440m:4w", "replicate": "none"}, nil},
		{map[string]string{"snapshot": "2h", "purge": "none", "synchronize": "hostb"}, []string{"snapshot=2h", "purge=none", "synchronize=hostb"}},
		{map[string]string{"snapshot": "0", "purge": "1d"}, []string{"snapshot=0", "purge=1d"}},
	} {
		o, err := ParseCreateOptions(c.opts)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.unappliedOptions("v1", o); !slices.Equal(got, c.want) {
			t.Errorf("options %v: unapplied %q, want %q", c.opts, got, c.want)
		}
	}
}

// Units named like schedules that butterd cannot read back are listed with
// why and with their timer's state, last, after the schedules.
func TestListSchedulesShowsUnreadableUnits(t *testing.T) {
	sd := newFakeSystemd("")
	s, dir := schedStore(t, sd, "v1")
	good, err := s.SetSchedule(units.Schedule{Action: "snapshot", Volume: "v1", Every: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	// A hand-edited volume: the file no longer validates.
	bad, badSvc := units.Names(units.Schedule{Action: "purge", Volume: "v1"})
	td, svc, err := units.Render(units.Schedule{Action: "purge", Volume: "v1", Arg: "1d", Every: time.Hour}, units.DefaultButterctl)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, bad), bytes.Replace(td, []byte(units.KeyVolume+"=v1"), []byte(units.KeyVolume+"=v@1"), 1), 0o644)
	os.WriteFile(filepath.Join(dir, badSvc), svc, 0o644)
	sd.enabled[bad], sd.active[bad] = true, true
	sd.result[badSvc] = units.ServiceResult{Result: "exit-code", Exited: time.UnixMicro(1_800_000_000_000_000)}
	lonely := units.Prefix + "lonely.service"
	os.WriteFile(filepath.Join(dir, lonely), svc, 0o644)

	list, _, err := s.ListSchedules()
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 3 || list[0].Timer != good || list[0].Unreadable != "" {
		t.Fatalf("list %+v: want the schedule, then two unreadable units", list)
	}
	i := slices.IndexFunc(list, func(i ScheduleInfo) bool { return i.Timer == bad })
	if i < 0 {
		t.Fatalf("%s not listed: %+v", bad, list)
	}
	if u := list[i]; !strings.Contains(u.Unreadable, "v@1") || u.Action != "" ||
		u.Paused || u.NextRun.IsZero() || u.LastResult != "failed" {
		t.Errorf("unreadable timer %+v: want why, and that it runs and fails", u)
	}
	i = slices.IndexFunc(list, func(i ScheduleInfo) bool { return i.Timer == lonely })
	if i < 0 || list[i].Unreadable != "no timer of that name" {
		t.Errorf("service without a timer not listed as such: %+v", list)
	}
}

// Removing a volume removes the units named as its schedules that cannot be
// read back, and no other volume's.
func TestRemoveUnreadableSchedulesOfAVolume(t *testing.T) {
	sd := newFakeSystemd("")
	s, dir := schedStore(t, sd, "v1", "v1-b")
	kept, err := s.SetSchedule(units.Schedule{Action: "purge", Volume: "v1-b", Arg: "1d", Every: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	junk := []byte("[Unit]\nX-Butterd-Action=snapshot\nX-Butterd-Volume=..\n")
	mine := []string{}
	for _, sc := range []units.Schedule{{Action: "snapshot", Volume: "v1"}, {Action: "replicate", Volume: "v1", Arg: "nas"}} {
		timer, service := units.Names(sc)
		os.WriteFile(filepath.Join(dir, timer), junk, 0o644)
		os.WriteFile(filepath.Join(dir, service), junk, 0o644)
		sd.enabled[timer], sd.active[timer] = true, true
		mine = append(mine, timer)
	}
	_, lonely := units.Names(units.Schedule{Action: "purge", Volume: "v1"})
	os.WriteFile(filepath.Join(dir, lonely), junk, 0o644)
	mine = append(mine, lonely)
	other, _ := units.Names(units.Schedule{Action: "snapshot", Volume: "v1-b"})
	os.WriteFile(filepath.Join(dir, other), junk, 0o644)

	removed := s.removeUnreadableSchedules("v1")
	slices.Sort(removed)
	slices.Sort(mine)
	if !slices.Equal(removed, mine) {
		t.Fatalf("removed %v, want %v", removed, mine)
	}
	files := unitFiles(t, dir)
	for _, u := range mine {
		if slices.Contains(files, u) || sd.enabled[u] || sd.active[u] {
			t.Errorf("%s still there (files %v), enabled or running", u, files)
		}
	}
	if !slices.Contains(files, other) || !slices.Contains(files, kept) {
		t.Errorf("another volume's units went: %v", files)
	}
	if again := s.removeUnreadableSchedules("v1"); again != nil {
		t.Errorf("removed again: %v", again)
	}
}
