package tests

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"butterd/btrfs"
	"butterd/tests/testenv"

	"golang.org/x/sys/unix"
)

// mustCreate makes a subvolume or fails the test.
func mustCreate(t *testing.T, path string) {
	t.Helper()
	if err := btrfs.Create(path); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func isSubvolume(t *testing.T, path string) bool {
	t.Helper()
	ok, err := btrfs.IsSubvolume(path)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

func getInfo(t *testing.T, path string) btrfs.Info {
	t.Helper()
	info, err := btrfs.GetInfo(path)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// output runs a command and returns its standard output.
func output(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(testenv.Command(t, name), args...).Output()
	if err != nil {
		t.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
	}
	return string(out)
}

func TestBtrfsCreateIsSubvolume(t *testing.T) {
	mnt := testenv.Btrfs(t)
	vol := filepath.Join(mnt, "vol")
	mustCreate(t, vol)
	if !isSubvolume(t, vol) {
		t.Errorf("IsSubvolume(%q) = false after Create", vol)
	}
	if !isSubvolume(t, mnt) {
		t.Errorf("IsSubvolume(top level) = false")
	}
	dir := filepath.Join(vol, "plain dir")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(vol, "file")
	writeFile(t, file, "x")
	for _, p := range []string{dir, file} {
		if isSubvolume(t, p) {
			t.Errorf("IsSubvolume(%q) = true", p)
		}
	}
	if _, err := btrfs.IsSubvolume(filepath.Join(mnt, "missing")); !errors.Is(err, unix.ENOENT) {
		t.Errorf("IsSubvolume(missing) = %v, want ENOENT", err)
	}

	err := btrfs.Create(vol)
	var e *btrfs.Error
	if !errors.Is(err, unix.EEXIST) || !errors.As(err, &e) || e.Op != "create" || e.Path != vol {
		t.Errorf("Create(existing) = %#v, want *Error create EEXIST", err)
	}
	if err := btrfs.Create(filepath.Join(mnt, "missing", "vol")); !errors.Is(err, unix.ENOENT) {
		t.Errorf("Create(in missing dir) = %v, want ENOENT", err)
	}
	nested := filepath.Join(dir, "nested")
	mustCreate(t, nested)
	if !isSubvolume(t, nested) {
		t.Errorf("IsSubvolume(%q) = false", nested)
	}
}

func TestBtrfsIsBtrfs(t *testing.T) {
	mnt := testenv.Btrfs(t)
	if ok, err := btrfs.IsBtrfs(mnt); err != nil || !ok {
		t.Errorf("IsBtrfs(%q) = %v, %v", mnt, ok, err)
	}
	tmpIsBtrfs := strings.TrimSpace(output(t, "stat", "-f", "-c", "%T", "/tmp")) == "btrfs"
	if ok, err := btrfs.IsBtrfs("/tmp"); err != nil || ok != tmpIsBtrfs {
		t.Errorf("IsBtrfs(/tmp) = %v, %v; stat -f says btrfs: %v", ok, err, tmpIsBtrfs)
	}
	if ok, err := btrfs.IsBtrfs("/proc"); err != nil || ok {
		t.Errorf("IsBtrfs(/proc) = %v, %v", ok, err)
	}
	if _, err := btrfs.IsBtrfs(filepath.Join(mnt, "missing")); !errors.Is(err, unix.ENOENT) {
		t.Errorf("IsBtrfs(missing) = %v, want ENOENT", err)
	}
	if isSubvolume(t, "/proc") {
		t.Error("IsSubvolume(/proc) = true")
	}
	if _, err := btrfs.GetInfo("/proc"); !errors.Is(err, btrfs.ErrNotBtrfs) {
		t.Errorf("GetInfo(/proc) = %v, want ErrNotBtrfs", err)
	}
	if !tmpIsBtrfs {
		err := btrfs.Create(filepath.Join(t.TempDir(), "vol"))
		if !errors.Is(err, btrfs.ErrNotBtrfs) {
			t.Errorf("Create on /tmp = %v, want ErrNotBtrfs", err)
		}
	}
}

func TestBtrfsSnapshot(t *testing.T) {
	mnt := testenv.Btrfs(t)
	vol := filepath.Join(mnt, "vol")
	mustCreate(t, vol)
	writeFile(t, filepath.Join(vol, "data"), "v1")

	ro := filepath.Join(mnt, "vol@ro")
	if err := btrfs.Snapshot(vol, ro, true); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(ro, "data")); got != "v1" {
		t.Errorf("read-only snapshot holds %q", got)
	}
	if err := os.WriteFile(filepath.Join(ro, "new"), nil, 0o644); !errors.Is(err, unix.EROFS) {
		t.Errorf("write in read-only snapshot: %v, want EROFS", err)
	}

	rw := filepath.Join(mnt, "vol@rw")
	if err := btrfs.Snapshot(vol, rw, false); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(rw, "data"), "v2")
	if got := readFile(t, filepath.Join(vol, "data")); got != "v1" {
		t.Errorf("source changed to %q by a write in its snapshot", got)
	}
	if !isSubvolume(t, ro) || !isSubvolume(t, rw) {
		t.Error("snapshots are not subvolumes")
	}

	if err := btrfs.Snapshot(vol, ro, true); !errors.Is(err, unix.EEXIST) {
		t.Errorf("Snapshot onto existing = %v, want EEXIST", err)
	} else if want := `btrfs snapshot "` + ro + `": from "` + vol + `": file exists`; err.Error() != want {
		t.Errorf("message %q, want %q", err, want)
	}
	dir := filepath.Join(vol, "dir")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := btrfs.Snapshot(dir, filepath.Join(mnt, "dir@x"), true); !errors.Is(err, btrfs.ErrNotSubvolume) {
		t.Errorf("Snapshot(plain dir) = %v, want ErrNotSubvolume", err)
	}
	if err := btrfs.Snapshot(filepath.Join(mnt, "missing"), filepath.Join(mnt, "m@x"), true); !errors.Is(err, unix.ENOENT) {
		t.Errorf("Snapshot(missing) = %v, want ENOENT", err)
	}
}

func TestBtrfsInfo(t *testing.T) {
	mnt := testenv.Btrfs(t)
	top := getInfo(t, mnt)
	if top.ID != 5 {
		t.Errorf("top level ID = %d, want 5", top.ID)
	}

	before := time.Now().Truncate(time.Second)
	vol := filepath.Join(mnt, "vol")
	mustCreate(t, vol)
	after := time.Now()
	info := getInfo(t, vol)
	if len(info.UUID) != 36 {
		t.Errorf("UUID %q", info.UUID)
	}
	if show := output(t, "btrfs", "subvolume", "show", vol); !strings.Contains(show, "UUID: \t\t\t"+info.UUID+"\n") {
		t.Errorf("btrfs subvolume show disagrees with UUID %q:\n%s", info.UUID, show)
	}
	if info.ParentUUID != "" || info.ReceivedUUID != "" {
		t.Errorf("plain subvolume has parent/received UUID %q/%q", info.ParentUUID, info.ReceivedUUID)
	}
	if info.ID < 256 || info.ParentID != 5 {
		t.Errorf("ID %d, ParentID %d", info.ID, info.ParentID)
	}
	if info.OTime.Before(before) || info.OTime.After(after) {
		t.Errorf("OTime %v not within [%v, %v]", info.OTime, before, after)
	}
	if info.ReadOnly {
		t.Error("new subvolume is read-only")
	}
	if info.Generation == 0 {
		t.Error("Generation 0")
	}

	// Create does not commit: commit it, then a write, to see the generation move.
	unix.Sync()
	g1 := getInfo(t, vol).Generation
	writeFile(t, filepath.Join(vol, "data"), "x")
	unix.Sync()
	if g2 := getInfo(t, vol).Generation; g2 <= g1 {
		t.Errorf("Generation %d after a committed write, was %d", g2, g1)
	}

	snap := filepath.Join(mnt, "vol@1")
	if err := btrfs.Snapshot(vol, snap, true); err != nil {
		t.Fatal(err)
	}
	si := getInfo(t, snap)
	if si.ParentUUID != info.UUID {
		t.Errorf("snapshot ParentUUID %q, source UUID %q", si.ParentUUID, info.UUID)
	}
	if si.UUID == "" || si.UUID == info.UUID || si.ID == info.ID {
		t.Errorf("snapshot UUID %q ID %d, source %q %d", si.UUID, si.ID, info.UUID, info.ID)
	}
	if !si.ReadOnly {
		t.Error("read-only snapshot: ReadOnly false")
	}

	inner := filepath.Join(vol, "inner")
	mustCreate(t, inner)
	if ii := getInfo(t, inner); ii.ParentID != info.ID {
		t.Errorf("nested ParentID %d, want %d", ii.ParentID, info.ID)
	}

	dir := filepath.Join(vol, "dir")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := btrfs.GetInfo(dir); !errors.Is(err, btrfs.ErrNotSubvolume) {
		t.Errorf("GetInfo(plain dir) = %v, want ErrNotSubvolume", err)
	}
	if _, err := btrfs.GetInfo(filepath.Join(vol, "data")); !errors.Is(err, btrfs.ErrNotSubvolume) {
		t.Errorf("GetInfo(file) = %v, want ErrNotSubvolume", err)
	}
}

func TestBtrfsDelete(t *testing.T) {
	mnt := testenv.Btrfs(t)
	vol := filepath.Join(mnt, "vol")
	mustCreate(t, vol)
	writeFile(t, filepath.Join(vol, "data"), "x")
	ro := filepath.Join(mnt, "vol@ro")
	if err := btrfs.Snapshot(vol, ro, true); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{ro, vol} {
		if err := btrfs.Delete(p); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%q after Delete: %v", p, err)
		}
	}
	if err := btrfs.Delete(vol); !errors.Is(err, unix.ENOENT) {
		t.Errorf("Delete(missing) = %v, want ENOENT", err)
	}
	dir := filepath.Join(mnt, "dir")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := btrfs.Delete(dir); !errors.Is(err, btrfs.ErrNotSubvolume) {
		t.Errorf("Delete(plain dir) = %v, want ErrNotSubvolume", err)
	}

	outer := filepath.Join(mnt, "outer")
	mustCreate(t, outer)
	if err := os.MkdirAll(filepath.Join(outer, "a b", "c"), 0o755); err != nil {
		t.Fatal(err)
	}
	inner := filepath.Join(outer, "a b", "c", "inner")
	mustCreate(t, inner)
	err := btrfs.Delete(outer)
	if !errors.Is(err, btrfs.ErrNested) {
		t.Fatalf("Delete(outer) = %v, want ErrNested", err)
	}
	if want := `btrfs delete "` + outer + `": holds nested subvolumes: "a b/c/inner"`; err.Error() != want {
		t.Errorf("message %q, want %q", err, want)
	}
	if !isSubvolume(t, outer) || !isSubvolume(t, inner) {
		t.Error("refused Delete removed something")
	}
	if err := btrfs.Delete(inner); err != nil {
		t.Fatal(err)
	}
	if err := btrfs.Delete(outer); err != nil {
		t.Fatalf("Delete(outer) once empty: %v", err)
	}
}

