package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"butterd/dbusapi"
)

// import FILE: opens FILE itself, passes the descriptor, waits, and prints
// the snapshot the stream held.
func TestImport(t *testing.T) {
	file := filepath.Join(t.TempDir(), "s.stream")
	if err := os.WriteFile(file, []byte("STREAM"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := &fake{exportID: 9, ended: dbusapi.JobInfo{ID: 9, Kind: "import", Target: snapA, State: "done", Result: "done", BytesDone: 6}}
	r := runWith(t, f, "import", file)
	if r.code != 0 || r.stdout != snapA+"\n" || !strings.HasPrefix(r.stderr, "job 9 started\n") {
		t.Fatalf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if f.imported != "STREAM" {
		t.Errorf("butterd read %q from the descriptor", f.imported)
	}
	if got, want := f.callList(), []string{"ImportSnapshot()", "WaitJob(9)"}; !slices.Equal(got, want) {
		t.Errorf("calls %q, want %q", got, want)
	}

	// A failed job exits 1 with its error; a missing FILE never reaches butterd.
	f = &fake{exportID: 9, ended: dbusapi.JobInfo{ID: 9, Kind: "import", State: "failed", Result: "failed", Error: "parent missing"}}
	if r := runWith(t, f, "import", file); r.code != 1 || !strings.Contains(r.stderr, "parent missing") {
		t.Errorf("failed job: exit %d, stderr %q", r.code, r.stderr)
	}
	f = &fake{}
	if r := runWith(t, f, "import", filepath.Join(t.TempDir(), "nope")); r.code == 0 || len(f.callList()) != 0 {
		t.Errorf("missing file: exit %d, calls %q", r.code, f.callList())
	}
	if r := runWith(t, &fake{}, "import"); r.code != 2 {
		t.Errorf("no FILE: exit %d", r.code)
	}
}
