package main

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"butterd/dbusapi"
)

// sync VOL HOST...: starts the job with the hosts in order, waits, prints
// the job's summary; --force sets the flag; a failed job exits 1 with its
// error and still shows the summary.
func TestSync(t *testing.T) {
	summary := "safety snapshot v1@2026-01-02T03:04:05.000006\nhosta: 2 created, 1 updated"
	f := &fake{exportID: 4, ended: dbusapi.JobInfo{ID: 4, Kind: "sync", Target: "v1", State: "done", Result: "done", FilesDone: 12, Summary: summary}}
	r := runWith(t, f, "sync", "v1", "hosta", "hostb")
	if r.code != 0 || r.stdout != summary+"\n" || !strings.HasPrefix(r.stderr, "job 4 started\n") || !strings.Contains(r.stderr, "12 files") {
		t.Fatalf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if got, want := f.callList(), []string{`SyncVolume("v1", ["hosta" "hostb"], false)`, "WaitJob(4)"}; !slices.Equal(got, want) {
		t.Errorf("calls %q, want %q", got, want)
	}

	f = &fake{exportID: 4, ended: dbusapi.JobInfo{ID: 4, State: "done", Result: "done", Summary: summary}}
	r = runWith(t, f, "--json", "sync", "--force", "v1", "hosta")
	var out map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || r.code != 0 {
		t.Fatalf("--json: exit %d, %v, stdout %q", r.code, err, r.stdout)
	}
	if out["summary"] != summary || out["result"] != "done" || out["job_id"] != 4.0 || f.callList()[0] != `SyncVolume("v1", ["hosta"], true)` {
		t.Errorf("--json printed %v after calls %q", out, f.callList())
	}

	f = &fake{exportID: 4, ended: dbusapi.JobInfo{ID: 4, State: "failed", Result: "failed", Error: "hostb: connection refused", Summary: summary}}
	r = runWith(t, f, "sync", "v1", "hosta", "hostb")
	if r.code != 1 || !strings.Contains(r.stderr, "hostb: connection refused") || !strings.Contains(r.stdout, "hosta: 2 created") {
		t.Errorf("failed job: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}

	// Usage errors never reach butterd.
	for _, args := range [][]string{{"sync"}, {"sync", "v1"}, {"sync", "v1", "hosta", ""}} {
		f = &fake{}
		if r := runWith(t, f, args...); r.code != 2 || len(f.callList()) != 0 {
			t.Errorf("%q: exit %d, calls %q", args, r.code, f.callList())
		}
	}
	// A refusal by butterd (a mounted volume) exits 1 with its message.
	f = &fake{err: dbusErr("io.butterd.volumes1.Error.Busy", `volume "v1" is in use (1 mount): stop the containers using it, or force the sync`)}
	if r := runWith(t, f, "sync", "v1", "hosta"); r.code != 1 || !strings.Contains(r.stderr, "force the sync") {
		t.Errorf("refused: exit %d, stderr %q", r.code, r.stderr)
	}
}
