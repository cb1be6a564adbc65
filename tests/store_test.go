package tests

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"butterd/btrfs"
	"butterd/service"
	"butterd/tests/testenv"
)

func TestStoreVolumeLifecycle(t *testing.T) {
	s, root := openStore(t)
	v, created, err := s.CreateVolume("db data", service.CreateOptions{})
	if !errors.Is(err, service.ErrInvalidName) {
		t.Fatalf("create with a space: %v, %v", v, err)
	}
	v, created, err = s.CreateVolume("db", service.CreateOptions{})
	if err != nil || !created {
		t.Fatalf("create: %v %v", created, err)
	}
	if v.Path != filepath.Join(root, "volumes", "db") {
		t.Errorf("path %q", v.Path)
	}
	if ok, _ := btrfs.IsSubvolume(v.Path); !ok {
		t.Fatalf("%q is not a subvolume", v.Path)
	}
	if time.Since(v.CreatedAt) > time.Minute {
		t.Errorf("created at %v", v.CreatedAt)
	}
	writeFile(t, filepath.Join(v.Path, "f"), "hello")
	again, created, err := s.CreateVolume("db", service.CreateOptions{})
	if err != nil || created || again.Path != v.Path {
		t.Fatalf("second create must return the volume unchanged: %v %v %v", again, created, err)
	}
	if readFile(t, filepath.Join(v.Path, "f")) != "hello" {
		t.Fatal("second create changed the data")
	}
	if got := s.ListVolumes(); len(got) != 1 || got[0].Name != "db" {
		t.Fatalf("list: %+v", got)
	}
	final, err := s.RemoveVolume("db", service.RemoveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(v.Path); !os.IsNotExist(err) {
		t.Fatalf("volume still there: %v", err)
	}
	if !strings.HasPrefix(final, "db@") {
		t.Fatalf("final snapshot %q", final)
	}
	if readFile(t, filepath.Join(root, "snapshots", final, "f")) != "hello" {
		t.Fatal("final snapshot lacks the data")
	}
	if _, err := s.GetVolume("db"); !errors.Is(err, service.ErrNotFound) {
		t.Fatalf("get after remove: %v", err)
	}
	if _, err := s.RemoveVolume("db", service.RemoveOptions{}); !errors.Is(err, service.ErrNotFound) {
		t.Fatalf("second remove: %v", err)
	}
	// Snapshots of a removed volume are still listed and restorable.
	if got := snapshotNames(t, s, "db"); len(got) != 1 || got[0] != final {
		t.Fatalf("snapshots of removed volume: %v", got)
	}
	res, err := s.Restore("db", "", false)
	if err != nil || res.Snapshot != final || res.Safety != "" {
		t.Fatalf("restore removed volume: %+v %v", res, err)
	}
	if readFile(t, filepath.Join(root, "volumes", "db", "f")) != "hello" {
		t.Fatal("restored data differs")
	}
}

func TestStoreNoFinalSnapshot(t *testing.T) {
	s, _ := openStore(t)
	if _, _, err := s.CreateVolume("tmpvol", service.CreateOptions{NoFinalSnapshot: true}); err != nil {
		t.Fatal(err)
	}
	final, err := s.RemoveVolume("tmpvol", service.RemoveOptions{})
	if err != nil || final != "" {
		t.Fatalf("remove: %q %v", final, err)
	}
	if got := snapshotNames(t, s, "tmpvol"); len(got) != 0 {
		t.Fatalf("snapshots: %v", got)
	}
	// The setting went with the volume: a new one of that name snapshots again.
	if _, _, err := s.CreateVolume("tmpvol", service.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if final, err := s.RemoveVolume("tmpvol", service.RemoveOptions{}); err != nil || final == "" {
		t.Fatalf("remove of the new volume: %q %v", final, err)
	}
}

// A finalsnapshot=false setting left by a create or removal that was cut
// short (its volume does not exist) is dropped at start and reported: a
// new volume of that name takes its final snapshot when removed. The
// setting of a volume that exists stays.
func TestStoreStaleFinalSnapshotSetting(t *testing.T) {
	root := filepath.Join(testenv.Btrfs(t), "data root")
	s := openStoreAt(t, root, service.Config{})
	if _, _, err := s.CreateVolume("keep", service.CreateOptions{NoFinalSnapshot: true}); err != nil {
		t.Fatal(err)
	}
	must(t, s.Close())
	meta := filepath.Join(root, "state", "meta.json")
	var m map[string]map[string]bool
	must(t, json.Unmarshal([]byte(readFile(t, meta)), &m))
	m["no_final_snapshot"]["db"] = true
	data, err := json.Marshal(m)
	must(t, err)
	must(t, os.WriteFile(meta, data, 0o600))

	var log bytes.Buffer
	s = openStoreAt(t, root, service.Config{Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if !strings.Contains(log.String(), "settings of volumes that do not exist dropped") || !strings.Contains(log.String(), "db") {
		t.Errorf("the stale setting of db is not reported at start:\n%s", log.String())
	}
	if _, _, err := s.CreateVolume("db", service.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(root, "volumes", "db", "f"), "data")
	final, err := s.RemoveVolume("db", service.RemoveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if final == "" || readFile(t, filepath.Join(root, "snapshots", final, "f")) != "data" {
		t.Fatalf("removal of the new volume db took no final snapshot with its data (%q): it inherited a stale setting", final)
	}
	if final, err := s.RemoveVolume("keep", service.RemoveOptions{}); err != nil || final != "" {
		t.Fatalf("removal of keep (finalsnapshot=false): %q %v", final, err)
	}
}

// Removing a snapshot that a running export reads (stalled: nobody reads
// its pipe) is refused as busy, naming the job; once the job is done it
// goes.
func TestStoreSnapshotInUseByExport(t *testing.T) {
	s, root := openStore(t)
	v, _, err := s.CreateVolume("app", service.CreateOptions{})
	must(t, err)
	data := make([]byte, 8<<20) // more than any pipe holds
	_, err = rand.Read(data)
	must(t, err)
	must(t, os.WriteFile(filepath.Join(v.Path, "big"), data, 0o600))
	snap, err := s.CreateSnapshot("app")
	must(t, err)
	r, w, err := os.Pipe()
	must(t, err)
	defer r.Close()
	j, err := s.ExportSnapshot(snap.Name, "", w)
	must(t, err)
	if _, err := io.ReadFull(r, make([]byte, 1)); err != nil { // the stream has begun, then stalls
		t.Fatal(err)
	}
	err = s.RemoveSnapshot(snap.Name)
	want := fmt.Sprintf("snapshot %q is in use by export job %d: wait for it or cancel it (butterctl cancel %d)", snap.Name, j.ID, j.ID)
	if !errors.Is(err, service.ErrBusy) || err.Error() != want {
		t.Fatalf("removal of a snapshot being exported: %v, want busy: %s", err, want)
	}
	if !isSubvol(filepath.Join(root, "snapshots", snap.Name)) {
		t.Fatal("the snapshot being exported is gone")
	}
	go io.Copy(io.Discard, r)
	if j = waitJob(t, s, j.ID); j.State != service.JobDone {
		t.Fatalf("export: %s: %s", j.State, j.Error)
	}
	must(t, s.RemoveSnapshot(snap.Name))
	if got := snapshotNames(t, s, "app"); len(got) != 0 {
		t.Fatalf("snapshots after the removal: %v", got)
	}
}

func TestStoreNoCOW(t *testing.T) {
	s, root := openStore(t)
	v, _, err := s.CreateVolume("pg", service.CreateOptions{NoCOW: true})
	if err != nil {
		t.Fatal(err)
	}
	if on, err := btrfs.NoCOW(v.Path); err != nil || !on {
		t.Fatalf("root NOCOW: %v %v", on, err)
	}
	writeFile(t, filepath.Join(v.Path, "new"), "x")
	out, err := exec.Command("lsattr", filepath.Join(v.Path, "new")).CombinedOutput()
	if err != nil || !strings.Contains(strings.Fields(string(out))[0], "C") {
		t.Fatalf("lsattr of a new file: %s %v", out, err)
	}
	if l := leftovers(t, root); len(l) != 0 {
		t.Fatalf("leftovers: %v", l)
	}
	// .nocow at the root of a plain volume is honoured at mount.
	w, _, err := s.CreateVolume("web", service.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(w.Path, ".nocow"), "")
	if _, err := s.Mount("web", "m1"); err != nil {
		t.Fatal(err)
	}
	if on, _ := btrfs.NoCOW(w.Path); !on {
		t.Fatal(".nocow not honoured at mount")
	}
}

func TestStoreCreateFrom(t *testing.T) {
	s, _ := openStore(t)
	v, _, _ := s.CreateVolume("src", service.CreateOptions{})
	writeFile(t, filepath.Join(v.Path, "f"), "one")
	snap, err := s.CreateSnapshot("src")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(v.Path, "f"), "two")
	fromSnap, _, err := s.CreateVolume("fromsnap", service.CreateOptions{From: snap.Name})
	if err != nil {
		t.Fatal(err)
	}
	fromVol, _, err := s.CreateVolume("fromvol", service.CreateOptions{From: "src", NoCOW: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(fromSnap.Path, "f")); got != "one" {
		t.Errorf("from snapshot: %q", got)
	}
	if got := readFile(t, filepath.Join(fromVol.Path, "f")); got != "two" {
		t.Errorf("from volume: %q", got)
	}
	writeFile(t, filepath.Join(fromVol.Path, "f"), "three") // writable, independent
	if got := readFile(t, filepath.Join(v.Path, "f")); got != "two" {
		t.Errorf("source changed: %q", got)
	}
	for _, from := range []string{"nosuch", "src@2020-01-01T00:00:00.000000"} {
		if _, _, err := s.CreateVolume("x"+from[:2], service.CreateOptions{From: from}); !errors.Is(err, service.ErrNotFound) {
			t.Errorf("from=%q: %v", from, err)
		}
	}
}

func TestStoreSnapshots(t *testing.T) {
	s, root := openStore(t)
	v, _, _ := s.CreateVolume("v1", service.CreateOptions{})
	writeFile(t, filepath.Join(v.Path, "f"), "a")
	a, err := s.CreateSnapshot("v1")
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.CreateSnapshot("v1")
	if err != nil {
		t.Fatal(err)
	}
	if a.Name == b.Name {
		t.Fatal("two snapshots share a name")
	}
	if _, _, err := service.ParseSnapshotName(a.Name); err != nil {
		t.Fatalf("snapshot name %q: %v", a.Name, err)
	}
	info, err := btrfs.GetInfo(a.Path)
	if err != nil || !info.ReadOnly {
		t.Fatalf("snapshot not read-only: %+v %v", info, err)
	}
	if got := snapshotNames(t, s, "v1"); len(got) != 2 || got[0] != a.Name || got[1] != b.Name {
		t.Fatalf("list: %v", got)
	}
	if _, err := s.CreateSnapshot("nosuch"); !errors.Is(err, service.ErrNotFound) {
		t.Fatalf("snapshot of a missing volume: %v", err)
	}
	if err := s.RemoveSnapshot(a.Name); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "snapshots", a.Name)); !os.IsNotExist(err) {
		t.Fatalf("snapshot still on disk: %v", err)
	}
	if err := s.RemoveSnapshot(a.Name); !errors.Is(err, service.ErrNotFound) {
		t.Fatalf("second remove: %v", err)
	}
	for _, bad := range []string{"../../etc@x", "v1", "v1@../x"} {
		if err := s.RemoveSnapshot(bad); !errors.Is(err, service.ErrInvalidName) {
			t.Errorf("remove %q: %v", bad, err)
		}
	}
}

func TestStoreRestore(t *testing.T) {
	s, root := openStore(t)
	v, _, _ := s.CreateVolume("app", service.CreateOptions{})
	writeFile(t, filepath.Join(v.Path, "f"), "old")
	snap, _ := s.CreateSnapshot("app")
	writeFile(t, filepath.Join(v.Path, "f"), "new")

	res, err := s.Restore("app", "", false)
	if err != nil {
		t.Fatal(err)
	}
	if res.Snapshot != snap.Name || res.Volume != "app" || res.Safety == "" {
		t.Fatalf("restore: %+v", res)
	}
	if got := readFile(t, filepath.Join(v.Path, "f")); got != "old" {
		t.Fatalf("after restore: %q", got)
	}
	if got := readFile(t, filepath.Join(root, "snapshots", res.Safety, "f")); got != "new" {
		t.Fatalf("safety snapshot: %q", got)
	}
	// The safety snapshot is newer but never the "latest" to restore.
	res2, err := s.Restore("app", "", false)
	if err != nil || res2.Snapshot != snap.Name {
		t.Fatalf("second restore used %q (%v), want %q", res2.Snapshot, err, snap.Name)
	}
	// Restoring to another, new volume: no safety snapshot.
	res3, err := s.Restore(res.Safety, "app2", false)
	if err != nil || res3.Safety != "" || res3.Volume != "app2" {
		t.Fatalf("restore to new volume: %+v %v", res3, err)
	}
	if got := readFile(t, filepath.Join(root, "volumes/app2/f")); got != "new" {
		t.Fatalf("app2: %q", got)
	}
	// A mounted volume is refused unless forced.
	if _, err := s.Mount("app", "c1"); err != nil {
		t.Fatal(err)
	}
	_, err = s.Restore(snap.Name, "", false)
	if !errors.Is(err, service.ErrInUse) || !strings.Contains(err.Error(), "1 mount") {
		t.Fatalf("restore of a mounted volume: %v", err)
	}
	if _, err := s.Restore(snap.Name, "", true); err != nil {
		t.Fatalf("forced restore: %v", err)
	}
	if _, err := s.Restore("nosnaps", "", false); !errors.Is(err, service.ErrNotFound) {
		t.Fatalf("restore of a volume without snapshots: %v", err)
	}
	if l := leftovers(t, root); len(l) != 0 {
		t.Fatalf("leftovers: %v", l)
	}
}

func TestStoreClone(t *testing.T) {
	s, _ := openStore(t)
	v, _, _ := s.CreateVolume("prod", service.CreateOptions{})
	writeFile(t, filepath.Join(v.Path, "f"), "data")
	c, err := s.Clone("prod", "test")
	if err != nil {
		t.Fatal(err)
	}
	if readFile(t, filepath.Join(c.Path, "f")) != "data" {
		t.Fatal("clone lacks data")
	}
	writeFile(t, filepath.Join(c.Path, "f"), "changed")
	if readFile(t, filepath.Join(v.Path, "f")) != "data" {
		t.Fatal("clone shares data with its source")
	}
	if _, err := s.Clone("prod", "test"); !errors.Is(err, service.ErrExists) {
		t.Fatalf("clone onto an existing volume: %v", err)
	}
	if _, err := s.Clone("nosuch", "other"); !errors.Is(err, service.ErrNotFound) {
		t.Fatalf("clone of a missing volume: %v", err)
	}
}

func TestStoreMountsSurviveRestartNotReboot(t *testing.T) {
	root := filepath.Join(testenv.Btrfs(t), "root")
	s := openStoreAt(t, root, service.Config{BootID: "boot-1"})
	s.CreateVolume("v1", service.CreateOptions{})
	s.Mount("v1", "a")
	s.Mount("v1", "b")
	s.Unmount("v1", "b")
	if err := s.Unmount("v1", "unknown"); err != nil {
		t.Fatalf("unmount of an unknown id: %v", err)
	}
	s.Close()

	s = openStoreAt(t, root, service.Config{BootID: "boot-1"})
	if v, _ := s.GetVolume("v1"); v.Mounts != 1 {
		t.Fatalf("mounts after restart: %d, want 1", v.Mounts)
	}
	if _, err := s.RemoveVolume("v1", service.RemoveOptions{}); !errors.Is(err, service.ErrInUse) {
		t.Fatalf("remove of a mounted volume after restart: %v", err)
	}
	s.Close()

	s = openStoreAt(t, root, service.Config{BootID: "boot-2"})
	if v, _ := s.GetVolume("v1"); v.Mounts != 0 {
		t.Fatalf("mounts after reboot: %d, want 0", v.Mounts)
	}
}

func TestStoreSecondOpenRefused(t *testing.T) {
	s, root := openStore(t)
	_ = s
	if _, err := service.Open(service.Config{Root: root}); !errors.Is(err, service.ErrBusy) {
		t.Fatalf("second open: %v", err)
	}
}

// An existing buttervolume tree is adopted as it is.
func TestStoreAdoptsExistingTree(t *testing.T) {
	root := filepath.Join(testenv.Btrfs(t), "bv")
	for _, d := range []string{"volumes", "snapshots"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	must(t, btrfs.Create(filepath.Join(root, "volumes/web")))
	writeFile(t, filepath.Join(root, "volumes/web/index.html"), "hi")
	snap := "web@2025-06-01T10:00:00.123456"
	must(t, btrfs.Snapshot(filepath.Join(root, "volumes/web"), filepath.Join(root, "snapshots", snap), true))
	must(t, btrfs.Snapshot(filepath.Join(root, "volumes/web"), filepath.Join(root, "snapshots", snap+"@host2"), true))
	must(t, os.Mkdir(filepath.Join(root, "volumes/plaindir"), 0o755))

	s := openStoreAt(t, root, service.Config{})
	if vols := s.ListVolumes(); len(vols) != 1 || vols[0].Name != "web" {
		t.Fatalf("volumes: %+v (a plain directory is not a volume)", vols)
	}
	names := snapshotNames(t, s, "web")
	if len(names) != 2 {
		t.Fatalf("snapshots: %v", names)
	}
	res, err := s.Restore("web", "", false)
	if err != nil || res.Snapshot != snap {
		t.Fatalf("restore latest: %+v %v", res, err)
	}
}

func TestStoreNestedSubvolumeReported(t *testing.T) {
	s, _ := openStore(t)
	v, _, _ := s.CreateVolume("outer", service.CreateOptions{})
	must(t, btrfs.Create(filepath.Join(v.Path, "inner")))
	_, err := s.CreateSnapshot("outer")
	if err == nil || !strings.Contains(err.Error(), "inner") {
		t.Fatalf("snapshot of a volume with a nested subvolume: %v", err)
	}
	if _, err := s.RemoveVolume("outer", service.RemoveOptions{NoFinalSnapshot: true}); err == nil || !strings.Contains(err.Error(), "inner") {
		t.Fatalf("remove of a volume with a nested subvolume: %v", err)
	}
	if _, err := s.GetVolume("outer"); err != nil {
		t.Fatalf("volume gone after a refused remove: %v", err)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// Get and List answer from memory while a slow operation holds the volume.
func TestStoreReadsDoNotWaitForOperations(t *testing.T) {
	root := filepath.Join(testenv.Btrfs(t), "root")
	reached, release := make(chan struct{}), make(chan struct{})
	s := openStoreAt(t, root, service.Config{AfterStep: func(op, step string) error {
		if step == "safety-created" {
			close(reached)
			<-release
		}
		return nil
	}})
	s.CreateVolume("busy", service.CreateOptions{})
	s.CreateSnapshot("busy")
	done := make(chan error, 1)
	go func() { _, err := s.Restore("busy", "", false); done <- err }()
	<-reached

	answered := make(chan struct{})
	go func() {
		s.GetVolume("busy")
		s.ListVolumes()
		s.ListSnapshots("busy")
		close(answered)
	}()
	select {
	case <-answered:
	case <-time.After(10 * time.Second):
		t.Fatal("Get/List waited behind a restore of the same volume")
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A kill during an atomic write in state/ssh/ leaves a temporary, maybe of a
// private key; the next start removes those of butterd's own files only.
func TestStoreRemovesReplicationTemps(t *testing.T) {
	s, root := openStore(t)
	if _, err := s.ClientKey(); err != nil {
		t.Fatal(err)
	}
	s.Close()
	dir := filepath.Join(root, "state", "ssh")
	stale := []string{".host_key.tmp-12", ".client_key.tmp-345", ".peers.json.tmp-6", ".shared.json.tmp-78", ".known_hosts.tmp-9"}
	kept := []string{".notes.tmp-1", ".client_key.tmp-x", "client_key"}
	for _, name := range append(slices.Clone(stale), kept[:2]...) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("secret"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	openStoreAt(t, root, service.Config{})
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, e := range entries {
		left = append(left, e.Name())
	}
	slices.Sort(kept)
	if !slices.Equal(left, kept) {
		t.Fatalf("state/ssh holds %v after a restart, want %v", left, kept)
	}
}
