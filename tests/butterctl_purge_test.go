package tests

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"butterd/btrfs"
	"butterd/service"
	"butterd/tests/testenv"
)

// butterctl's purge, pin and unpin, and its schedule verbs, against the
// real butterd on a private bus.

// startButterdWithSnapshots makes volume "db" with snapshots named at the
// given ages before now (hand-made, as received or copied snapshots are:
// their time is the one in their name), then starts butterd on that data
// root with a private bus and no systemd, writing schedule units (if ever)
// into unitDir.
// The names come back in the order of ages.
func startButterdWithSnapshots(t *testing.T, now time.Time, unitDir string, ages ...time.Duration) (*ctlEnv, []string) {
	t.Helper()
	testenv.Root(t)
	buildButterctl(t)
	root := filepath.Join(testenv.Btrfs(t), "root")
	s := openStoreAt(t, root, service.Config{})
	v, _, err := s.CreateVolume("db", service.CreateOptions{})
	must(t, err)
	var names []string
	for _, age := range ages {
		name := service.SnapshotName("db", now.Add(-age))
		must(t, btrfs.Snapshot(v.Path, filepath.Join(root, "snapshots", name), true))
		names = append(names, name)
	}
	must(t, s.Close())
	bus := testenv.StartBus(t)
	sock := filepath.Join(t.TempDir(), "btrfs.sock")
	// No systemd, even where the machine has one: schedules are
	// unavailable.
	testenv.StartButterdWith(t, root, sock, testenv.ButterdOptions{Bus: bus, Args: []string{"--unit-dir", unitDir, "--systemd-bus", "none"}})
	return newCtl(t, bus), names
}

// planLines reads a dry run's lines into "delete NAME" / "keep NAME" and
// checks that each gives a reason.
func planLines(t *testing.T, out string) []string {
	t.Helper()
	var got []string
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if line == "" {
			continue
		}
		head, reason, ok := strings.Cut(line, "  (")
		if !ok || !strings.HasSuffix(reason, ")") || len(reason) < 2 {
			t.Errorf("dry-run line %q is not VERDICT NAME  (REASON)", line)
		}
		got = append(got, head)
	}
	return got
}

