package tests

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"butterd/btrfs"
	"butterd/dbusapi"
	"butterd/service"
	"butterd/tests/testenv"
	"butterd/units"
)

// Schedules as systemd timers under a real systemd, in CI: butterd runs inside a container booted with
// systemd-nspawn, activated by the bus as packaged, reaching systemd over
// /run/systemd/private; the data root is a loop-mounted BTRFS bound in,
// butterctl is bound at /usr/bin/butterctl (the generated services run it),
// and /etc/systemd/system is a host directory bound in, so that the units
// butterd writes there survive a reboot (a new container with the same
// binds). Everything is driven through the container's system bus from the
// host, and checked with systemctl inside and on the filesystem.
//
// One flow, since every boot costs a second or two and the reboot cases
// need the state the earlier steps leave:
//
//  1. a snapshot schedule every 3 s takes snapshots, shows in
//     `systemctl list-timers` and in ListSchedules (next run, last run,
//     success); a snapshot schedule of a volume holding a nested subvolume
//     (snapshot refused) leaves a failed service and says failed; a purge
//     schedule deletes exactly the dry-run plan taken just before;
//     removing a schedule removes both units and the .wants link; a
//     replicate and a synchronize schedule are set, listed and read back,
//     and the replicate service started by hand runs the replicate job,
//     which fails (nothing listens at the host) as a failed unit and a
//     failed job naming the host, the snapshot it took kept;
//  2. pausing a schedule stops and disables its timer, resuming starts it;
//  3. after a reboot the timer fires with nobody starting anything;
//  4. the global pause stops every timer, survives a reboot, and resuming
//     all keeps an individually paused schedule paused;
//  5. removing a volume removes its schedules (its snapshots stay).
func TestSchedulesTimers(t *testing.T) {
	testenv.Root(t)
	btrfsCmd := testenv.Command(t, "btrfs")
	bin := testenv.BuildButterd(t)
	ctl := testenv.BuildButterctl(t)
	pkg := filepath.Join(testenv.ModuleRoot(t), "packaging")
	mnt := testenv.Btrfs(t)
	root := filepath.Join(mnt, "root") // bound in as the default data root
	const every = 3 * time.Second

	// Volume pv with hand-made snapshots at old times (as received or
	// copied snapshots are: their time is the one in their name), made
	// with the store on the host before butterd ever runs.
	const pattern = "2m:10m:2h"
	now := time.Now().Truncate(time.Second)
	bucket := now.Add(-40 * time.Minute).Truncate(10 * time.Minute) // a 10-minute bucket between 30 and 50 min ago
	pvTimes := map[string]time.Time{
		"N":  now.Add(-3 * time.Minute),   // newest: kept (and in the first window's 2-minute buckets)
		"C":  now.Add(-5 * time.Minute),   // alone in its 2-minute bucket between 2m and 10m: kept
		"B1": bucket.Add(2 * time.Minute), // the oldest of its 10-minute bucket between 10m and 2h: kept
		"B2": bucket.Add(6 * time.Minute), // same bucket, younger: deleted
		"D":  now.Add(-3 * time.Hour),     // 2h or older: deleted
		"E":  now.Add(-5 * time.Hour),     // deleted
	}
	pvNames := map[string]string{}
	{
		s := openStoreAt(t, root, service.Config{UnitDir: t.TempDir()})
		v, _, err := s.CreateVolume("pv", service.CreateOptions{})
		must(t, err)
		for k, at := range pvTimes {
			pvNames[k] = service.SnapshotName("pv", at)
			must(t, btrfs.Snapshot(v.Path, filepath.Join(root, "snapshots", pvNames[k]), true))
		}
		must(t, s.Close())
	}
	wantDelete := sortedOf(pvNames["B2"], pvNames["D"], pvNames["E"])
	wantKeep := sortedOf(pvNames["N"], pvNames["C"], pvNames["B1"])

	// The unit directory: a copy of the host's /etc/systemd/system (what
	// the container would see there), plus butterd's packaged units and a
	// drop-in with the test's settings.
	unitDir := filepath.Join(t.TempDir(), "system")
	if out, err := exec.Command("cp", "-a", "/etc/systemd/system", unitDir).CombinedOutput(); err != nil {
		t.Fatalf("copy /etc/systemd/system: %v: %s", err, out)
	}
	for _, u := range []string{"butterd.service", "butterd-pool.service", "butterd.socket"} {
		copyFile(t, filepath.Join(pkg, "systemd", u), filepath.Join(unitDir, u))
	}
	must(t, os.MkdirAll(filepath.Join(unitDir, "butterd.service.d"), 0o755))
	must(t, os.WriteFile(filepath.Join(unitDir, "butterd.service.d", "test.conf"), []byte(
		"[Service]\nEnvironment=BUTTERD_UNIT_DIR=/etc/systemd/system BUTTERD_BUTTERCTL=/usr/bin/butterctl BUTTERD_LOG_LEVEL=debug\n"), 0o644))

	binds := []testenv.Bind{
		{Src: bin, Dst: "/usr/bin/butterd", ReadOnly: true},
		{Src: ctl, Dst: "/usr/bin/butterctl", ReadOnly: true},
		{Src: root, Dst: "/var/lib/butterd"},
		{Src: unitDir, Dst: "/etc/systemd/system"},
		// Bound, not written into the overlay, so that they are there from
		// the first moment of every boot: a timer firing after a reboot
		// starts butterd by bus activation.
		{Src: filepath.Join(pkg, "dbus", "io.butterd.volumes1.conf"), Dst: "/usr/share/dbus-1/system.d/io.butterd.volumes1.conf", ReadOnly: true},
		{Src: filepath.Join(pkg, "dbus", "io.butterd.volumes1.service"), Dst: "/usr/share/dbus-1/system-services/io.butterd.volumes1.service", ReadOnly: true},
	}
	m := testenv.BootSystemd(t, binds...)
	c := schedClient(t, m)

	svTimer, svService := units.Names(units.Schedule{Action: units.ActionSnapshot, Volume: "sv"})
	fvTimer, fvService := units.Names(units.Schedule{Action: units.ActionSnapshot, Volume: "fv"})
	pvTimer, pvService := units.Names(units.Schedule{Action: units.ActionPurge, Volume: "pv"})
	if svTimer != "butterd-sched-snapshot-sv.timer" || pvTimer != "butterd-sched-purge-pv.timer" {
		t.Fatalf("unit names %s, %s: want butterd-sched-snapshot-sv.timer and butterd-sched-purge-pv.timer", svTimer, pvTimer)
	}

	// ---- 1. Schedules run, fail and purge.
	for _, v := range []string{"sv", "fv"} {
		if _, err := c.CreateVolume(v, nil); err != nil {
			t.Fatalf("CreateVolume %s: %v", v, err)
		}
	}
	if out, err := exec.Command(btrfsCmd, "subvolume", "create", filepath.Join(root, "volumes", "fv", "nested")).CombinedOutput(); err != nil {
		t.Fatalf("btrfs subvolume create in fv: %v: %s", err, out)
	}
	_, _, planDel, planKeep, err := c.Purge("pv", pattern, true, time.Time{})
	if err != nil {
		t.Fatalf("Purge dry run: %v", err)
	}
	if got := purgeRowNames(planDel); !slices.Equal(got, wantDelete) {
		t.Errorf("dry run of %s deletes %v, want %v", pattern, got, wantDelete)
	}
	if got := purgeRowNames(planKeep); !slices.Equal(got, wantKeep) {
		t.Errorf("dry run of %s keeps %v, want %v", pattern, got, wantKeep)
	}
	for _, sc := range []struct{ action, volume, arg, want string }{
		{"snapshot", "sv", "", svTimer},
		{"snapshot", "fv", "", fvTimer},
		{"purge", "pv", pattern, pvTimer},
	} {
		unit, err := c.SetSchedule(sc.action, sc.volume, sc.arg, every, "")
		if err != nil || unit != sc.want {
			t.Fatalf("SetSchedule %s %s: %q, %v; want %s", sc.action, sc.volume, unit, err, sc.want)
		}
	}
	set := time.Now()
	if j := m.MustRun("journalctl", "--no-pager", "-o", "cat", "-u", "butterd.service"); !strings.Contains(j, "schedules run as systemd timers") || !strings.Contains(j, units.PrivateSocket) {
		t.Errorf("butterd does not say it reaches systemd over %s:\n%s", units.PrivateSocket, j)
	}
	for _, u := range []string{svTimer, svService, fvTimer, fvService, pvTimer, pvService, units.TargetName} {
		if _, err := os.Stat(filepath.Join(unitDir, u)); err != nil {
			t.Errorf("unit %s not in the unit directory: %v", u, err)
		}
	}
	if out, err := m.Run("systemd-analyze", "verify", "--man=no", "/etc/systemd/system/"+svTimer, "/etc/systemd/system/"+pvTimer); err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("systemd-analyze verify of the generated units: %v\n%s", err, out)
	}

	schedWait(t, m, 20*time.Second, "2 snapshots of sv, a failed fv run and a purge of pv", func() (bool, string) {
		snaps := volumeSnapshots(t, c, "sv")
		failed := strings.TrimSpace(mustRunAny(m, "systemctl", "is-failed", fvService))
		rows := listSchedules(t, c)
		pv := scheduleRow(rows, "purge", "pv")
		pvDone := pv != nil && pv.LastResult != ""
		return len(snaps) >= 2 && failed == "failed" && pvDone,
			fmt.Sprintf("sv snapshots %v, %s %s, purge schedule %+v", snaps, fvService, failed, pv)
	})
	t.Logf("first runs of all three schedules within %v", time.Since(set).Round(10*time.Millisecond))

	timers := m.MustRun("systemctl", "list-timers", "--all", "--no-pager")
	for _, u := range []string{svTimer, fvTimer, pvTimer} {
		if !strings.Contains(timers, u) {
			t.Errorf("systemctl list-timers --all does not show %s:\n%s", u, timers)
		}
	}
	if desc := unitProps(m, svTimer, "Description")["Description"]; !strings.Contains(desc, "snapshot volume sv") {
		t.Errorf("%s Description=%q, want one naming the snapshot of sv", svTimer, desc)
	}
	rows, allPaused := listSchedulesPaused(t, c)
	if allPaused {
		t.Errorf("ListSchedules says all paused before any pause")
	}
	sv := scheduleRow(rows, "snapshot", "sv")
	switch {
	case sv == nil:
		t.Fatalf("ListSchedules has no snapshot schedule of sv: %+v", rows)
	case sv.Unit != svTimer || sv.Every != uint64(every.Microseconds()) || sv.Paused:
		t.Errorf("ListSchedules sv = %+v, want unit %s every 3s, not paused", *sv, svTimer)
	case sv.LastResult != "success" || sv.LastRun == 0 || sv.NextRun == 0:
		t.Errorf("ListSchedules sv = %+v, want a last run with success and a next run", *sv)
	default:
		last, next := time.UnixMicro(int64(sv.LastRun)), time.UnixMicro(int64(sv.NextRun))
		if last.Before(set) || last.After(time.Now()) || !next.After(last) || next.After(time.Now().Add(every+2*time.Second)) {
			t.Errorf("ListSchedules sv: last run %v, next run %v, now %v: want a last run since the schedule was set and the next within an interval", last, next, time.Now())
		}
	}
	if fv := scheduleRow(rows, "snapshot", "fv"); fv == nil || fv.LastResult != "failed" {
		t.Errorf("ListSchedules fv = %+v, want last result failed", fv)
	}
	if st := unitProps(m, fvService, "ActiveState", "Result"); st["ActiveState"] != "failed" || st["Result"] != "exit-code" {
		t.Errorf("%s = %v, want failed with exit-code", fvService, st)
	}
	if j := mustRunAny(m, "journalctl", "--no-pager", "-o", "cat", "-u", fvService); !strings.Contains(j, "nested") {
		t.Errorf("the journal of %s does not say why the snapshot failed:\n%s", fvService, j)
	}
	// The failed run is a failed job too (so it is signalled and posted).
	if jobs, err := c.ListJobs(); err != nil || !slices.ContainsFunc(jobs, func(j dbusapi.JobRow) bool {
		return j.Kind == "snapshot" && j.Target == "fv" && j.State == "failed"
	}) {
		t.Errorf("ListJobs %+v, %v: want the failed snapshot job of fv", jobs, err)
	}

	// The purge deleted exactly the plan's delete list; later runs (every
	// 3 s) find nothing more to delete while no snapshot changes window.
	pv := scheduleRow(rows, "purge", "pv")
	if pv == nil || pv.LastResult != "success" {
		t.Errorf("ListSchedules pv = %+v, want last result success", pv)
	}
	if got := snapshotRowNames(volumeSnapshots(t, c, "pv")); !slices.Equal(got, purgeRowNames(planKeep)) {
		t.Errorf("after the purge schedule ran, pv has %v; the dry run planned to keep %v", got, purgeRowNames(planKeep))
	}
	for _, name := range purgeRowNames(planDel) {
		if _, err := os.Lstat(filepath.Join(root, "snapshots", name)); err == nil {
			t.Errorf("snapshot %s is still on disk after the purge schedule ran", name)
		}
	}

	// Removing a schedule removes both units and the .wants link. A run
	// under way is stopped first: no unit is left failed.
	startRun(t, m, fvService)
	if err := c.RemoveSchedule("snapshot", "fv", ""); err != nil {
		t.Fatalf("RemoveSchedule snapshot fv: %v", err)
	}
	checkUnitsGone(t, m, unitDir, fvTimer, fvService)
	if rows := listSchedules(t, c); scheduleRow(rows, "snapshot", "fv") != nil || len(rows) != 2 {
		t.Errorf("ListSchedules after removing fv's schedule: %+v, want sv's and pv's only", rows)
	}

	replicateSchedules(t, c, m, unitDir, root)

	// ---- 2. Pause stops and disables the timer; resume starts it.
	if err := c.PauseSchedule("snapshot", "sv", ""); err != nil {
		t.Fatalf("PauseSchedule snapshot sv: %v", err)
	}
	paused := time.Now()
	checkTimer(t, m, svTimer, "inactive", "disabled")
	if sv := scheduleRow(listSchedules(t, c), "snapshot", "sv"); sv == nil || !sv.Paused || sv.NextRun != 0 {
		t.Errorf("ListSchedules sv after pause = %+v, want paused with no next run", sv)
	}
	quiet(t, root, "sv", settled(t, m, root, "sv"), paused.Add(3*every), "while sv's schedule is paused")
	if err := c.ResumeSchedule("snapshot", "sv", ""); err != nil {
		t.Fatalf("ResumeSchedule snapshot sv: %v", err)
	}
	checkTimer(t, m, svTimer, "active", "enabled")
	n := len(hostSnapshots(t, root, "sv"))
	schedWait(t, m, 3*every, "a snapshot of sv after resume", func() (bool, string) {
		got := hostSnapshots(t, root, "sv")
		return len(got) > n, fmt.Sprint(got)
	})
	if sv := scheduleRow(listSchedules(t, c), "snapshot", "sv"); sv == nil || sv.Paused || sv.NextRun == 0 {
		t.Errorf("ListSchedules sv after resume = %+v, want not paused with a next run", sv)
	}

	// ---- 3. Reboot: the timers start with the target at boot and fire
	// with nobody starting anything (no call, no systemctl start).
	c.Close()
	m = m.Reboot()
	booted := time.Now()
	n = len(hostSnapshots(t, root, "sv"))
	schedWait(t, m, 4*every, "a snapshot of sv after the reboot", func() (bool, string) {
		got := hostSnapshots(t, root, "sv")
		return len(got) > n, fmt.Sprint(got)
	})
	t.Logf("first snapshot after the reboot %v after boot", time.Since(booted).Round(10*time.Millisecond))
	checkTimer(t, m, svTimer, "active", "enabled")
	checkTimer(t, m, pvTimer, "active", "enabled")
	if st := unitProps(m, units.TargetName, "ActiveState", "UnitFileState"); st["ActiveState"] != "active" || st["UnitFileState"] != "enabled" {
		t.Errorf("%s after the reboot: %v, want active and enabled", units.TargetName, st)
	}
	if by := unitProps(m, svTimer, "WantedBy")["WantedBy"]; !strings.Contains(by, units.TargetName) {
		t.Errorf("%s WantedBy=%q, want %s", svTimer, by, units.TargetName)
	}
	// What starts them at boot: timers.target (wanted by basic.target)
	// wants the target, which wants each enabled timer.
	targetLink := filepath.Join(unitDir, "timers.target.wants", units.TargetName)
	for _, link := range []string{targetLink, filepath.Join(unitDir, units.TargetName+".wants", svTimer), filepath.Join(unitDir, units.TargetName+".wants", pvTimer)} {
		if _, err := os.Lstat(link); err != nil {
			t.Errorf("enablement link missing: %v", err)
		}
	}

	// ---- 4. Global pause: every timer stops, each schedule keeps its own
	// state, and it survives a reboot.
	c = schedClient(t, m)
	if err := c.PauseSchedule("purge", "pv", ""); err != nil {
		t.Fatalf("PauseSchedule purge pv: %v", err)
	}
	if err := c.PauseAllSchedules(); err != nil {
		t.Fatalf("PauseAllSchedules: %v", err)
	}
	paused = time.Now()
	checkTimer(t, m, svTimer, "inactive", "enabled")
	checkTimer(t, m, pvTimer, "inactive", "disabled")
	checkTarget := func(when, active, enabled string) {
		t.Helper()
		if st := unitProps(m, units.TargetName, "ActiveState", "UnitFileState"); st["ActiveState"] != active || st["UnitFileState"] != enabled {
			t.Errorf("%s %s: %v, want %s and %s", units.TargetName, when, st, active, enabled)
		}
	}
	checkTarget("after PauseAllSchedules", "inactive", "disabled")
	if _, err := os.Lstat(targetLink); err == nil {
		t.Errorf("%s is still there after PauseAllSchedules: the target would start at boot", targetLink)
	}
	if _, err := os.Lstat(filepath.Join(unitDir, units.TargetName+".wants", svTimer)); err != nil {
		t.Errorf("PauseAllSchedules disabled %s itself: %v", svTimer, err)
	}
	checkPausedRows := func(when string, wantAll bool) {
		t.Helper()
		rows, all := listSchedulesPaused(t, c)
		sv, pv := scheduleRow(rows, "snapshot", "sv"), scheduleRow(rows, "purge", "pv")
		if all != wantAll || sv == nil || sv.Paused || pv == nil || !pv.Paused {
			t.Errorf("ListSchedules %s: all paused %v, %+v; want all paused %v, sv not paused itself, pv paused", when, all, rows, wantAll)
		}
	}
	checkPausedRows("after PauseAllSchedules", true)
	before := settled(t, m, root, "sv")
	c.Close()
	// The quiet period runs across the reboot: at least 3 intervals since
	// the pause and more than one since the boot.
	m = m.Reboot()
	booted = time.Now()
	checkTarget("after a reboot while all are paused", "inactive", "disabled")
	checkTimer(t, m, svTimer, "inactive", "enabled")
	quietUntil := paused.Add(3 * every)
	if b := booted.Add(every + 2*time.Second); b.After(quietUntil) {
		quietUntil = b
	}
	quiet(t, root, "sv", before, quietUntil, "while all schedules are paused, across a reboot")
	checkTarget("after the quiet period", "inactive", "disabled")

	c = schedClient(t, m)
	checkPausedRows("after the reboot", true)
	if err := c.ResumeAllSchedules(); err != nil {
		t.Fatalf("ResumeAllSchedules: %v", err)
	}
	checkTarget("after ResumeAllSchedules", "active", "enabled")
	checkTimer(t, m, svTimer, "active", "enabled")
	checkTimer(t, m, pvTimer, "inactive", "disabled") // paused on its own: stays paused
	checkPausedRows("after ResumeAllSchedules", false)
	n = len(hostSnapshots(t, root, "sv"))
	schedWait(t, m, 3*every, "a snapshot of sv after ResumeAllSchedules", func() (bool, string) {
		got := hostSnapshots(t, root, "sv")
		return len(got) > n, fmt.Sprint(got)
	})

	// ---- 5. Removing a volume removes its schedules; its snapshots stay.
	svSnaps := hostSnapshots(t, root, "sv")
	startRun(t, m, svService)
	if _, removed, err := c.RemoveVolumeReport("sv", dbusapi.RemoveNoFinalSnapshot); err != nil {
		t.Fatalf("RemoveVolume sv: %v", err)
	} else if !slices.Equal(removed, []string{svTimer}) {
		t.Errorf("RemoveVolume sv says it removed schedules %q, want %q", removed, svTimer)
	}
	checkUnitsGone(t, m, unitDir, svTimer, svService)
	if _, err := c.RemoveVolume("pv", dbusapi.RemoveNoFinalSnapshot); err != nil {
		t.Fatalf("RemoveVolume pv: %v", err)
	}
	checkUnitsGone(t, m, unitDir, pvTimer, pvService)
	if rows := listSchedules(t, c); len(rows) != 0 {
		t.Errorf("ListSchedules after removing the volumes: %+v, want none", rows)
	}
	if got := hostSnapshots(t, root, "sv"); !isSubset(svSnaps, got) {
		t.Errorf("sv's snapshots after removing sv: %v, want those taken before (%v) to stay", got, svSnaps)
	}
	if got := snapshotRowNames(volumeSnapshots(t, c, "pv")); !slices.Equal(got, purgeRowNames(planKeep)) {
		t.Errorf("pv's snapshots after removing pv: %v, want %v to stay", got, purgeRowNames(planKeep))
	}

	// ---- 6. Create options make the volume's schedules (as docker volume
	// create -o snapshot=1h -o purge=1d:4w does); removing it removes them
	// and says which.
	if _, err := c.CreateVolume("ov", map[string]string{"snapshot": "1h", "purge": "1d:4w"}); err != nil {
		t.Fatalf("CreateVolume ov snapshot=1h purge=1d:4w: %v", err)
	}
	ovTimer, ovService := units.Names(units.Schedule{Action: units.ActionSnapshot, Volume: "ov"})
	opTimer, opService := units.Names(units.Schedule{Action: units.ActionPurge, Volume: "ov"})
	timers = m.MustRun("systemctl", "list-timers", "--all", "--no-pager")
	for _, u := range []string{ovTimer, opTimer} {
		if !strings.Contains(timers, u) {
			t.Errorf("after CreateVolume ov with schedule options, systemctl list-timers --all does not show %s:\n%s", u, timers)
		}
	}
	if _, removed, err := c.RemoveVolumeReport("ov", dbusapi.RemoveNoFinalSnapshot); err != nil {
		t.Fatalf("RemoveVolume ov: %v", err)
	} else if want := sortedOf(ovTimer, opTimer); !slices.Equal(sortedOf(removed...), want) {
		t.Errorf("RemoveVolume ov says it removed schedules %q, want %q", removed, want)
	}
	checkUnitsGone(t, m, unitDir, ovTimer, ovService)
	checkUnitsGone(t, m, unitDir, opTimer, opService)
	c.Close()
}

