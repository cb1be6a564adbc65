// Package testenv gives tests real components: a root check, a fresh
// loop-mounted BTRFS per test, and a rule for missing prerequisites (skip
// locally, fail when CI=true).
package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// InCI reports whether the tests run in CI, where nothing may skip.
func InCI() bool { return os.Getenv("CI") == "true" }

// Need stops the test when a prerequisite is missing: a skip on a
// developer's machine, a failure in CI.
func Need(t testing.TB, ok bool, missing string) {
	t.Helper()
	if ok {
		return
	}
	if InCI() {
		t.Fatalf("prerequisite missing in CI: %s", missing)
	}
	t.Skipf("skipped: %s", missing)
}

// Root requires uid 0.
func Root(t testing.TB) {
	t.Helper()
	Need(t, os.Geteuid() == 0, "needs root")
}

// Command requires an executable on PATH and returns its path.
func Command(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	Need(t, err == nil, "needs "+name+" on PATH (make deps installs it)")
	return p
}

// Btrfs makes a fresh BTRFS filesystem of 256 MiB on a loop device, mounts it
// and returns the mount point. The mount point's path contains a space, so
// that quoting mistakes show. Set BUTTERD_KEEP_FS=1 to leave it mounted when
// the test fails.
func Btrfs(t testing.TB) string {
	t.Helper()
	return BtrfsSize(t, "256M")
}

// BtrfsSize is Btrfs with a chosen size (a truncate size such as "1G").
func BtrfsSize(t testing.TB, size string) string {
	t.Helper()
	return BtrfsWith(t, size)
}

// BtrfsWith is BtrfsSize with more mkfs.btrfs arguments (such as --mixed,
// where data and metadata share one pool of space, so that filling it
// with a file leaves no room for anything).
func BtrfsWith(t testing.TB, size string, mkfsArgs ...string) string {
	t.Helper()
	Root(t)
	mkfs := Command(t, "mkfs.btrfs")
	dir := t.TempDir()
	img := filepath.Join(dir, "pool.img")
	mnt := filepath.Join(dir, "pool mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, "truncate", "-s", size, img)
	run(t, mkfs, append(append([]string{"-q"}, mkfsArgs...), img)...)
	run(t, "mount", "-o", "loop", img, mnt)
	t.Cleanup(func() {
		if t.Failed() && os.Getenv("BUTTERD_KEEP_FS") == "1" {
			t.Logf("kept btrfs at %q (image %q)", mnt, img)
			return
		}
		if out, err := exec.Command("umount", "-l", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %q: %v: %s", mnt, err, out)
		}
	})
	return mnt
}

func run(t testing.TB, name string, args ...string) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
}
