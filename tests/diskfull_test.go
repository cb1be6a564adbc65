package tests

import (
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"butterd/dbusapi"
	"butterd/tests/testenv"
)

// noSpaceText is what every operation refused for lack of space says.
const noSpaceText = "no space left on the pool (ENOSPC)"

// fullPoolOps are the changing operations tried on a full pool. Each
// returns "" when it succeeded, else its error: the D-Bus error name and
// message, or the plugin's Err.
func fullPoolOps(e *poolEnv, snap, stream string) []struct {
	name string
	do   func() string
} {
	dbusErr := func(err error) string {
		if err == nil {
			return ""
		}
		return dbusapi.ErrorName(err) + ": " + dbusapi.Message(err)
	}
	plugin := func(path string, body any) string {
		if st, m := e.d.Call(path, body); st != 200 {
			s, _ := m["Err"].(string)
			return s
		}
		return ""
	}
	return []struct {
		name string
		do   func() string
	}{
		{"CreateVolume", func() string { _, err := e.c.CreateVolume("new1", nil); return dbusErr(err) }},
		{"CreateVolume copyonwrite=false", func() string {
			_, err := e.c.CreateVolume("new2", map[string]string{"copyonwrite": "false"})
			return dbusErr(err)
		}},
		{"CreateVolume from=SNAPSHOT", func() string {
			_, err := e.c.CreateVolume("new3", map[string]string{"from": snap})
			return dbusErr(err)
		}},
		{"CreateSnapshot", func() string { _, err := e.c.CreateSnapshot("app"); return dbusErr(err) }},
		{"CloneVolume", func() string { _, err := e.c.CloneVolume("app", "clone1"); return dbusErr(err) }},
		{"RestoreSnapshot over the volume", func() string { _, _, _, err := e.c.Restore(snap, "", 0); return dbusErr(err) }},
		{"RestoreSnapshot to a new volume", func() string { _, _, _, err := e.c.Restore(snap, "restored", 0); return dbusErr(err) }},
		{"ImportSnapshot", func() string { return e.importFrom(stream) }},
		{"plugin Create", func() string { return plugin("/VolumeDriver.Create", map[string]any{"Name": "new4"}) }},
		{"plugin Mount", func() string { return plugin("/VolumeDriver.Mount", map[string]any{"Name": "app", "ID": "m1"}) }},
	}
}

// preparePool makes volume app with a file and a snapshot, and a stream
// (of a snapshot of volume src, removed afterwards) to import. It returns
// the snapshot of app and the stream's path.
func (e *poolEnv) preparePool() (string, string) {
	e.t.Helper()
	if _, err := e.c.CreateVolume("app", nil); err != nil {
		e.t.Fatal(err)
	}
	writeFile(e.t, filepath.Join(e.root, "volumes/app/data"), "before")
	snap, err := e.c.CreateSnapshot("app")
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.c.CreateVolume("src", nil); err != nil {
		e.t.Fatal(err)
	}
	writeFile(e.t, filepath.Join(e.root, "volumes/src/f"), "to import")
	s0, err := e.c.CreateSnapshot("src")
	if err != nil {
		e.t.Fatal(err)
	}
	stream := e.exportTo(s0)
	if err := e.c.RemoveSnapshot(s0); err != nil {
		e.t.Fatal(err)
	}
	return snap, stream
}

// checkReads checks that the reads answer while the pool is full.
func (e *poolEnv) checkReads(snap string) {
	e.t.Helper()
	if p, err := e.c.GetVolume("app"); err != nil || p != dbusapi.VolumePath("app") {
		e.t.Errorf("GetVolume: %q, %v", p, err)
	}
	if props, err := e.c.Properties(dbusapi.VolumePath("app"), dbusapi.VolumeIface); err != nil || props["UUID"].Value() == "" {
		e.t.Errorf("volume properties: %v, %v", props, err)
	}
	if _, err := e.c.GetSnapshot(snap); err != nil {
		e.t.Errorf("GetSnapshot: %v", err)
	}
	if _, _, del, keep, err := e.c.Purge("app", "1h", true, time.Time{}); err != nil || len(del)+len(keep) == 0 {
		e.t.Errorf("Purge dry run: %v %v %v", del, keep, err)
	}
	if st, m := e.d.Call("/VolumeDriver.List", map[string]any{}); st != 200 || len(m["Volumes"].([]any)) < 2 {
		e.t.Errorf("plugin List: %d %v", st, m)
	}
	if st, m := e.d.Call("/VolumeDriver.Get", map[string]any{"Name": "app"}); st != 200 || m["Volume"] == nil {
		e.t.Errorf("plugin Get: %d %v", st, m)
	}
	if st, m := e.d.Call("/VolumeDriver.Path", map[string]any{"Name": "app"}); st != 200 || m["Mountpoint"] != filepath.Join(e.root, "volumes/app") {
		e.t.Errorf("plugin Path: %d %v", st, m)
	}
	if got := readFile(e.t, filepath.Join(e.root, "volumes/app/data")); got != "before" {
		e.t.Errorf("volume app holds %q", got)
	}
	// Export only reads the pool.
	e.exportTo(snap)
}

