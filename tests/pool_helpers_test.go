package tests

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"

	"butterd/dbusapi"
	"butterd/tests/testenv"
)

// poolEnv is a butterd on a private bus with the real policy, serving a
// data root inside a test's BTRFS, and a D-Bus client of it as root.
type poolEnv struct {
	t    *testing.T
	bus  *testenv.Bus
	d    *testenv.Daemon
	c    *dbusapi.Client
	root string // the data root
}

func startPool(t *testing.T, mnt string, extraPolicies ...string) *poolEnv {
	t.Helper()
	testenv.Root(t)
	root := filepath.Join(mnt, "root")
	bus := testenv.StartBus(t, extraPolicies...)
	sock := filepath.Join(t.TempDir(), "btrfs.sock")
	d := testenv.StartButterdWith(t, root, sock, testenv.ButterdOptions{Bus: bus})
	conn, err := dbus.Connect(bus.Address)
	if err != nil {
		t.Fatalf("connect to the test bus: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return &poolEnv{t: t, bus: bus, d: d, c: dbusapi.NewClient(conn), root: root}
}

// poolState is what a data root holds and what butterd says it holds.
type poolState struct {
	DiskVolumes, DiskSnapshots []string // subvolume names under volumes/ and snapshots/
	Volumes, Snapshots         []string // ListVolumes, ListSnapshots
	Leftovers                  []string // temporaries, journal entries, received/ entries
	Mounts                     map[string]uint32
}

// state reads the data root and butterd's index.
func (e *poolEnv) state() poolState {
	e.t.Helper()
	var st poolState
	st.DiskVolumes = subvolumeNames(e.t, filepath.Join(e.root, "volumes"))
	st.DiskSnapshots = subvolumeNames(e.t, filepath.Join(e.root, "snapshots"))
	st.Leftovers = leftovers(e.t, e.root)
	received, err := os.ReadDir(filepath.Join(e.root, "received"))
	if err != nil {
		e.t.Fatal(err)
	}
	for _, r := range received {
		st.Leftovers = append(st.Leftovers, "received/"+r.Name())
	}
	vols, err := e.c.ListVolumes()
	if err != nil {
		e.t.Fatalf("ListVolumes: %v", err)
	}
	st.Mounts = map[string]uint32{}
	for _, v := range vols {
		st.Volumes = append(st.Volumes, v.Name)
		st.Mounts[v.Name] = v.Mounts
	}
	snaps, err := e.c.ListSnapshots("")
	if err != nil {
		e.t.Fatalf("ListSnapshots: %v", err)
	}
	for _, s := range snaps {
		st.Snapshots = append(st.Snapshots, s.Name)
	}
	slices.Sort(st.Snapshots)
	return st
}

// consistent fails the test when butterd's index differs from the disk or
// something half-done is left.
func (e *poolEnv) consistent(when string) poolState {
	e.t.Helper()
	st := e.state()
	if !slices.Equal(st.DiskVolumes, st.Volumes) {
		e.t.Errorf("%s: volumes on disk %q, butterd lists %q", when, st.DiskVolumes, st.Volumes)
	}
	if !slices.Equal(st.DiskSnapshots, st.Snapshots) {
		e.t.Errorf("%s: snapshots on disk %q, butterd lists %q", when, st.DiskSnapshots, st.Snapshots)
	}
	if len(st.Leftovers) > 0 {
		e.t.Errorf("%s: left over: %q", when, st.Leftovers)
	}
	return st
}

// subvolumeNames lists the subvolumes directly in dir (not temporaries).
func subvolumeNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range entries {
		if !strings.HasPrefix(de.Name(), ".") && de.IsDir() && isSubvolume(t, filepath.Join(dir, de.Name())) {
			names = append(names, de.Name())
		}
	}
	return names
}

// waitJob waits for a job and returns its error text ("" when done).
func (e *poolEnv) waitJob(id uint32) string {
	e.t.Helper()
	j, err := e.c.WaitJob(id, 50*time.Millisecond, nil)
	if err != nil {
		e.t.Fatalf("job %d: %v", id, err)
	}
	if j.Result == "done" {
		return ""
	}
	return j.Result + ": " + j.Error
}

// exportTo exports a snapshot into a new file outside the pool.
func (e *poolEnv) exportTo(snapshot string) string {
	e.t.Helper()
	path := filepath.Join(e.t.TempDir(), "stream")
	f, err := os.Create(path)
	if err != nil {
		e.t.Fatal(err)
	}
	defer f.Close()
	id, _, err := e.c.ExportSnapshot(snapshot, "", f, false)
	if err != nil {
		e.t.Fatalf("ExportSnapshot %s: %v", snapshot, err)
	}
	if msg := e.waitJob(id); msg != "" {
		e.t.Fatalf("export of %s: %s", snapshot, msg)
	}
	return path
}

// importFrom imports a stream file and returns the job's error ("" when
// done), or the call's.
func (e *poolEnv) importFrom(path string) string {
	e.t.Helper()
	f, err := os.Open(path)
	if err != nil {
		e.t.Fatal(err)
	}
	defer f.Close()
	id, _, err := e.c.ImportSnapshot(f)
	if err != nil {
		return dbusapi.ErrorName(err) + ": " + dbusapi.Message(err)
	}
	return e.waitJob(id)
}

// fillPool writes a file at dir/name until the filesystem takes no more
// data, not even after a sync.
func fillPool(t *testing.T, dir, name string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	big, small := make([]byte, 1<<20), make([]byte, 4096)
	for round := 0; ; round++ {
		wrote := false
		for _, buf := range [][]byte{big, small} {
			for {
				if _, err := f.Write(buf); err != nil {
					if !errors.Is(err, syscall.ENOSPC) {
						t.Fatalf("fill %s: %v", path, err)
					}
					break
				}
				wrote = true
			}
		}
		f.Sync() // may fail with ENOSPC too: reservations are given back
		syncFS(t, dir)
		if !wrote {
			break
		}
		if round > 50 {
			t.Fatalf("fill %s: the filesystem keeps taking more", path)
		}
	}
	return path
}

// syncFS commits the filesystem holding dir.
func syncFS(t *testing.T, dir string) {
	t.Helper()
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := unix.Syncfs(int(d.Fd())); err != nil {
		t.Fatalf("syncfs %s: %v", dir, err)
	}
}