func TestBtrfsNested(t *testing.T) {
	mnt := testenv.Btrfs(t)
	outer := filepath.Join(mnt, "outer")
	mustCreate(t, outer)
	if got, err := btrfs.Nested(outer); err != nil || len(got) != 0 {
		t.Errorf("Nested(empty) = %q, %v", got, err)
	}
	if err := os.MkdirAll(filepath.Join(outer, "d", "e"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"inner", "d/e/deep", "inner/deeper"} {
		mustCreate(t, filepath.Join(outer, p))
	}
	if got, err := btrfs.Nested(outer); err != nil || !reflect.DeepEqual(got, []string{"d/e/deep", "inner"}) {
		t.Errorf("Nested(outer) = %q, %v", got, err)
	}
	if got, err := btrfs.Nested(mnt); err != nil || !reflect.DeepEqual(got, []string{"outer"}) {
		t.Errorf("Nested(top level) = %q, %v", got, err)
	}
	if _, err := btrfs.Nested(filepath.Join(outer, "d")); !errors.Is(err, btrfs.ErrNotSubvolume) {
		t.Errorf("Nested(plain dir) = %v, want ErrNotSubvolume", err)
	}

	// More than one ioctl buffer (255 root references).
	many := filepath.Join(mnt, "many")
	mustCreate(t, many)
	for i := range 300 {
		mustCreate(t, filepath.Join(many, "s"+strconv.Itoa(i)))
	}
	got, err := btrfs.Nested(many)
	if err != nil || len(got) != 300 {
		t.Errorf("Nested(300 subvolumes) = %d paths, %v", len(got), err)
	}
}

func TestBtrfsSetReadOnly(t *testing.T) {
	mnt := testenv.Btrfs(t)
	vol := filepath.Join(mnt, "vol")
	mustCreate(t, vol)
	for range 2 { // a second call changes nothing
		if err := btrfs.SetReadOnly(vol, true); err != nil {
			t.Fatal(err)
		}
	}
	if !getInfo(t, vol).ReadOnly {
		t.Error("ReadOnly false after SetReadOnly(true)")
	}
	if got := output(t, "btrfs", "property", "get", "-ts", vol, "ro"); got != "ro=true\n" {
		t.Errorf("btrfs property get: %q", got)
	}
	if err := os.WriteFile(filepath.Join(vol, "f"), nil, 0o644); !errors.Is(err, unix.EROFS) {
		t.Errorf("write in read-only subvolume: %v, want EROFS", err)
	}
	if err := btrfs.SetReadOnly(vol, false); err != nil {
		t.Fatal(err)
	}
	if getInfo(t, vol).ReadOnly {
		t.Error("ReadOnly true after SetReadOnly(false)")
	}
	writeFile(t, filepath.Join(vol, "f"), "x")
	if err := btrfs.SetReadOnly(mnt+"/missing", true); !errors.Is(err, unix.ENOENT) {
		t.Errorf("SetReadOnly(missing) = %v, want ENOENT", err)
	}
}

// lsattrHasC reports whether lsattr shows the C (NOCOW) attribute.
func lsattrHasC(t *testing.T, path string) bool {
	t.Helper()
	fields := strings.Fields(output(t, "lsattr", "-d", path))
	return len(fields) > 0 && strings.Contains(fields[0], "C")
}

func TestBtrfsNoCOW(t *testing.T) {
	mnt := testenv.Btrfs(t)
	dir := filepath.Join(mnt, "dir")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if on, err := btrfs.NoCOW(dir); err != nil || on {
		t.Fatalf("NoCOW(new dir) = %v, %v", on, err)
	}
	if err := btrfs.SetNoCOW(dir); err != nil {
		t.Fatal(err)
	}
	if on, err := btrfs.NoCOW(dir); err != nil || !on {
		t.Errorf("NoCOW(dir) = %v, %v after SetNoCOW", on, err)
	}
	file := filepath.Join(dir, "new")
	writeFile(t, file, "data")
	if on, err := btrfs.NoCOW(file); err != nil || !on {
		t.Errorf("NoCOW(new file) = %v, %v: not inherited", on, err)
	}
	if !lsattrHasC(t, dir) || !lsattrHasC(t, file) {
		t.Error("lsattr does not show C")
	}

	empty := filepath.Join(mnt, "empty")
	writeFile(t, empty, "")
	if err := btrfs.SetNoCOW(empty); err != nil {
		t.Errorf("SetNoCOW(empty file) = %v", err)
	}
	full := filepath.Join(mnt, "full")
	writeFile(t, full, "data")
	if err := btrfs.SetNoCOW(full); !errors.Is(err, unix.EINVAL) {
		t.Errorf("SetNoCOW(file with data) = %v, want EINVAL", err)
	}
	if lsattrHasC(t, full) {
		t.Error("file with data got C")
	}
}

func TestBtrfsExchange(t *testing.T) {
	mnt := testenv.Btrfs(t)
	a, b := filepath.Join(mnt, "a"), filepath.Join(mnt, "b")
	mustCreate(t, a)
	mustCreate(t, b)
	writeFile(t, filepath.Join(a, "who"), "a")
	writeFile(t, filepath.Join(b, "who"), "b")
	ia, ib := getInfo(t, a), getInfo(t, b)
	if err := btrfs.Exchange(a, b); err != nil {
		t.Fatal(err)
	}
	if readFile(t, filepath.Join(a, "who")) != "b" || readFile(t, filepath.Join(b, "who")) != "a" {
		t.Error("contents not swapped")
	}
	if getInfo(t, a).ID != ib.ID || getInfo(t, b).ID != ia.ID {
		t.Error("subvolume ids not swapped")
	}

	// Atomic: a reader never finds a missing.
	stop := make(chan struct{})
	missing := make(chan error, 1)
	go func() {
		defer close(missing)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := os.Stat(filepath.Join(a, "who")); err != nil {
				missing <- err
				return
			}
		}
	}()
	for range 1000 {
		if err := btrfs.Exchange(a, b); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	if err := <-missing; err != nil {
		t.Errorf("reader saw %v during exchanges", err)
	}

	// A subvolume and a plain directory.
	dir := filepath.Join(mnt, "dir")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "who"), "dir")
	if err := btrfs.Exchange(a, dir); err != nil {
		t.Fatal(err)
	}
	if isSubvolume(t, a) || !isSubvolume(t, dir) || readFile(t, filepath.Join(a, "who")) != "dir" {
		t.Error("subvolume and plain directory not swapped")
	}

	// A read-only snapshot and a subvolume in one directory.
	ro := filepath.Join(mnt, "ro")
	if err := btrfs.Snapshot(b, ro, true); err != nil {
		t.Fatal(err)
	}
	if err := btrfs.Exchange(ro, dir); err != nil {
		t.Fatalf("Exchange(read-only snapshot, subvolume): %v", err)
	}
	if !getInfo(t, dir).ReadOnly || getInfo(t, ro).ReadOnly {
		t.Error("read-only snapshot not swapped")
	}

	if err := btrfs.Exchange(a, filepath.Join(mnt, "missing")); !errors.Is(err, unix.ENOENT) {
		t.Errorf("Exchange with missing = %v, want ENOENT", err)
	}
}

func TestBtrfsRenameNoReplace(t *testing.T) {
	mnt := testenv.Btrfs(t)
	a, b, c := filepath.Join(mnt, "a"), filepath.Join(mnt, "b"), filepath.Join(mnt, "c")
	mustCreate(t, a)
	mustCreate(t, b)
	writeFile(t, filepath.Join(a, "who"), "a")
	writeFile(t, filepath.Join(b, "who"), "b")
	err := btrfs.RenameNoReplace(a, b)
	if !errors.Is(err, unix.EEXIST) {
		t.Fatalf("RenameNoReplace onto existing = %v, want EEXIST", err)
	}
	if want := `btrfs rename "` + a + `": to "` + b + `": file exists`; err.Error() != want {
		t.Errorf("message %q, want %q", err, want)
	}
	if readFile(t, filepath.Join(a, "who")) != "a" || readFile(t, filepath.Join(b, "who")) != "b" {
		t.Error("refused rename changed something")
	}
	if err := btrfs.RenameNoReplace(a, c); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(a); !errors.Is(err, os.ErrNotExist) || readFile(t, filepath.Join(c, "who")) != "a" {
		t.Errorf("rename a to c: a %v", err)
	}
}
