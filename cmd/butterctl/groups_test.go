package main

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"butterd/dbusapi"
)

func TestGroupSnapshotVerb(t *testing.T) {
	f := &fake{exportID: 7, ended: dbusapi.JobInfo{ID: 7, Result: "done",
		Snapshots:  []string{"v1@2026-11-22T20:57:08.947340", "v2@2026-11-22T20:57:08.947340"},
		Containers: []dbusapi.ContainerRow{{Name: "db", Action: "pause", Held: 2500, Note: "pre: exit code 0"}, {Name: "old", Action: "left as it was", Note: "exited: left as it was"}},
	}}
	r := runWith(t, f, "snapshot", "--group", "app", "v1", "v2")
	if r.code != 0 || r.stdout != "v1@2026-11-22T20:57:08.947340\nv2@2026-11-22T20:57:08.947340\n" {
		t.Errorf("exit %d, stdout %q", r.code, r.stdout)
	}
	if want := "container db: paused for 2.5ms (pre: exit code 0)\ncontainer old: exited: left as it was\n"; r.stderr != want {
		t.Errorf("stderr %q, want %q", r.stderr, want)
	}
	if calls := f.callList(); !slices.Equal(calls, []string{`CreateGroupSnapshot("app", "", ["v1" "v2"])`, "WaitJob(7)"}) {
		t.Errorf("calls %q", calls)
	}

	f = &fake{exportID: 8, ended: dbusapi.JobInfo{ID: 8, Result: "done", Snapshots: []string{"a1@x"}}}
	r = runWith(t, f, "--json", "snapshot", "--project", "shop")
	var out map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || out["project"] != "shop" || out["job_id"] != float64(8) {
		t.Errorf("--json: %q %v", r.stdout, err)
	}

	// A failed job: its report, then its error.
	f = &fake{exportID: 9, ended: dbusapi.JobInfo{ID: 9, Result: "failed", Error: `pre command of container "db" failed (exit code 3)`,
		Containers: []dbusapi.ContainerRow{{Name: "db", Action: "pause", Note: "pre: exit code 3: snapshot aborted"}}}}
	r = runWith(t, f, "snapshot", "--group", "app")
	if r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, "container db: paused for 0s (pre: exit code 3: snapshot aborted)") ||
		!strings.Contains(r.stderr, `pre command of container "db" failed (exit code 3)`) {
		t.Errorf("failed job: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}

	for _, args := range [][]string{
		{"snapshot", "--project", "shop", "v1"},
		{"snapshot", "--group", "g1", "--project", "shop"},
		{"restore", "--group", "g1", "a", "b"},
	} {
		if r := runWith(t, &fake{}, args...); r.code != 2 || r.dialed {
			t.Errorf("%q: exit %d (dialed %v), stderr %q: want a usage error", args, r.code, r.dialed, r.stderr)
		}
	}
}

func TestGroupRestoreAndList(t *testing.T) {
	f := &fake{}
	if r := runWith(t, f, "restore", "--force", "--group", "app", "2026-11-22T20:57:08.947340"); r.code != 0 {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
	if r := runWith(t, f, "groups", "rm", "app"); r.code != 0 {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
	if r := runWith(t, f, "schedule", "snapshot-group", "60", "app"); r.code != 0 {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
	want := []string{`RestoreGroup("app", "", "2026-11-22T20:57:08.947340", 1)`, `RemoveGroup("app")`, `SetSchedule("snapshot-group", "app", "", 1h0m0s, "")`}
	if calls := f.callList(); !slices.Equal(calls, want) {
		t.Errorf("calls %q, want %q", calls, want)
	}
}