func TestButterctlPurge(t *testing.T) {
	now := time.Now()
	h := time.Hour
	ctl, names := startButterdWithSnapshots(t, now, t.TempDir(), 30*time.Minute, 2*h, 3*h, 50*h, 51*h)

	// 1h:1d: keep under 1h, the oldest per hour between 1h and 1d, delete
	// from 1d on. Oldest first.
	want := []string{"delete " + names[4], "delete " + names[3], "keep " + names[2], "keep " + names[1], "keep " + names[0]}
	for _, flag := range []string{"--dry-run", "--dryrun"} {
		if got := planLines(t, ctl.ok("purge", flag, "1h:1d", "db")); !slices.Equal(got, want) {
			t.Errorf("purge %s 1h:1d db:\n%q\nwant\n%q", flag, got, want)
		}
	}
	var plan struct {
		Volume, Pattern, At string
		Delete, Keep        []struct{ Name, Time, Reason string }
	}
	ctl.okJSON(&plan, "purge", "--dry-run", "1h:1d", "db")
	if plan.Volume != "db" || len(plan.Delete) != 2 || plan.Delete[0].Name != names[4] || plan.Delete[1].Name != names[3] ||
		len(plan.Keep) != 3 || plan.Delete[0].Reason == "" || plan.At == "" {
		t.Errorf("purge --dry-run --json: %+v", plan)
	}
	if got := ctlLines(ctl.ok("snapshots", "db")); len(got) != 5 {
		t.Fatalf("a dry run deleted snapshots: %q left", got)
	}

	// --at a day later: all but the newest go (RFC 3339 and local time).
	wantLater := []string{"delete " + names[4], "delete " + names[3], "delete " + names[2], "delete " + names[1], "keep " + names[0]}
	for _, at := range []string{now.Add(24 * h).UTC().Format(time.RFC3339), now.Add(24 * h).Format("2006-01-02T15:04:05")} {
		if got := planLines(t, ctl.ok("purge", "--dry-run", "--at", at, "1h:1d", "db")); !slices.Equal(got, wantLater) {
			t.Errorf("purge --dry-run --at %s:\n%q\nwant\n%q", at, got, wantLater)
		}
	}
	ctl.fails(2, "--at is only for a dry run", "purge", "--at", now.Format(time.RFC3339), "1h:1d", "db")
	ctl.fails(2, `--at "tomorrow"`, "purge", "--dry-run", "--at", "tomorrow", "1h:1d", "db")

	// A pattern butterd refuses: exit 1, with the parser's message.
	ctl.fails(2, `purge pattern "1x": item "1x": use a positive number with a unit m, h, d, w or y`, "purge", "1x", "db")
	ctl.fails(2, `purge pattern "1d:1h": items must be strictly increasing`, "purge", "--dry-run", "1d:1h", "db")

	// A pinned snapshot is kept, and the dry run says why.
	if out := ctl.ok("pin", names[3]); out != "" {
		t.Errorf("pin printed %q", out)
	}
	out := ctl.ok("purge", "--dry-run", "1h:1d", "db")
	if !strings.Contains(out, "keep "+names[3]+"  (pinned") || !strings.Contains(out, "delete "+names[4]+"  (") {
		t.Errorf("dry run with %s pinned:\n%s", names[3], out)
	}
	ctl.fails(3, "", "pin", "db@2001-01-01T00:00:00.000000")
	ctl.fails(2, "not a snapshot name", "pin", "db")

	// The purge itself prints nothing, as buttervolume did.
	if out := ctl.ok("purge", "1h:1d", "db"); out != "" {
		t.Errorf("purge printed %q", out)
	}
	left := ctlLines(ctl.ok("snapshots", "db"))
	if wantLeft := []string{names[3], names[2], names[1], names[0]}; !slices.Equal(left, wantLeft) {
		t.Fatalf("after purge: %q, want %q (the pinned one kept)", left, wantLeft)
	}

	// Unpinned, it goes; -v names it (and the job on stderr).
	if out := ctl.ok("unpin", names[3]); out != "" {
		t.Errorf("unpin printed %q", out)
	}
	r := ctl.run("purge", "-v", "1h:1d", "db")
	if r.code != 0 || r.stdout != names[3]+"\n" || !strings.HasPrefix(r.stderr, "job ") || !strings.HasSuffix(r.stderr, " started\n") {
		t.Errorf("purge -v: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	// A second purge deletes nothing.
	var res struct {
		JobID   uint32 `json:"job_id"`
		Result  string
		Deleted []string
	}
	ctl.okJSON(&res, "purge", "1h:1d", "db")
	if res.JobID == 0 || res.Result != "done" || len(res.Deleted) != 0 {
		t.Errorf("second purge --json: %+v", res)
	}
	// The jobs are in the history.
	if out := ctl.ok("jobs"); strings.Count(out, "purge") < 3 {
		t.Errorf("jobs lacks the purges:\n%s", out)
	}
	// Purging needs the right to change.
	ctl.nobody().fails(4, "", "purge", "1h:1d", "db")
}

// Without systemd, every schedule verb fails with butterd's reason (exit 1)
// and creates nothing; the command line is still checked first (exit 2).
func TestButterctlSchedulesNeedSystemd(t *testing.T) {
	unitDir := filepath.Join(t.TempDir(), "units")
	ctl, _ := startButterdWithSnapshots(t, time.Now(), unitDir)
	const reason = "no systemd reachable: schedules need systemd"
	for _, args := range [][]string{
		{"schedule", "snapshot", "60", "db"},
		{"schedule", "purge:1h:1d", "90s", "db"},
		{"schedule", "--every", "2h", "snapshot", "db"},
		{"schedule", "--on-calendar", "Mon *-*-* 03:00", "purge:1d:4w", "db"},
		{"schedule", "snapshot", "0", "db"},
		{"schedule", "snapshot", "delete", "db"},
		{"schedule", "purge", "pause", "db"},
		{"schedule", "snapshot", "resume", "db"},
		{"scheduled"},
		{"scheduled", "list"},
		{"scheduled", "pause"},
		{"scheduled", "resume"},
	} {
		ctl.fails(1, reason, args...)
	}
	ctl.fails(2, `ACTION "snap": use snapshot`, "schedule", "snap", "60", "db")
	ctl.fails(2, `TIMER "hourly"`, "schedule", "snapshot", "hourly", "db")

	// import reports each row and goes on.
	csv := filepath.Join(t.TempDir(), "schedule.csv")
	must(t, os.WriteFile(csv, []byte("db,snapshot,60,True\ndb,purge:2h:1d,60,False\n"), 0o644))
	r := ctl.run("schedule", "import", csv)
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if r.code != 1 || len(lines) != 2 || r.stderr != "butterctl: schedule import: 2 of 2 rows failed\n" ||
		!strings.HasPrefix(lines[0], "line 1: error: db snapshot 60: "+reason) ||
		!strings.HasPrefix(lines[1], "line 2: error: db purge:2h:1d 60: "+reason) {
		t.Errorf("schedule import: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}

	// Nothing was written.
	if entries, err := os.ReadDir(unitDir); err == nil && len(entries) > 0 {
		t.Errorf("units written without systemd: %v", entries)
	}
}
