package tests

import (
	"bytes"
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
	vol := ctl.newVolume("v1")
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

// export --compress -o FILE writes a zstd stream, smaller than the plain
// one, that import takes as it is, full or incremental, next to plain
// streams; a corrupt compressed stream is refused with an error that says
// so and leaves nothing behind.
func TestButterctlImportCompressed(t *testing.T) {
	ctl, _ := startJobsEnv(t)
	vol := ctl.newVolume("v1")
	root := filepath.Dir(filepath.Dir(vol))
	text := strings.Repeat("a compressible line of text, again and again\n", 40000)
	writeFile(t, filepath.Join(vol, "f"), "one\n"+text)
	snap1 := snapName(t, ctl.ok("snapshot", "v1"), "v1")
	writeFile(t, filepath.Join(vol, "f"), "two\n"+text)
	writeFile(t, filepath.Join(vol, "g"), text)
	snap2 := snapName(t, ctl.ok("snapshot", "v1"), "v1")

	dir := t.TempDir()
	plain, full, incr := filepath.Join(dir, "full"), filepath.Join(dir, "full.zst"), filepath.Join(dir, "incr.zst")
	ctl.exportOK(snap1, plain)
	ctl.exportOK("--compress", snap1, "-o", full)
	ctl.exportOK("--compress", "--parent", snap1, snap2, "-o", incr)
	fullData, err := os.ReadFile(full)
	must(t, err)
	plainData, err := os.ReadFile(plain)
	must(t, err)
	if !bytes.HasPrefix(fullData, []byte{0x28, 0xb5, 0x2f, 0xfd}) || !bytes.HasPrefix(plainData, []byte("btrfs-stream\x00")) {
		t.Fatalf("export --compress wrote % x..., plain export % x...: want the zstd magic, then the btrfs stream magic", fullData[:8], plainData[:8])
	}
	if len(fullData)*4 > len(plainData) {
		t.Errorf("compressed stream %d bytes, plain %d: want at least 4 times smaller for this text", len(fullData), len(plainData))
	}

	ctl.ok("rm", snap2)
	ctl.ok("rm", snap1)
	// Corrupt: a bad frame header, a byte flipped in the middle, and the
	// stream cut short.
	badHeader := append([]byte(nil), fullData...)
	badHeader[4] |= 0x08 // the frame header's reserved bit
	flipped := append([]byte(nil), fullData...)
	for i := len(flipped) / 3; i < len(flipped)/3+16; i++ {
		flipped[i] ^= 0x5a
	}
	for name, data := range map[string][]byte{"header": badHeader, "flipped": flipped, "truncated": fullData[:len(fullData)/2]} {
		file := filepath.Join(dir, "bad-"+name)
		must(t, os.WriteFile(file, data, 0o644))
		r := ctl.run("import", file)
		if r.code != 1 || !strings.Contains(r.stderr, "import job") || r.stdout != "" {
			t.Errorf("import of a %s compressed stream: exit %d, stdout %q, stderr %q; want it refused", name, r.code, r.stdout, r.stderr)
		}
		if name != "truncated" && !strings.Contains(r.stderr, "the zstd-compressed stream is corrupt") {
			t.Errorf("import of a %s compressed stream: stderr %q does not say the compressed stream is corrupt", name, r.stderr)
		}
		if got := ctlLines(ctl.ok("snapshots", "v1")); len(got) != 0 {
			t.Fatalf("a refused %s import left snapshots %v", name, got)
		}
		if left, _ := os.ReadDir(filepath.Join(root, "received")); len(left) != 0 {
			t.Fatalf("received/ holds %v after a refused %s import", left, name)
		}
	}

	for _, imp := range []struct{ stream, want string }{{full, snap1}, {incr, snap2}} {
		if r := ctl.run("import", imp.stream); r.code != 0 || r.stdout != imp.want+"\n" {
			t.Fatalf("import %s: exit %d, stdout %q, stderr %q; want %s", imp.stream, r.code, r.stdout, r.stderr, imp.want)
		}
	}
	for file, want := range map[string]string{snap1 + "/f": "one\n" + text, snap2 + "/f": "two\n" + text, snap2 + "/g": text} {
		if got := readFile(t, filepath.Join(root, "snapshots", file)); got != want {
			t.Errorf("%s holds %d bytes starting %.10q, want %d starting %.10q", file, len(got), got, len(want), want)
		}
	}
	// The plain stream still imports too (as another snapshot's name is
	// taken, after removing it).
	ctl.ok("rm", snap2)
	ctl.ok("rm", snap1)
	if r := ctl.run("import", plain); r.code != 0 || r.stdout != snap1+"\n" {
		t.Fatalf("import of the plain stream: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}
