package tests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A snapshot exported, removed and imported back through butterctl comes
// back with the same data, read-only, with the original as its received
// UUID; an incremental stream whose parent is missing is refused and leaves
// nothing.
func TestButterctlImport(t *testing.T) {
	ctl, _ := startJobsEnv(t)
	ctl.ok("volume", "create", "v1")
	var info map[string]any
	ctl.okJSON(&info, "volume", "inspect", "v1")
	vol := info["mountpoint"].(string)
	writeFile(t, filepath.Join(vol, "f"), "one")
	snap1 := snapName(t, ctl.ok("snapshot", "v1"), "v1")
	writeFile(t, filepath.Join(vol, "f"), "two")
	snap2 := snapName(t, ctl.ok("snapshot", "v1"), "v1")

	dir := t.TempDir()
	full, incr := filepath.Join(dir, "full"), filepath.Join(dir, "incr")
	ctl.exportOK(snap1, full)
	ctl.exportOK("--parent", snap1, snap2, incr)

	ctl.ok("rm", snap2)
	ctl.ok("rm", snap1)
	// The parent is gone: the incremental stream is refused.
	r := ctl.run("import", incr)
	if r.code != 1 || !strings.Contains(r.stderr, "parent") {
		t.Fatalf("import of an incremental stream without its parent: exit %d, stderr %q", r.code, r.stderr)
	}
	if got := ctlLines(ctl.ok("snapshots", "v1")); len(got) != 0 {
		t.Fatalf("a refused import left snapshots %v", got)
	}
	root := filepath.Dir(filepath.Dir(vol))
	if left, _ := os.ReadDir(filepath.Join(root, "received")); len(left) != 0 {
		t.Fatalf("received/ holds %v after a refused import", left)
	}

	for _, imp := range []struct{ stream, want string }{{full, snap1}, {incr, snap2}} { // the parent first
		if r := ctl.run("import", imp.stream); r.code != 0 || r.stdout != imp.want+"\n" || !jobStarted.MatchString(r.stderr) {
			t.Fatalf("import %s: exit %d, stdout %q, stderr %q; want %s", imp.stream, r.code, r.stdout, r.stderr, imp.want)
		}
	}
	for name, want := range map[string]string{snap1: "one", snap2: "two"} {
		if got := readFile(t, filepath.Join(root, "snapshots", name, "f")); got != want {
			t.Errorf("%s holds %q, want %q", name, got, want)
		}
	}
	if f, err := os.OpenFile(filepath.Join(root, "snapshots", snap2, "x"), os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
		f.Close()
		t.Errorf("imported snapshot %s is writable", snap2)
	}
}
