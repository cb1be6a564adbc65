package tests

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"butterd/btrfs"
	"butterd/service"
	"butterd/tests/testenv"
	"butterd/units"
	"butterd/units/systemd"
)

// A volume removal that fails keeps the volume's schedules as they were,
// under a real systemd (nspawn) and on a real BTRFS: the final snapshot
// refused on a full pool (the operator removing a volume to free space),
// and the delete refused after the schedules went (a nested subvolume,
// removal without final snapshot), which sets them again, the paused one
// paused. Once the cause is gone, the removal takes the schedules along.
func TestRemoveVolumeFailureKeepsSchedules(t *testing.T) {
	testenv.Root(t)
	mnt := testenv.BtrfsWith(t, "256M", "--mixed")
	unitDir := filepath.Join(t.TempDir(), "system")
	if out, err := exec.Command("cp", "-a", "/etc/systemd/system", unitDir).CombinedOutput(); err != nil {
		t.Fatalf("copy /etc/systemd/system: %v: %s", err, out)
	}
	m := testenv.BootSystemd(t, testenv.Bind{Src: unitDir, Dst: "/etc/systemd/system"})
	sd, err := systemd.ConnectAddress(m.BusAddress())
	must(t, err)
	t.Cleanup(func() { sd.Close() })
	s := openStoreAt(t, filepath.Join(mnt, "root"), service.Config{UnitDir: unitDir, Systemd: sd})
	opts, err := service.ParseCreateOptions(map[string]string{"snapshot": "1h", "purge": "1d:4w"})
	must(t, err)
	v, _, err := s.CreateVolume("app", opts)
	must(t, err)
	writeFile(t, filepath.Join(v.Path, "f"), "data")
	must(t, s.PauseSchedule(units.ActionPurge, "app", ""))
	snapTimer, _ := units.Names(units.Schedule{Action: units.ActionSnapshot, Volume: "app"})
	purgeTimer, _ := units.Names(units.Schedule{Action: units.ActionPurge, Volume: "app"})
	type sched struct {
		units.Schedule
		Timer  string
		Paused bool
	}
	schedules := func() []sched {
		t.Helper()
		list, _, err := s.ListSchedules()
		must(t, err)
		var out []sched
		for _, i := range list {
			out = append(out, sched{i.Schedule, i.Timer, i.Paused})
		}
		return out
	}
	state := func(unit string) string {
		out, _ := m.Run("systemctl", "is-active", unit)
		enabled, _ := m.Run("systemctl", "is-enabled", unit)
		return strings.TrimSpace(out) + "/" + strings.TrimSpace(enabled)
	}
	before := schedules()
	if len(before) != 2 || state(snapTimer) != "active/enabled" || state(purgeTimer) != "inactive/disabled" {
		t.Fatalf("schedules before: %+v; %s %s, %s %s", before, snapTimer, state(snapTimer), purgeTimer, state(purgeTimer))
	}
	kept := func(when string) {
		t.Helper()
		if after := schedules(); !slices.Equal(after, before) {
			t.Errorf("%s: schedules %+v, want them as before %+v", when, after, before)
		}
		if st := state(snapTimer); st != "active/enabled" {
			t.Errorf("%s: %s is %s, want active/enabled", when, snapTimer, st)
		}
		if st := state(purgeTimer); st != "inactive/disabled" {
			t.Errorf("%s: the paused %s is %s, want inactive/disabled", when, purgeTimer, st)
		}
		if readFile(t, filepath.Join(v.Path, "f")) != "data" {
			t.Errorf("%s: the volume lost its data", when)
		}
	}

	filler := fillPool(t, mnt, "filler")
	if r, err := s.RemoveVolumeReport("app", service.RemoveOptions{}); !errors.Is(err, service.ErrNoSpace) || len(r.Schedules) != 0 {
		t.Fatalf("removal on a full pool: %+v, %v; want refused for lack of space", r, err)
	}
	kept("after the final snapshot failed on a full pool")
	must(t, os.Remove(filler))
	syncFS(t, mnt)

	must(t, btrfs.Create(filepath.Join(v.Path, "inner")))
	if _, err := s.RemoveVolumeReport("app", service.RemoveOptions{NoFinalSnapshot: true}); !errors.Is(err, service.ErrInUse) {
		t.Fatalf("removal of a volume holding a subvolume: %v", err)
	}
	kept("after the delete failed")

	// A schedule of the volume that no longer reads back (its volume
	// edited by hand), its timer running: listed as unreadable, and
	// removed with the volume all the same.
	bad := units.Schedule{Action: units.ActionReplicate, Volume: "app", Arg: "nas", Every: time.Hour}
	badTimer, badService := units.Names(bad)
	td, sdata, err := units.Render(bad, units.DefaultButterctl)
	must(t, err)
	writeFile(t, filepath.Join(unitDir, badService), string(sdata))
	writeFile(t, filepath.Join(unitDir, badTimer), strings.Replace(string(td), units.KeyVolume+"=app", units.KeyVolume+"=app@", 1))
	for _, c := range [][]string{{"systemctl", "daemon-reload"}, {"systemctl", "enable", "--now", badTimer}} {
		if out, err := m.Run(c...); err != nil {
			t.Fatalf("%s: %v: %s", c, err, out)
		}
	}
	list, _, err := s.ListSchedules()
	must(t, err)
	if i := slices.IndexFunc(list, func(i service.ScheduleInfo) bool { return i.Timer == badTimer }); i < 0 || list[i].Unreadable == "" || list[i].NextRun.IsZero() {
		t.Errorf("schedules %+v: want %s listed as unreadable and running", list, badTimer)
	}

	must(t, btrfs.Delete(filepath.Join(v.Path, "inner")))
	r, err := s.RemoveVolumeReport("app", service.RemoveOptions{})
	must(t, err)
	if r.FinalSnapshot == "" || !slices.Contains(r.Schedules, snapTimer) || !slices.Contains(r.Schedules, purgeTimer) || !slices.Contains(r.Schedules, badTimer) {
		t.Errorf("removal: %+v", r)
	}
	if got := schedules(); len(got) != 0 {
		t.Errorf("schedules after the removal: %+v", got)
	}
	if st := state(badTimer); !strings.HasPrefix(st, "inactive/") {
		t.Errorf("the unreadable %s is %s after the removal, want stopped", badTimer, st)
	}
	for _, u := range []string{badTimer, badService} {
		if _, err := os.Stat(filepath.Join(unitDir, u)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s stays: %v", u, err)
		}
	}
	if readFile(t, filepath.Join(mnt, "root", "snapshots", r.FinalSnapshot, "f")) != "data" {
		t.Error("the final snapshot lacks the data")
	}
}