// replicateSchedules sets a replicate and a synchronize schedule of a new
// volume rv (on a calendar that does not fire during the test), checks that
// they are listed and read back, starts the replicate service with
// systemctl start and checks that it ran the replicate job: the job failed
// to reach the host, which the unit's result and 'butterctl jobs' say, and
// the snapshot it took stays. Both schedules are removed at the end.
func replicateSchedules(t *testing.T, c *dbusapi.Client, m *testenv.Machine, unitDir, root string) {
	t.Helper()
	const host = "127.0.0.1:9" // nothing listens there
	const hosts = "127.0.0.1:9,localhost:9"
	if _, err := c.CreateVolume("rv", nil); err != nil {
		t.Fatalf("CreateVolume rv: %v", err)
	}
	if _, err := c.SetSchedule("replicate", "rv", "u@"+host, 0, "yearly"); err == nil || !strings.Contains(err.Error(), "neither a peer") {
		t.Errorf("SetSchedule replicate to u@%s: %v, want it refused as neither a peer nor a host", host, err)
	}
	if _, err := c.SetSchedule("synchronize", "rv", host+","+host, 0, "yearly"); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("SetSchedule synchronize with a host twice: %v, want it refused", err)
	}
	// Set through butterctl inside, as an operator would.
	m.MustRun("butterctl", "schedule", "--on-calendar", "yearly", "replicate:"+host, "rv")
	m.MustRun("butterctl", "schedule", "--on-calendar", "yearly", "synchronize:"+hosts, "rv")
	rTimer, rService := units.Names(units.Schedule{Action: units.ActionReplicate, Volume: "rv", Arg: host})
	sTimer, sService := units.Names(units.Schedule{Action: units.ActionSynchronize, Volume: "rv", Arg: hosts})
	for unit, want := range map[string]string{
		rTimer:   "X-Butterd-Action=replicate\nX-Butterd-Volume=rv\nX-Butterd-Arg=" + host + "\n",
		rService: "ExecStart=/usr/bin/butterctl replicate " + host + " rv\n",
		sTimer:   "X-Butterd-Action=synchronize\nX-Butterd-Volume=rv\nX-Butterd-Arg=" + hosts + "\n",
		sService: "ExecStart=/usr/bin/butterctl sync rv 127.0.0.1:9 localhost:9\n",
	} {
		if data, err := os.ReadFile(filepath.Join(unitDir, unit)); err != nil || !strings.Contains(string(data), want) {
			t.Errorf("%s: %v\n%s\nwant it to contain %q", unit, err, data, want)
		}
	}
	rows := listSchedules(t, c)
	for _, want := range []dbusapi.ScheduleRow{
		{Action: "replicate", Volume: "rv", Arg: host, OnCalendar: "yearly", Unit: rTimer},
		{Action: "synchronize", Volume: "rv", Arg: hosts, OnCalendar: "yearly", Unit: sTimer},
	} {
		r := scheduleRow(rows, want.Action, "rv")
		if r == nil || r.Arg != want.Arg || r.OnCalendar != want.OnCalendar || r.Unit != want.Unit || r.Paused {
			t.Errorf("ListSchedules %s rv = %+v, want %+v", want.Action, r, want)
		}
	}
	if out := m.MustRun("butterctl", "scheduled"); !strings.Contains(out, "replicate:"+host) || !strings.Contains(out, "synchronize:"+hosts) {
		t.Errorf("butterctl scheduled does not list rv's schedules:\n%s", out)
	}

	if out, err := m.Run("systemctl", "start", rService); err == nil {
		t.Errorf("systemctl start %s succeeded, want the replicate to %s to fail:\n%s", rService, host, out)
	}
	if st := unitProps(m, rService, "ActiveState", "Result"); st["ActiveState"] != "failed" || st["Result"] != "exit-code" {
		t.Errorf("%s = %v, want failed with exit-code", rService, st)
	}
	snaps := hostSnapshots(t, root, "rv")
	if len(snaps) != 1 {
		t.Fatalf("rv's snapshots after the replicate run: %v, want the one it took", snaps)
	}
	var line string
	for _, l := range strings.Split(m.MustRun("butterctl", "jobs"), "\n") {
		if strings.Contains(l, " replicate ") {
			line = l
		}
	}
	for _, want := range []string{snaps[0], "failed", `replicate "rv": snapshot "` + snaps[0] + `" taken and kept, but send of "` + snaps[0] + `" to ` + host + ` failed`} {
		if !strings.Contains(line, want) {
			t.Errorf("butterctl jobs: the replicate job's line %q lacks %q", line, want)
		}
	}
	if j := mustRunAny(m, "journalctl", "--no-pager", "-o", "cat", "-u", rService); !strings.Contains(j, host) {
		t.Errorf("the journal of %s does not name the host:\n%s", rService, j)
	}
	for _, sc := range [][2]string{{"replicate", host}, {"synchronize", hosts}} {
		if err := c.RemoveSchedule(sc[0], "rv", sc[1]); err != nil {
			t.Fatalf("RemoveSchedule %s rv: %v", sc[0], err)
		}
	}
	checkUnitsGone(t, m, unitDir, rTimer, rService)
	checkUnitsGone(t, m, unitDir, sTimer, sService)
}

