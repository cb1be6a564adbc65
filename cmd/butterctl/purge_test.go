package main

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"butterd/dbusapi"
)

const (
	snapOld  = "v1@2026-11-20T10:00:00.000000"
	snapMid  = "v1@2026-11-21T10:00:00.000000"
	snapNew  = "v1@2026-11-22T10:00:00.000000"
	usecOld  = uint64(1795165200000000) // 2026-11-20T09:00:00Z
	usecMid  = usecOld + 86400e6
	usecNew  = usecMid + 86400e6
	snapBad  = "v1@not-a-time"
	snapPinX = "v1@2026-11-19T10:00:00.000000"
)

// usageCase checks that args is a usage error: exit 2, one line on stderr
// holding want, nothing on stdout, and the bus never dialed.
func usageCase(t *testing.T, want string, args ...string) {
	t.Helper()
	f := &fake{}
	r := runWith(t, f, args...)
	if r.code != exitUsage {
		t.Errorf("%q: exit %d, want %d", args, r.code, exitUsage)
	}
	if !strings.HasPrefix(r.stderr, "butterctl: ") || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, want) {
		t.Errorf("%q: stderr %q, want one line butterctl: ...%s...", args, r.stderr, want)
	}
	if r.dialed || len(f.calls) > 0 || r.stdout != "" {
		t.Errorf("%q: usage error reached the bus (%q) or printed %q", args, f.calls, r.stdout)
	}
}

func planFake() *fake {
	return &fake{
		purgeDel: []dbusapi.PurgeRow{
			{Name: snapMid, Time: usecMid, Reason: "older than 1d"},
			{Name: snapOld, Time: usecOld, Reason: "older than 1d"},
		},
		purgeKeep: []dbusapi.PurgeRow{
			{Name: snapBad, Time: 0, Reason: "name does not parse"},
			{Name: snapNew, Time: usecNew, Reason: "newest snapshot (the pattern alone: older than 1d)"},
			{Name: snapPinX, Time: usecOld - 86400e6, Reason: "pinned"},
		},
	}
}

// A dry run prints delete and keep lines, oldest first, names that do not
// parse last.
func TestPurgeDryRun(t *testing.T) {
	for _, flag := range []string{"--dry-run", "--dryrun", "-dry-run"} {
		f := planFake()
		r := runWith(t, f, "purge", flag, "1h:1d", "v1")
		want := "keep " + snapPinX + "  (pinned)\n" +
			"delete " + snapOld + "  (older than 1d)\n" +
			"delete " + snapMid + "  (older than 1d)\n" +
			"keep " + snapNew + "  (newest snapshot (the pattern alone: older than 1d))\n" +
			"keep " + snapBad + "  (name does not parse)\n"
		if r.code != 0 || r.stderr != "" || r.stdout != want {
			t.Errorf("%s: exit %d, stderr %q, stdout\n%s\nwant\n%s", flag, r.code, r.stderr, r.stdout, want)
		}
		if !slices.Equal(f.calls, []string{`Purge("v1", "1h:1d", true, true)`}) {
			t.Errorf("%s: calls %q", flag, f.calls)
		}
		// Without --at, the plan is for now.
		if time.Since(f.purgeAt).Abs() > time.Minute {
			t.Errorf("%s: evaluated at %v, want now", flag, f.purgeAt)
		}
	}
	// Flags after the arguments.
	f := planFake()
	if r := runWith(t, f, "purge", "1h:1d", "v1", "--dry-run"); r.code != 0 || !strings.HasPrefix(r.stdout, "keep ") {
		t.Errorf("flag last: exit %d, stdout %q", r.code, r.stdout)
	}
	// The pattern's warnings go to stderr, the plan to stdout.
	f = planFake()
	f.purgeWarn = []string{`purge pattern "1d:1d": read as "1d"`}
	if r := runWith(t, f, "purge", "--dry-run", "1d:1d", "v1"); r.code != 0 || r.stderr != "butterctl: warning: purge pattern \"1d:1d\": read as \"1d\"\n" || !strings.HasPrefix(r.stdout, "keep ") {
		t.Errorf("warning: exit %d, stderr %q, stdout %q", r.code, r.stderr, r.stdout)
	}
	// An empty plan prints nothing.
	if r := runWith(t, &fake{}, "purge", "--dry-run", "1d", "v1"); r.code != 0 || r.stdout != "" {
		t.Errorf("empty plan: exit %d, stdout %q", r.code, r.stdout)
	}
}