// On a pool with no space left (data and metadata share one pool, filled
// with a file), every changing operation fails with a clear error naming
// the lack of space, leaves nothing half-done and changes nothing; reads
// keep answering; once space is freed, everything works again.
func TestDiskFull(t *testing.T) {
	mnt := testenv.BtrfsWith(t, "256M", "--mixed")
	e := startPool(t, mnt)
	snap, stream := e.preparePool()
	before := e.consistent("before filling")

	fill := fillPool(t, mnt, "fill")
	probe := filepath.Join(mnt, "probe")
	if err := os.Mkdir(probe, 0o700); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("after filling, mkdir %s: %v; want ENOSPC", probe, err)
	}
	for _, op := range fullPoolOps(e, snap, stream) {
		msg := op.do()
		if msg == "" {
			t.Errorf("%s succeeded on a full pool", op.name)
		} else if !strings.Contains(msg, noSpaceText) {
			t.Errorf("%s on a full pool: %q does not say %q", op.name, msg, noSpaceText)
		} else if strings.HasPrefix(msg, "io.butterd") && !strings.HasPrefix(msg, dbusapi.ErrNoSpace+": ") {
			t.Errorf("%s on a full pool: D-Bus error %q, want %s", op.name, msg, dbusapi.ErrNoSpace)
		} else {
			t.Logf("%s: %s", op.name, msg)
		}
		if got := e.consistent("after " + op.name); !reflect.DeepEqual(got, before) {
			t.Errorf("after %s on a full pool:\n got  %+v\n want %+v", op.name, got, before)
		}
	}
	e.checkReads(snap)

	// Space is freed the way a user would: removing a volume. Its final
	// snapshot cannot be taken, and the refusal says how to go without.
	if _, err := e.c.RemoveVolume("src", 0); err == nil || !strings.Contains(dbusapi.Message(err), noSpaceText) ||
		!strings.Contains(dbusapi.Message(err), `or remove volume "src" without its final snapshot`) {
		t.Errorf("RemoveVolume on a full pool: %v", err)
	}
	e.consistent("after RemoveVolume on a full pool")
	if _, err := e.c.RemoveVolume("src", dbusapi.RemoveNoFinalSnapshot); err != nil {
		t.Errorf("RemoveVolume without a final snapshot on a full pool: %v", err)
	}
	if st := e.consistent("after RemoveVolume without a final snapshot"); slices.Contains(st.Volumes, "src") {
		t.Errorf("volume src is still there: %q", st.Volumes)
	}

	if err := os.Remove(fill); err != nil {
		t.Fatal(err)
	}
	syncFS(t, mnt)
	for _, op := range fullPoolOps(e, snap, stream) {
		if msg := op.do(); msg != "" {
			t.Errorf("%s after space was freed: %s", op.name, msg)
		}
		e.consistent("after " + op.name + " with space")
	}
	e.checkReads(snap)
}

// A pool nearly full: a stream larger than what is left fails to import
// with a clear error and leaves nothing in received/ or the journal; a
// pool whose data is full but whose metadata is not (the default layout)
// lets each operation either work or fail clearly, never half-done.
func TestDiskNearlyFull(t *testing.T) {
	t.Run("import larger than the space left", func(t *testing.T) {
		mnt := testenv.BtrfsWith(t, "256M", "--mixed")
		e := startPool(t, mnt)
		if _, err := e.c.CreateVolume("big", nil); err != nil {
			t.Fatal(err)
		}
		data := make([]byte, 16<<20)
		rand.Read(data)
		if err := os.WriteFile(filepath.Join(e.root, "volumes/big/data"), data, 0o600); err != nil {
			t.Fatal(err)
		}
		snap, err := e.c.CreateSnapshot("big")
		if err != nil {
			t.Fatal(err)
		}
		stream := e.exportTo(snap)
		if err := e.c.RemoveSnapshot(snap); err != nil {
			t.Fatal(err)
		}
		reserve := filepath.Join(mnt, "reserve")
		if err := os.WriteFile(reserve, data[:2<<20], 0o600); err != nil {
			t.Fatal(err)
		}
		fillPool(t, mnt, "fill")
		if err := os.Remove(reserve); err != nil {
			t.Fatal(err)
		}
		syncFS(t, mnt)
		before := e.consistent("before the import")
		if msg := e.importFrom(stream); !strings.Contains(msg, noSpaceText) {
			t.Errorf("import of %d MiB into about 2 MiB: %q, want it to say %q", len(data)>>20, msg, noSpaceText)
		} else {
			t.Logf("import: %s", msg)
		}
		if got := e.consistent("after the import"); !reflect.DeepEqual(got, before) {
			t.Errorf("after the import:\n got  %+v\n want %+v", got, before)
		}
	})
	t.Run("data full, metadata not", func(t *testing.T) {
		mnt := testenv.Btrfs(t)
		e := startPool(t, mnt)
		snap, stream := e.preparePool()
		fillPool(t, mnt, "fill")
		for _, op := range fullPoolOps(e, snap, stream) {
			msg := op.do()
			if msg != "" && !strings.Contains(msg, noSpaceText) {
				t.Errorf("%s with the data full: %q does not say %q", op.name, msg, noSpaceText)
			}
			t.Logf("%s: %q", op.name, msg)
			e.consistent("after " + op.name)
		}
		e.checkReads(snap)
	})
}