// schedClient connects a butterd client to the container's system bus from
// the host (bus activation starts butterd inside on the first call).
func schedClient(t *testing.T, m *testenv.Machine) *dbusapi.Client {
	t.Helper()
	conn, err := dbus.Connect(m.BusAddress())
	if err != nil {
		t.Fatalf("connect to the system bus of container %s: %v", m.Name, err)
	}
	c := dbusapi.NewClient(conn)
	t.Cleanup(func() { c.Close() })
	return c
}

// startRun starts a schedule's service without waiting, as its timer
// does: the removal that follows finds a run under way (or queued).
func startRun(t *testing.T, m *testenv.Machine, service string) {
	t.Helper()
	if out, err := m.Run("systemctl", "start", "--no-block", service); err != nil {
		t.Fatalf("systemctl start --no-block %s: %v\n%s", service, err, out)
	}
}

// isSubset says whether every name of sub is in of.
func isSubset(sub, of []string) bool {
	for _, n := range sub {
		if !slices.Contains(of, n) {
			return false
		}
	}
	return true
}

// schedWait polls cond (every 100 ms) until it holds, failing the test with
// cond's last description after limit.
func schedWait(t *testing.T, m *testenv.Machine, limit time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v: %s\ntimers:\n%s", what, limit, state, mustRunAny(m, "systemctl", "list-timers", "--all", "--no-pager"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// settled waits until no run of volume's snapshot schedule is under way
// and returns the volume's snapshots on disk.
func settled(t *testing.T, m *testenv.Machine, root, volume string) []string {
	t.Helper()
	_, service := units.Names(units.Schedule{Action: units.ActionSnapshot, Volume: volume})
	schedWait(t, m, 10*time.Second, service+" not running", func() (bool, string) {
		st := unitProps(m, service, "ActiveState")
		return st["ActiveState"] != "activating" && st["ActiveState"] != "active", fmt.Sprint(st)
	})
	return hostSnapshots(t, root, volume)
}

// quiet checks that volume keeps the snapshots before until the time given.
func quiet(t *testing.T, root, volume string, before []string, until time.Time, what string) {
	t.Helper()
	start := time.Now()
	for {
		if got := hostSnapshots(t, root, volume); !slices.Equal(got, before) {
			t.Fatalf("snapshots of %s changed %s: %v, were %v", volume, what, got, before)
		}
		if time.Now().After(until) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("no snapshot of %s for %v %s", volume, time.Since(start).Round(10*time.Millisecond), what)
}

// checkTimer checks a timer's ActiveState and UnitFileState with systemctl
// inside.
func checkTimer(t *testing.T, m *testenv.Machine, timer, active, enabled string) {
	t.Helper()
	gotActive := strings.TrimSpace(mustRunAny(m, "systemctl", "is-active", timer))
	gotEnabled := strings.TrimSpace(mustRunAny(m, "systemctl", "is-enabled", timer))
	if gotActive != active || gotEnabled != enabled {
		t.Errorf("%s: is-active %s, is-enabled %s; want %s and %s", timer, gotActive, gotEnabled, active, enabled)
	}
}

// checkUnitsGone checks that a schedule's units are gone from the unit
// directory (both files and the target's .wants link) and from systemd.
func checkUnitsGone(t *testing.T, m *testenv.Machine, unitDir, timer, service string) {
	t.Helper()
	for _, p := range []string{timer, service, units.TargetName + ".wants/" + timer} {
		if _, err := os.Lstat(filepath.Join(unitDir, p)); err == nil {
			t.Errorf("%s is still in the unit directory after the schedule was removed", p)
		}
	}
	for _, u := range []string{timer, service} {
		if st := unitProps(m, u, "LoadState", "ActiveState"); st["LoadState"] != "not-found" || st["ActiveState"] != "inactive" {
			t.Errorf("systemd still has %s after the schedule was removed: %v", u, st)
		}
	}
	if timers := m.MustRun("systemctl", "list-timers", "--all", "--no-pager"); strings.Contains(timers, timer) {
		t.Errorf("systemctl list-timers still shows %s:\n%s", timer, timers)
	}
	if failed := mustRunAny(m, "systemctl", "list-units", "--failed", "--plain", "--no-legend", "--no-pager"); strings.Contains(failed, units.Prefix) {
		t.Errorf("schedule units left failed (the system degraded) after the schedule was removed:\n%s", failed)
	}
}

// unitProps reads properties of a unit with systemctl show.
func unitProps(m *testenv.Machine, unit string, props ...string) map[string]string {
	out := mustRunAny(m, "systemctl", "show", "-p", strings.Join(props, ","), unit)
	st := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			st[k] = v
		}
	}
	return st
}