func TestPurgeDryRunJSON(t *testing.T) {
	inZone(t)
	f := planFake()
	r := runWith(t, f, "--json", "purge", "--dry-run", "--at", "2026-11-23T12:00:00Z", "1h:1d", "v1")
	var got struct {
		Volume, Pattern, At string
		Delete, Keep        []struct{ Name, Time, Reason string }
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &got) != nil {
		t.Fatalf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if got.Volume != "v1" || got.Pattern != "1h:1d" || got.At != "2026-11-23T13:00:00.000000+01:00" {
		t.Errorf("header: %+v", got)
	}
	if len(got.Delete) != 2 || got.Delete[0].Name != snapOld || got.Delete[0].Time != "2026-11-20T10:00:00.000000+01:00" ||
		got.Delete[1].Name != snapMid || !strings.HasPrefix(got.Delete[0].Reason, "older than") {
		t.Errorf("delete: %+v", got.Delete)
	}
	if len(got.Keep) != 3 || got.Keep[0].Name != snapPinX || got.Keep[2].Name != snapBad || got.Keep[2].Time != "" {
		t.Errorf("keep: %+v", got.Keep)
	}
	// Empty lists are [], not null.
	r = runWith(t, &fake{}, "--json", "purge", "--dry-run", "1d", "v1")
	if !strings.Contains(r.stdout, `"delete": []`) || !strings.Contains(r.stdout, `"keep": []`) {
		t.Errorf("empty plan JSON: %s", r.stdout)
	}
}

func TestPurgeAt(t *testing.T) {
	inZone(t)
	for in, want := range map[string]string{
		"2026-11-23T12:00:00Z":        "2026-11-23T12:00:00Z",
		"2026-11-23T12:00:00.5+02:00": "2026-11-23T10:00:00.5Z",
		"2026-11-23":                  "2026-11-22T23:00:00Z",
		"2026-11-23T12:30":            "2026-11-23T11:30:00Z",
		"2026-11-23T12:30:15":         "2026-11-23T11:30:15Z",
		"2026-11-23 12:30:15":         "2026-11-23T11:30:15Z",
		"2026-11-23T12:30:15.947340":  "2026-11-23T11:30:15.94734Z",
	} {
		f := &fake{}
		r := runWith(t, f, "purge", "--dry-run", "--at", in, "1d", "v1")
		if r.code != 0 {
			t.Errorf("--at %s: exit %d, stderr %q", in, r.code, r.stderr)
			continue
		}
		if got := f.purgeAt.UTC().Format(time.RFC3339Nano); got != want {
			t.Errorf("--at %s: evaluated at %s, want %s", in, got, want)
		}
	}
}

func TestPurgeUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		want string
		args []string
	}{
		{"purge: missing PATTERN VOL (usage: butterctl purge [--at TIME] [--dry-run] [-v] PATTERN VOL)", []string{"purge"}},
		{"purge: missing VOL", []string{"purge", "1d"}},
		{`purge: unexpected argument "v2"`, []string{"purge", "1d", "v1", "v2"}},
		{"purge: PATTERN is empty", []string{"purge", "", "v1"}},
		{"--at is only for a dry run (a purge deletes by the present time): add --dry-run", []string{"purge", "--at", "2026-11-23", "1d", "v1"}},
		{`--at "yesterday": use RFC 3339 (2026-11-22T20:57:08+01:00) or local time YYYY-MM-DD[THH:MM[:SS]]`, []string{"purge", "--dry-run", "--at", "yesterday", "1d", "v1"}},
		{`--at "2026-13-01"`, []string{"purge", "--dry-run", "--at", "2026-13-01", "1d", "v1"}},
		{"purge: flag needs an argument: -at", []string{"purge", "--dry-run", "1d", "v1", "--at"}},
		{"purge: unknown flag -dry", []string{"purge", "--dry", "1d", "v1"}},
		{"pin: missing SNAP", []string{"pin"}},
		{`pin: "v1" is not a snapshot name (VOL@TIMESTAMP): 'butterctl snapshots v1' lists its snapshots`, []string{"pin", "v1"}},
		{`unpin: unexpected argument "x2"`, []string{"unpin", snapOld, "x2"}},
	} {
		usageCase(t, tc.want, tc.args...)
	}
}

