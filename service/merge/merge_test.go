package merge

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// These tests run on any filesystem (the reflink falls back to a copy);
// tests/sync_test.go runs merges on BTRFS through a whole sync.

const stage = StagePrefix + "7-0"

func write(t *testing.T, path, data string, mtime time.Time) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func symlink(t *testing.T, target, path string, mtime time.Time) {
	t.Helper()
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
	if err := lchtimes(path, mtime); err != nil {
		t.Fatal(err)
	}
}

// merged runs Tree and counts the calls of BeforeWrite.
func merged(t *testing.T, src, dst string) (Stats, int) {
	t.Helper()
	before := 0
	st, err := Tree(context.Background(), src, dst, Options{Stage: stage, BeforeWrite: func() error { before++; return nil }})
	if err != nil {
		t.Fatalf("merge: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(dst, stage)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the staging directory is left: %v", err)
	}
	return st, before
}

func TestTreeNewerMissingAndNeverDeletes(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	old, now := time.Now().Add(-time.Hour), time.Now()
	write(t, filepath.Join(src, "newer"), "from the source", now)
	write(t, filepath.Join(dst, "newer"), "old here", old)
	write(t, filepath.Join(src, "older"), "old in the source", old)
	write(t, filepath.Join(dst, "older"), "newer here", now)
	write(t, filepath.Join(src, "sub/deep/new"), "a new file in new directories", old)
	if err := os.Chmod(filepath.Join(src, "sub"), 0o751); err != nil {
		t.Fatal(err)
	}
	symlink(t, "newer", filepath.Join(src, "link"), now)
	write(t, filepath.Join(dst, "only-here"), "kept", old)
	write(t, filepath.Join(src, StagePrefix+"other"), "another host's staging", now)

	st, before := merged(t, src, dst)
	if st.Created != 4 || st.Updated != 1 || st.Unchanged != 1 || st.LeftAlone != 0 || before != 1 {
		t.Fatalf("stats %+v, BeforeWrite called %d times: want 4 created (sub, sub/deep, sub/deep/new, link), 1 updated, 1 unchanged, once", st, before)
	}
	for name, want := range map[string]string{"newer": "from the source", "older": "newer here", "only-here": "kept", "sub/deep/new": "a new file in new directories"} {
		if got := read(t, filepath.Join(dst, name)); got != want {
			t.Errorf("%s holds %q, want %q", name, got, want)
		}
	}
	if target, err := os.Readlink(filepath.Join(dst, "link")); err != nil || target != "newer" {
		t.Errorf("link: %q, %v", target, err)
	}
	if _, err := os.Lstat(filepath.Join(dst, StagePrefix+"other")); err == nil {
		t.Errorf("another host's staging directory was merged")
	}
	// Modes and times come along, directories' times too.
	for _, name := range []string{"newer", "sub", "sub/deep", "sub/deep/new"} {
		a, err1 := os.Lstat(filepath.Join(src, name))
		b, err2 := os.Lstat(filepath.Join(dst, name))
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		if a.Mode() != b.Mode() || !a.ModTime().Equal(b.ModTime()) {
			t.Errorf("%s: %v %v here, %v %v in the source", name, b.Mode(), b.ModTime(), a.Mode(), a.ModTime())
		}
	}

	// Again: nothing to do, and nothing done.
	st, before = merged(t, src, dst)
	if st.Changed() || st.Unchanged != 6 || before != 0 {
		t.Errorf("second merge: %+v, BeforeWrite called %d times: want no change and no call", st, before)
	}
}

// Symlinks in the target are never followed: a symlink where the source
// has a directory is left alone, and a file replaces a symlink (to a file
// outside) without writing through it.
func TestTreeNeverFollowsSymlinks(t *testing.T) {
	src, dst, outside := t.TempDir(), t.TempDir(), t.TempDir()
	now := time.Now()
	write(t, filepath.Join(src, "escape/f"), "must not land outside", now)
	if err := os.Symlink(outside, filepath.Join(dst, "escape")); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(outside, "target"), "outside", now.Add(-time.Hour))
	if err := os.Symlink(filepath.Join(outside, "target"), filepath.Join(dst, "file")); err != nil {
		t.Fatal(err)
	}
	lchtimes(filepath.Join(dst, "file"), now.Add(-time.Hour))
	write(t, filepath.Join(src, "file"), "replaces the symlink", now)
	// And a directory here where the source has a file.
	write(t, filepath.Join(src, "dir"), "a file there", now)
	write(t, filepath.Join(dst, "dir/kept"), "kept", now.Add(-time.Hour))

	st, _ := merged(t, src, dst)
	if st.LeftAlone != 2 || st.Updated != 1 {
		t.Fatalf("stats %+v: want 2 left alone, 1 updated", st)
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 1 || read(t, filepath.Join(outside, "target")) != "outside" {
		t.Errorf("the merge wrote outside the target: %v", entries)
	}
	if fi, err := os.Lstat(filepath.Join(dst, "file")); err != nil || !fi.Mode().IsRegular() || read(t, filepath.Join(dst, "file")) != "replaces the symlink" {
		t.Errorf("file: %v, %v: want the source's file in place of the symlink", fi, err)
	}
	if fi, err := os.Lstat(filepath.Join(dst, "escape")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("escape: %v %v: want the symlink left alone", fi, err)
	}
	if read(t, filepath.Join(dst, "dir/kept")) != "kept" {
		t.Errorf("the directory was changed")
	}
	want := []string{`"dir": left alone: a directory here, a file in the source`, `"escape": left alone: a symlink here, a directory in the source`}
	if !slices.Equal(st.Notes, want) {
		t.Errorf("notes %q, want %q", st.Notes, want)
	}
}

// A merge stopped (canceled, or BeforeWrite failing) leaves no staging
// directory and no temporary.
func TestTreeStopped(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	write(t, filepath.Join(src, "a"), "a", time.Now())
	failure := errors.New("no safety snapshot")
	_, err := Tree(context.Background(), src, dst, Options{Stage: stage, BeforeWrite: func() error { return failure }})
	if !errors.Is(err, failure) {
		t.Fatalf("merge with BeforeWrite failing: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Tree(ctx, src, dst, Options{Stage: stage}); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled merge: %v", err)
	}
	if entries, _ := os.ReadDir(dst); len(entries) != 0 {
		t.Errorf("left in the target: %v", entries)
	}
	if _, err := Tree(context.Background(), src, dst, Options{Stage: "../x"}); err == nil || !strings.Contains(err.Error(), StagePrefix) {
		t.Errorf("merge with a bad staging name: %v", err)
	}
}

// RemoveStage removes a staging directory left by a crash, and nothing
// else of that name.
func TestRemoveStage(t *testing.T) {
	dst := t.TempDir()
	write(t, filepath.Join(dst, stage, "1"), "temporary", time.Now())
	if err := RemoveStage(dst, stage); err != nil {
		t.Fatal(err)
	}
	if err := RemoveStage(dst, stage); err != nil {
		t.Errorf("removing it again: %v", err)
	}
	if err := os.Symlink(t.TempDir(), filepath.Join(dst, stage)); err != nil {
		t.Fatal(err)
	}
	if err := RemoveStage(dst, stage); err == nil {
		t.Errorf("a symlink in the staging directory's place was removed")
	}
	if err := RemoveStage(dst, "volume"); err == nil {
		t.Errorf("RemoveStage took a name that is not a staging directory's")
	}
}

func lchtimes(path string, mtime time.Time) error {
	ts := unix.NsecToTimespec(mtime.UnixNano())
	return unix.UtimesNanoAt(unix.AT_FDCWD, path, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW)
}