// mustRunAny runs a command inside whatever its exit status (is-active,
// is-failed and is-enabled answer with it).
func mustRunAny(m *testenv.Machine, args ...string) string {
	out, _ := m.Run(args...)
	return out
}

// hostSnapshots lists a volume's snapshots as the host sees them on disk.
func hostSnapshots(t *testing.T, root, volume string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(root, "snapshots"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), volume+"@") {
			out = append(out, e.Name())
		}
	}
	return out
}

func volumeSnapshots(t *testing.T, c *dbusapi.Client, volume string) []dbusapi.SnapshotRow {
	t.Helper()
	rows, err := c.ListSnapshots(volume)
	if err != nil {
		t.Fatalf("ListSnapshots %s: %v", volume, err)
	}
	return rows
}

func listSchedules(t *testing.T, c *dbusapi.Client) []dbusapi.ScheduleRow {
	t.Helper()
	rows, _ := listSchedulesPaused(t, c)
	return rows
}

func listSchedulesPaused(t *testing.T, c *dbusapi.Client) ([]dbusapi.ScheduleRow, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var rows []dbusapi.ScheduleRow
	var paused bool
	err := c.Conn().Object(dbusapi.BusName, dbusapi.RootPath).CallWithContext(ctx, dbusapi.ManagerIface+".ListSchedules", 0).Store(&rows, &paused)
	if err != nil {
		t.Fatalf("ListSchedules: %v", err)
	}
	return rows, paused
}

func scheduleRow(rows []dbusapi.ScheduleRow, action, volume string) *dbusapi.ScheduleRow {
	for i := range rows {
		if rows[i].Action == action && rows[i].Volume == volume {
			return &rows[i]
		}
	}
	return nil
}

func purgeRowNames(rows []dbusapi.PurgeRow) []string {
	var out []string
	for _, r := range rows {
		out = append(out, r.Name)
	}
	slices.Sort(out)
	return out
}

func snapshotRowNames(rows []dbusapi.SnapshotRow) []string {
	var out []string
	for _, r := range rows {
		out = append(out, r.Name)
	}
	slices.Sort(out)
	return out
}

func sortedOf(names ...string) []string {
	out := slices.Clone(names)
	slices.Sort(out)
	return out
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	must(t, os.WriteFile(dst, data, 0o644))
}