// A real purge waits for its job and, as buttervolume, prints nothing.
func TestPurgeRuns(t *testing.T) {
	done := dbusapi.JobInfo{ID: 9, Kind: "purge", Target: "v1", State: "done", Result: "done", Progress: 1}
	f := &fake{purgeID: 9, ended: done}
	r := runWith(t, f, "purge", "1h:1d", "v1")
	if r.code != 0 || r.stdout != "" || r.stderr != "" {
		t.Errorf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if want := []string{`Purge("v1", "1h:1d", false, false)`, "WaitJob(9)"}; !slices.Equal(f.calls, want) {
		t.Errorf("calls %q, want %q", f.calls, want)
	}

	// -v: the job id on stderr, the names deleted on stdout.
	before := []dbusapi.SnapshotRow{{Name: snapOld}, {Name: snapMid}, {Name: snapNew}}
	f = &fake{purgeID: 9, ended: done, snapshots: before, afterPurge: []dbusapi.SnapshotRow{{Name: snapNew}}}
	r = runWith(t, f, "purge", "-v", "1h:1d", "v1")
	if r.code != 0 || r.stdout != snapOld+"\n"+snapMid+"\n" || r.stderr != "job 9 started\n" {
		t.Errorf("-v: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if want := []string{`ListSnapshots("v1")`, `Purge("v1", "1h:1d", false, false)`, "WaitJob(9)", `ListSnapshots("v1")`}; !slices.Equal(f.calls, want) {
		t.Errorf("-v: calls %q, want %q", f.calls, want)
	}

	f = &fake{purgeID: 9, ended: done, snapshots: before, afterPurge: []dbusapi.SnapshotRow{{Name: snapNew}}}
	r = runWith(t, f, "--json", "purge", "1h:1d", "v1")
	var got struct {
		JobID   uint32 `json:"job_id"`
		JobPath string `json:"job_path"`
		Result  string
		Volume  string
		Pattern string
		Deleted []string
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &got) != nil || got.JobID != 9 || got.JobPath != "/io/butterd/volumes1/job/9" ||
		got.Result != "done" || got.Volume != "v1" || got.Pattern != "1h:1d" || !slices.Equal(got.Deleted, []string{snapOld, snapMid}) {
		t.Errorf("--json: exit %d, stdout %s, stderr %q", r.code, r.stdout, r.stderr)
	}
	f = &fake{purgeID: 9, ended: done}
	if r = runWith(t, f, "--json", "purge", "1d", "v1"); !strings.Contains(r.stdout, `"deleted": []`) {
		t.Errorf("--json, nothing deleted: %s", r.stdout)
	}
}

func TestPurgeFails(t *testing.T) {
	// The job fails: exit 1 with its error.
	f := &fake{purgeID: 9, ended: dbusapi.JobInfo{ID: 9, State: "failed", Result: "failed", Error: "purge of \"v1\" stopped after 1 of 2 snapshots: boom"}}
	r := runWith(t, f, "purge", "1d", "v1")
	if r.code != exitFailed || r.stdout != "" || r.stderr != "butterctl: purge job 9 failed: purge of \"v1\" stopped after 1 of 2 snapshots: boom\n" {
		t.Errorf("failed job: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	f = &fake{purgeID: 9, ended: dbusapi.JobInfo{ID: 9, State: "canceled", Result: "canceled", Error: "canceled"}}
	if r = runWith(t, f, "purge", "1d", "v1"); r.code != exitCanceled {
		t.Errorf("canceled job: exit %d, stderr %q", r.code, r.stderr)
	}
	// A pattern butterd refuses is bad input: exit 2 with the parser's
	// message, for a dry run and a purge alike.
	msg := `purge pattern "1x": item "1x": use a positive number with a unit m, h, d, w or y (a bare number means minutes)`
	for _, args := range [][]string{{"purge", "1x", "v1"}, {"purge", "--dry-run", "1x", "v1"}} {
		r = runWith(t, &fake{err: dbusErr(dbusapi.ErrInvalidArgument, msg)}, args...)
		if r.code != exitUsage || r.stderr != "butterctl: "+msg+"\n" || r.stdout != "" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q", args, r.code, r.stdout, r.stderr)
		}
	}
}

func TestPin(t *testing.T) {
	f := &fake{}
	if r := runWith(t, f, "pin", snapOld); r.code != 0 || r.stdout != "" || r.stderr != "" {
		t.Errorf("pin: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if r := runWith(t, f, "unpin", snapOld); r.code != 0 || r.stdout != "" {
		t.Errorf("unpin: exit %d, stdout %q", r.code, r.stdout)
	}
	if want := []string{`PinSnapshot("` + snapOld + `")`, `UnpinSnapshot("` + snapOld + `")`}; !slices.Equal(f.calls, want) {
		t.Errorf("calls %q, want %q", f.calls, want)
	}
	r := runWith(t, &fake{}, "--json", "pin", snapOld)
	if r.stdout != "{\n  \"name\": \""+snapOld+"\",\n  \"pinned\": true\n}\n" {
		t.Errorf("pin --json: %q", r.stdout)
	}
	r = runWith(t, &fake{err: dbusErr(dbusapi.ErrNoSuchSnapshot, `no such snapshot "`+snapOld+`"`)}, "pin", snapOld)
	if r.code != exitNotFound {
		t.Errorf("pin of a missing snapshot: exit %d, stderr %q", r.code, r.stderr)
	}
}
