package tests

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"butterd/btrfs"
	"butterd/dbusapi"
	"butterd/service"
	"butterd/tests/testenv"
	"butterd/units"
)

// Kill tests. A real butterd, started by the test
// on a real loop-mounted BTRFS and a private bus with the real policy, runs
// a multi-step operation for a D-Bus call and is killed with SIGKILL at a
// random moment of it; its children (btrfs receive) die with it. butterd is
// started again on the same data root, and what a user would check is
// checked after every restart:
//
//   - no volume is missing and the data written before the operation is
//     intact (checksums of every file of every volume and snapshot); the
//     operation's own target holds either what it held before or what the
//     operation makes, and what the operation makes is whole;
//   - every entry of snapshots/ is a read-only subvolume and every entry of
//     volumes/ a subvolume, and the index lists exactly what is on disk;
//   - received/ is empty, no `.`-prefixed temporary is left in volumes/,
//     snapshots/, state/ or the unit directory, and the journal is empty;
//   - mount references keep their counts (and, at the end, their ids: each
//     id unmounts its own references);
//   - every butterd-sched-* unit parses, comes with its pair as butterd
//     renders it, is enabled and active in systemd, and systemd has loaded
//     it as it is on disk.
//
// The operations: restore (in place over a mounted volume, and into a new
// volume), clone, import of a 16 MiB send stream, purge of 24 snapshots,
// and schedule set, change and removal, with a real systemd booted in
// nspawn that butterd, on the host, reaches over the container's system
// bus (one boot for all of them); and replication with a second butterd
// (kill_repl_test.go): a sync pulled by the killed butterd, and a snapshot
// pushed to it.
//
// The moment: each operation runs twice uninterrupted and is timed; each
// kill then comes after a delay drawn uniformly below 1.25 times the
// shorter run, counted from the moment the call is sent (every other kill
// of a sync comes instead once its merge has examined a number of files
// drawn at random). The generator is seeded with BUTTERD_KILL_SEED, or the
// clock; the seed is printed so that a run can be repeated. BUTTERD_KILLS changes the number of kills per
// operation. `make killtest` runs this test alone and prints the counts.

// killsPerOp is the default number of kills per operation: enough to land
// in every step many times over, few enough for the file to take about a
// minute on a loaded 2-core machine.
const killsPerOp = 24

// killLate is how far past the uninterrupted duration kills may land.
const killLate = 1.25

// killOp is one multi-step operation to kill.
type killOp struct {
	name   string
	fsSize string
	// kills is the number of kills (killsPerOp when 0).
	kills int
	// boot, when set, runs before butterd's first start (to add flags).
	boot func(e *killEnv)
	// setup runs once, with butterd up; checkInvariants runs next.
	setup func(e *killEnv)
	// prepare runs before each run, with butterd up (it may restart it).
	prepare func(e *killEnv, i int)
	// run starts the i-th operation and returns at once.
	run func(e *killEnv, i int) *flight
	// aim, when set, may pick the moment of the i-th kill from what the
	// operation is doing instead of the delay drawn: it returns true once
	// that moment has come, or false at once to keep the delay.
	aim func(e *killEnv, i int, f *flight) bool
	// check compares the disk after the i-th operation (killed or not)
	// with the disk before it, after checkInvariants; finished says the
	// client saw it succeed.
	check func(e *killEnv, i int, before, after killState, finished bool)
}

func TestKill(t *testing.T) {
	testenv.Root(t)
	testenv.Command(t, "btrfs")
	seed := time.Now().UnixNano()
	if s := os.Getenv("BUTTERD_KILL_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseInt(s, 10, 64); err != nil {
			t.Fatalf("BUTTERD_KILL_SEED=%q: %v", s, err)
		}
	}
	kills := 0
	if s := os.Getenv("BUTTERD_KILLS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("BUTTERD_KILLS=%q: want a positive number", s)
		}
		kills = n
	}
	t.Logf("seed %d (BUTTERD_KILL_SEED=%d repeats this run)", seed, seed)
	testenv.BuildButterd(t)
	var mu sync.Mutex
	var summary []string
	t.Cleanup(func() { t.Logf("kills survived: %s; seed %d", strings.Join(summary, ", "), seed) })
	run := func(t *testing.T, idx int, op killOp) {
		n := cmp.Or(kills, op.kills, killsPerOp)
		var res killResult
		defer func() {
			line := fmt.Sprintf("%s %d/%d (%d under way)", op.name, res.survived, n, res.underWay)
			if t.Failed() {
				line += " FAILED"
			}
			mu.Lock()
			summary = append(summary, line)
			mu.Unlock()
		}()
		runKills(t, op, rand.New(rand.NewPCG(uint64(seed), uint64(idx))), n, &res)
	}
	// Replication first, one case at a time: each keeps two butterds busy.
	for idx, op := range []killOp{syncKillOp(), receiveKillOp()} {
		t.Run(op.name, func(t *testing.T) { run(t, idx+5, op) })
	}
	// The schedules, which wait on systemd most of the time, run beside
	// the other operations, each on its own BTRFS, bus and butterd.
	t.Run("schedule", func(t *testing.T) {
		t.Parallel()
		run(t, 0, scheduleKillOp())
	})
	t.Run("storage", func(t *testing.T) {
		t.Parallel()
		for idx, op := range []killOp{restoreKillOp(), cloneKillOp(), importKillOp(), purgeKillOp()} {
			t.Run(op.name, func(t *testing.T) { run(t, idx+1, op) })
		}
	})
}

// killResult counts the kills survived and how many of them came while
// the client still waited for the operation.
type killResult struct{ survived, underWay int }

// runKills runs op twice uninterrupted, then kills butterd during it kills
// times, checking after each restart.
func runKills(t *testing.T, op killOp, rng *rand.Rand, kills int, res *killResult) {
	e := newKillEnv(t, rng, op.fsSize)
	if op.boot != nil {
		op.boot(e)
	}
	e.start()
	e.createVolume("held")
	e.mount("held", "c1")
	e.mount("held", "c1")
	e.mount("held", "c2")
	op.setup(e)
	e.checkInvariants()

	// Runs 0 and 1 are uninterrupted; the shorter one times the kills (the
	// first may do more, such as making the schedules' target).
	var took time.Duration
	for i := range 2 {
		op.prepare(e, i)
		before := e.state()
		start := time.Now()
		if err := op.run(e, i).wait(); err != nil {
			t.Fatalf("%s, uninterrupted: %v", op.name, dbusapi.Message(err))
		}
		if d := time.Since(start); i == 0 || d < took {
			took = d
		}
		// Checked after a restart too, when nothing is being written.
		e.stop()
		e.start()
		e.checkInvariants()
		op.check(e, i, before, e.state(), true)
		if t.Failed() {
			t.FailNow()
		}
	}
	limit := time.Duration(float64(took) * killLate)
	t.Logf("%s takes %v uninterrupted: kills within %v of the call", op.name, took.Round(time.Microsecond), limit.Round(time.Microsecond))

	for i := 2; i < kills+2; i++ {
		op.prepare(e, i)
		before := e.state()
		delay := time.Duration(rng.Int64N(int64(limit) + 1))
		start := time.Now()
		f := op.run(e, i)
		if op.aim != nil && op.aim(e, i, f) {
			delay = time.Since(start)
		} else {
			time.Sleep(time.Until(start.Add(delay)))
		}
		e.kill()
		err := f.wait()
		if err != nil {
			res.underWay++
		}
		e.start()
		e.checkInvariants()
		op.check(e, i, before, e.state(), err == nil)
		if t.Failed() {
			t.Fatalf("%s: kill %d of %d, %v after the call (the call answered: %v)", op.name, i-1, kills, delay, err == nil)
		}
		res.survived++
	}
	e.checkMountIDs()
	t.Logf("%s: %d kills survived, %d of them while the client waited for the operation", op.name, res.survived, res.underWay)
	if res.underWay == 0 {
		t.Errorf("%s: none of the %d kills came while the operation was under way: nothing was tried", op.name, kills)
	}
}

// killEnv is a data root on its own BTRFS, a private bus, a client on it
// and the butterd currently serving them.
type killEnv struct {
	t    *testing.T
	rng  *rand.Rand
	mnt  string // the BTRFS mount point
	root string // butterd's data root in it
	sock string
	bus  *testenv.Bus
	c    *dbusapi.Client
	d    *testenv.Daemon
	args []string // butterd's flags
	// mounts are the mount references taken: volume -> id -> count.
	mounts map[string]map[string]int
	// unitDir and m are the unit directory and the systemd of schedules;
	// scheds are the schedules checkInvariants last found, by key.
	unitDir string
	m       *testenv.Machine
	scheds  map[string]units.Schedule
}

func newKillEnv(t *testing.T, rng *rand.Rand, fsSize string) *killEnv {
	t.Helper()
	e := &killEnv{t: t, rng: rng, mounts: map[string]map[string]int{}}
	e.mnt = testenv.BtrfsSize(t, fsSize)
	e.root = filepath.Join(e.mnt, "root")
	e.sock = filepath.Join(t.TempDir(), "btrfs.sock")
	e.bus = testenv.StartBus(t)
	e.args = []string{"--log-level=info"}
	conn, err := dbus.Connect(e.bus.Address)
	if err != nil {
		t.Fatalf("connect to the bus %s: %v", e.bus.Address, err)
	}
	e.c = dbusapi.NewClient(conn)
	t.Cleanup(func() { e.c.Close() })
	return e
}

func (e *killEnv) start() {
	e.t.Helper()
	e.d = testenv.StartButterdWith(e.t, e.root, e.sock, testenv.ButterdOptions{Bus: e.bus, Args: e.args})
}

// stop stops butterd cleanly.
func (e *killEnv) stop() {
	e.t.Helper()
	if err := e.d.Stop(); err != nil {
		e.t.Fatalf("butterd did not stop cleanly: %v", err)
	}
	e.waitOffBus()
}

// kill sends SIGKILL and waits until butterd is gone from the bus and no
// btrfs receive of its runs any more: they die with it (PDEATHSIG).
func (e *killEnv) kill() {
	e.t.Helper()
	e.d.Kill()
	e.waitOffBus()
	waitNoReceive(e.t, filepath.Join(e.root, "received"))
}

// waitOffBus waits until butterd's bus name has no owner, so that the next
// butterd can take it.
func (e *killEnv) waitOffBus() {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var has bool
		if err := e.c.Conn().BusObject().Call("org.freedesktop.DBus.NameHasOwner", 0, dbusapi.BusName).Store(&has); err != nil {
			e.t.Fatalf("NameHasOwner: %v", err)
		}
		if !has {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s still has an owner 10 s after butterd died", dbusapi.BusName)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// createVolume creates a volume over D-Bus and writes a few files into it.
func (e *killEnv) createVolume(name string) {
	e.t.Helper()
	if _, err := e.c.CreateVolume(name, nil); err != nil {
		e.t.Fatalf("CreateVolume %s: %v", name, dbusapi.Message(err))
	}
	e.scribble(filepath.Join(e.root, "volumes", name), 4<<10)
}

// scribble writes new random data into a directory: one file replaced,
// one added, one in a subdirectory.
func (e *killEnv) scribble(dir string, size int) {
	e.t.Helper()
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(e.rng.Uint32())
	}
	must(e.t, os.MkdirAll(filepath.Join(dir, "sub"), 0o755))
	must(e.t, os.WriteFile(filepath.Join(dir, "data"), data, 0o644))
	must(e.t, os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%08x", e.rng.Uint32())), data[:size/4], 0o600))
	must(e.t, os.WriteFile(filepath.Join(dir, "sub", "g"), data[size/2:], 0o644))
}

// mount takes a mount reference through the plugin, as Docker does.
func (e *killEnv) mount(volume, id string) {
	e.t.Helper()
	if code, resp := e.d.Call("/VolumeDriver.Mount", map[string]string{"Name": volume, "ID": id}); code != 200 || resp["Err"] != nil {
		e.t.Fatalf("mount %s as %s: %d %v", volume, id, code, resp)
	}
	if e.mounts[volume] == nil {
		e.mounts[volume] = map[string]int{}
	}
	e.mounts[volume][id]++
}

// waitJob waits for a job and returns an error unless it is done.
func (e *killEnv) waitJob(id uint32) error {
	j, err := e.c.WaitJob(id, 10*time.Millisecond, nil)
	if err != nil {
		return err
	}
	if j.Result != "done" {
		return fmt.Errorf("job %d %s: %s", id, j.Result, j.Error)
	}
	return nil
}

// flight is an operation under way: done is closed once the client has its
// outcome (the answer, or for a job the job's result), err.
type flight struct {
	done chan struct{}
	err  error
}

func fly(fn func() error) *flight {
	f := &flight{done: make(chan struct{})}
	go func() {
		defer close(f.done)
		f.err = fn()
	}()
	return f
}

func (f *flight) wait() error {
	<-f.done
	return f.err
}

// killState is what is on disk: a checksum of the tree of each volume and
// snapshot.
type killState struct {
	volumes, snapshots map[string]string
}

func (e *killEnv) state() killState {
	e.t.Helper()
	return killState{
		volumes:   treeSums(e.t, filepath.Join(e.root, "volumes")),
		snapshots: treeSums(e.t, filepath.Join(e.root, "snapshots")),
	}
}

// treeSums sums each entry of dir but butterd's temporaries.
func treeSums(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	must(t, err)
	out := map[string]string{}
	for _, de := range entries {
		if !strings.HasPrefix(de.Name(), ".") {
			out[de.Name()] = treeSum(t, filepath.Join(dir, de.Name()))
		}
	}
	return out
}

// treeSum is a checksum of a tree's names, types, permissions, file
// contents and symlink targets.
func treeSum(t *testing.T, root string) string {
	t.Helper()
	h := sha256.New()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		fmt.Fprintf(h, "%q %v ", rel, info.Mode())
		switch {
		case info.Mode().IsRegular():
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			_, err = io.Copy(h, f)
			f.Close()
			if err != nil {
				return err
			}
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			io.WriteString(h, target)
		}
		io.WriteString(h, "\n")
		return nil
	})
	must(t, err)
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// keptExcept requires every volume and snapshot of before to be there
// after with the same data, but those in mayChange (which may differ or
// be gone), and nothing new but the names in mayAppear. It returns the new
// names.
func (e *killEnv) keptExcept(before, after killState, mayChange, mayAppear []string) []string {
	e.t.Helper()
	var added []string
	for _, kind := range []struct {
		what          string
		before, after map[string]string
	}{{"volume", before.volumes, after.volumes}, {"snapshot", before.snapshots, after.snapshots}} {
		for name, sum := range kind.before {
			if slices.Contains(mayChange, name) {
				continue
			}
			switch got, ok := kind.after[name]; {
			case !ok:
				e.t.Errorf("%s %s is missing", kind.what, name)
			case got != sum:
				e.t.Errorf("%s %s changed: its data differs from before", kind.what, name)
			}
		}
		for name := range kind.after {
			if _, ok := kind.before[name]; ok {
				continue
			}
			if !slices.Contains(mayAppear, name) {
				e.t.Errorf("%s %s appeared", kind.what, name)
			}
			added = append(added, name)
		}
	}
	slices.Sort(added)
	return added
}

// checkMade requires name, which the operation makes, to be absent from
// sums or to hold want, and to be there if the client saw the operation
// succeed. It reports whether it is there.
func (e *killEnv) checkMade(what string, sums map[string]string, name, want string, finished bool) bool {
	e.t.Helper()
	got, ok := sums[name]
	switch {
	case ok && got != want:
		e.t.Errorf("%s %s is there but does not hold the data the operation puts there", what, name)
	case !ok && finished:
		e.t.Errorf("the call answered, but %s %s is missing", what, name)
	}
	return ok
}

// checkInvariants checks what holds after every restart, whatever the
// operation.
func (e *killEnv) checkInvariants() {
	e.t.Helper()
	t := e.t
	if entries, err := os.ReadDir(filepath.Join(e.root, "received")); err != nil || len(entries) > 0 {
		t.Errorf("received/ holds %v (%v): want it empty after the restart", dirNames(entries), err)
	}
	for _, dir := range []string{"volumes", "snapshots", "state", "state/journal"} {
		entries, err := os.ReadDir(filepath.Join(e.root, dir))
		must(t, err)
		for _, de := range entries {
			if strings.HasPrefix(de.Name(), ".") || dir == "state/journal" {
				t.Errorf("left over after the restart: %s/%s", dir, de.Name())
			}
		}
	}
	vols, err := e.c.ListVolumes()
	if err != nil {
		t.Fatalf("ListVolumes: %v", dbusapi.Message(err))
	}
	indexVols := map[string]int{}
	for _, v := range vols {
		indexVols[v.Name] = int(v.Mounts)
	}
	snaps, err := e.c.ListSnapshots("")
	if err != nil {
		t.Fatalf("ListSnapshots: %v", dbusapi.Message(err))
	}
	var indexSnaps []string
	for _, s := range snaps {
		indexSnaps = append(indexSnaps, s.Name)
	}
	e.checkDiskIsIndex("volumes", slices.Sorted(mapKeys(indexVols)), false)
	e.checkDiskIsIndex("snapshots", slices.Sorted(slices.Values(indexSnaps)), true)
	for vol, got := range indexVols {
		want := 0
		for _, n := range e.mounts[vol] {
			want += n
		}
		if got != want {
			t.Errorf("volume %s has %d mount references, want %d", vol, got, want)
		}
	}
	for vol := range e.mounts {
		if _, ok := indexVols[vol]; !ok {
			t.Errorf("mounted volume %s is missing", vol)
		}
	}
	if e.unitDir != "" {
		e.scheds = e.checkUnits()
	}
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// checkDiskIsIndex requires the entries of dir (all subvolumes, read-only
// if asked) to be the names the index lists.
func (e *killEnv) checkDiskIsIndex(dir string, index []string, readOnly bool) {
	e.t.Helper()
	entries, err := os.ReadDir(filepath.Join(e.root, dir))
	must(e.t, err)
	var disk []string
	for _, de := range entries {
		path := filepath.Join(e.root, dir, de.Name())
		info, err := btrfs.GetInfo(path)
		switch {
		case err != nil || !isSubvol(path):
			e.t.Errorf("%s/%s is not a subvolume: %v", dir, de.Name(), err)
		case readOnly && !info.ReadOnly:
			e.t.Errorf("%s/%s is not read-only: a half-made snapshot", dir, de.Name())
		}
		disk = append(disk, de.Name())
	}
	if !slices.Equal(disk, index) {
		e.t.Errorf("%s/ holds %v but the index lists %v", dir, disk, index)
	}
}

func isSubvol(path string) bool {
	ok, err := btrfs.IsSubvolume(path)
	return err == nil && ok
}

func dirNames(entries []os.DirEntry) []string {
	var out []string
	for _, de := range entries {
		out = append(out, de.Name())
	}
	return out
}

// checkMountIDs unmounts each mount id as many times as it was mounted and
// requires each unmount to drop one reference: the ids survived too.
func (e *killEnv) checkMountIDs() {
	e.t.Helper()
	for vol, ids := range e.mounts {
		for id, n := range ids {
			for range n {
				before := e.mountCount(vol)
				if code, resp := e.d.Call("/VolumeDriver.Unmount", map[string]string{"Name": vol, "ID": id}); code != 200 || resp["Err"] != nil {
					e.t.Fatalf("unmount %s as %s: %d %v", vol, id, code, resp)
				}
				if after := e.mountCount(vol); after != before-1 {
					e.t.Errorf("unmount of %s as %s: %d references, then %d: the id was lost", vol, id, before, after)
				}
			}
		}
	}
}

func (e *killEnv) mountCount(volume string) int {
	e.t.Helper()
	vols, err := e.c.ListVolumes()
	must(e.t, err)
	for _, v := range vols {
		if v.Name == volume {
			return int(v.Mounts)
		}
	}
	e.t.Fatalf("volume %s is missing", volume)
	return 0
}

// restoreKillOp restores a snapshot of a mounted volume over it (force)
// on even runs, into a new volume on odd ones.
func restoreKillOp() killOp {
	var source string
	target := func(i int) string {
		if i%2 == 1 {
			return fmt.Sprintf("copy%d", i)
		}
		return "app"
	}
	return killOp{
		name:   "restore",
		fsSize: "256M",
		setup: func(e *killEnv) {
			e.createVolume("app")
			e.mount("app", "m1")
			var err error
			if source, err = e.c.CreateSnapshot("app"); err != nil {
				e.t.Fatalf("CreateSnapshot app: %v", dbusapi.Message(err))
			}
		},
		prepare: func(e *killEnv, i int) { e.scribble(filepath.Join(e.root, "volumes", "app"), 64<<10) },
		run: func(e *killEnv, i int) *flight {
			return fly(func() error { _, _, _, err := e.c.Restore(source, target(i), dbusapi.RestoreForce); return err })
		},
		check: func(e *killEnv, i int, before, after killState, finished bool) {
			t, vol := e.t, target(i)
			if vol != "app" {
				e.keptExcept(before, after, nil, []string{vol})
				e.checkMade("volume", after.volumes, vol, before.snapshots[source], finished)
				return
			}
			// A safety snapshot may appear, with any name.
			var mayAppear []string
			for name := range after.snapshots {
				mayAppear = append(mayAppear, name)
			}
			added := e.keptExcept(before, after, []string{"app"}, mayAppear)
			switch after.volumes["app"] {
			case before.snapshots[source]:
				if len(added) != 1 || after.snapshots[added[0]] != before.volumes["app"] {
					t.Errorf("app restored; new snapshots %v: want one safety snapshot holding the replaced data", added)
				}
			case before.volumes["app"]:
				if finished {
					t.Errorf("the restore answered, but app holds its old data")
				}
				if len(added) != 0 {
					t.Errorf("restore rolled back, but snapshots %v appeared", added)
				}
			default:
				t.Errorf("app holds neither its old data nor the snapshot's (missing: %v)", after.volumes["app"] == "")
			}
		},
	}
}

// cloneKillOp clones a mounted volume into a new volume each run.
func cloneKillOp() killOp {
	clone := func(i int) string { return fmt.Sprintf("clone%d", i) }
	return killOp{
		name:   "clone",
		fsSize: "256M",
		setup: func(e *killEnv) {
			e.createVolume("src")
			e.mount("src", "m1")
		},
		prepare: func(e *killEnv, i int) { e.scribble(filepath.Join(e.root, "volumes", "src"), 64<<10) },
		run: func(e *killEnv, i int) *flight {
			return fly(func() error { _, err := e.c.CloneVolume("src", clone(i)); return err })
		},
		check: func(e *killEnv, i int, before, after killState, finished bool) {
			e.keptExcept(before, after, nil, []string{clone(i)})
			e.checkMade("volume", after.volumes, clone(i), before.volumes["src"], finished)
		},
	}
}

// importKillOp imports a 16 MiB full send stream each run, the snapshot
// of the run before being removed first.
func importKillOp() killOp {
	var stream, name, sum, uuid string
	return killOp{
		name:   "import",
		fsSize: "512M",
		setup: func(e *killEnv) {
			src := filepath.Join(e.mnt, "source")
			must(e.t, btrfs.Create(src))
			for range 4 {
				e.scribble(src, 4<<20)
			}
			name = service.SnapshotName("app", time.Now())
			snap := filepath.Join(e.mnt, name)
			must(e.t, btrfs.Snapshot(src, snap, true))
			sum, uuid = treeSum(e.t, snap), getInfo(e.t, snap).UUID
			stream = filepath.Join(e.t.TempDir(), "stream")
			f, err := os.Create(stream)
			must(e.t, err)
			must(e.t, btrfs.Send(snap, "", f))
			must(e.t, f.Close())
		},
		prepare: func(e *killEnv, i int) {
			if _, err := os.Stat(filepath.Join(e.root, "snapshots", name)); err == nil {
				if err := e.c.RemoveSnapshot(name); err != nil {
					e.t.Fatalf("RemoveSnapshot %s: %v", name, dbusapi.Message(err))
				}
			}
		},
		run: func(e *killEnv, i int) *flight {
			f, err := os.Open(stream)
			must(e.t, err)
			return fly(func() error {
				id, _, err := e.c.ImportSnapshot(f)
				f.Close()
				if err != nil {
					return err
				}
				return e.waitJob(id)
			})
		},
		check: func(e *killEnv, i int, before, after killState, finished bool) {
			e.keptExcept(before, after, nil, []string{name})
			if e.checkMade("snapshot", after.snapshots, name, sum, finished) {
				if info := getInfo(e.t, filepath.Join(e.root, "snapshots", name)); info.ReceivedUUID != uuid {
					e.t.Errorf("imported snapshot %s has received UUID %q, want %s", name, info.ReceivedUUID, uuid)
				}
			}
		},
	}
}

// purgeKillOp purges a volume's snapshots with pattern 1h: each run,
// butterd is stopped, 24 snapshots older than that are made on disk (as
// hand-made or received ones are) and butterd started again, and all but
// the volume's newest snapshot are deleted.
func purgeKillOp() killOp {
	const pattern, perRun = "1h", 24
	var plan []string
	return killOp{
		name:   "purge",
		fsSize: "256M",
		setup:  func(e *killEnv) { e.createVolume("pv") },
		prepare: func(e *killEnv, i int) {
			e.stop()
			vol := filepath.Join(e.root, "volumes", "pv")
			base := time.Now().Add(-2 * time.Hour)
			for k := range perRun {
				at := base.Add(-time.Duration(k)*time.Minute - time.Duration(i)*time.Second)
				must(e.t, btrfs.Snapshot(vol, filepath.Join(e.root, "snapshots", service.SnapshotName("pv", at)), true))
			}
			e.start()
			_, _, del, _, err := e.c.Purge("pv", pattern, true, time.Time{})
			if err != nil {
				e.t.Fatalf("Purge dry run: %v", dbusapi.Message(err))
			}
			plan = purgeRowNames(del)
			if len(plan) < perRun-1 {
				e.t.Fatalf("the plan deletes %v: want at least %d snapshots", plan, perRun-1)
			}
		},
		run: func(e *killEnv, i int) *flight {
			return fly(func() error {
				id, _, _, _, err := e.c.Purge("pv", pattern, false, time.Time{})
				if err != nil {
					return err
				}
				return e.waitJob(id)
			})
		},
		check: func(e *killEnv, i int, before, after killState, finished bool) {
			e.keptExcept(before, after, plan, nil)
			if !finished {
				return
			}
			for _, name := range plan {
				if _, ok := after.snapshots[name]; ok {
					e.t.Errorf("the purge answered done, but %s is still there", name)
				}
			}
		},
	}
}

// scheduleKillOp sets, changes or removes a snapshot or purge schedule of
// one of two volumes each run, picked at random, with butterd on the host
// and a real systemd in nspawn whose /etc/systemd/system is butterd's unit
// directory.
func scheduleKillOp() killOp {
	var before map[string]units.Schedule // by key, before the run
	var want units.Schedule              // the run's schedule (Every 0: removed)
	return killOp{
		name:   "schedule",
		fsSize: "256M",
		kills:  16, // each restart resolves through systemd: 2 s or more
		boot: func(e *killEnv) {
			e.unitDir = filepath.Join(e.t.TempDir(), "system")
			if out, err := exec.Command("cp", "-a", "/etc/systemd/system", e.unitDir).CombinedOutput(); err != nil {
				e.t.Fatalf("copy /etc/systemd/system: %v: %s", err, out)
			}
			e.m = testenv.BootSystemd(e.t, testenv.Bind{Src: e.unitDir, Dst: "/etc/systemd/system"})
			e.args = append(e.args, "--unit-dir", e.unitDir, "--systemd-bus", e.m.BusAddress())
		},
		setup: func(e *killEnv) {
			e.createVolume("s1")
			e.createVolume("s2")
		},
		prepare: func(e *killEnv, i int) {
			before = e.scheds
			if _, err := os.Stat(filepath.Join(e.unitDir, units.TargetName)); err == nil && len(before) == 0 && e.rng.IntN(2) == 0 {
				// As on a machine where no schedule was ever set.
				e.m.MustRun("sh", "-c", "systemctl disable --now "+units.TargetName+" && rm /etc/systemd/system/"+units.TargetName+" && systemctl daemon-reload")
			}
			want = units.Schedule{
				Action: []string{units.ActionSnapshot, units.ActionPurge}[e.rng.IntN(2)],
				Volume: []string{"s1", "s2"}[e.rng.IntN(2)],
			}
			if want.Action == units.ActionPurge {
				want.Arg = "1d"
			}
			old, exists := before[want.Key()]
			if exists && e.rng.IntN(2) == 0 {
				return // removed
			}
			want.Every = time.Duration(1+e.rng.IntN(48)) * time.Hour
			if exists && old.Every == want.Every {
				want.Every += time.Hour
			}
		},
		run: func(e *killEnv, i int) *flight {
			sc := want
			return fly(func() error {
				if sc.Every == 0 {
					return e.c.RemoveSchedule(sc.Action, sc.Volume, "")
				}
				_, err := e.c.SetSchedule(sc.Action, sc.Volume, sc.Arg, sc.Every, "")
				return err
			})
		},
		check: func(e *killEnv, i int, beforeDisk, afterDisk killState, finished bool) {
			e.keptExcept(beforeDisk, afterDisk, nil, nil)
			after, key := e.scheds, want.Key()
			for k, sc := range before {
				if k != key && after[k] != sc {
					e.t.Errorf("schedule %s changed: %+v, was %+v", k, after[k], sc)
				}
			}
			for k := range after {
				if _, ok := before[k]; !ok && k != key {
					e.t.Errorf("schedule %s appeared", k)
				}
			}
			got, ok := after[key]
			old, existed := before[key]
			done := (want.Every == 0 && !ok) || (want.Every != 0 && got == want)
			kept := ok == existed && got == old
			if !done && !kept {
				e.t.Errorf("schedule %s is %+v (present: %v): want it as before (%+v, present: %v) or as asked (%+v)", key, got, ok, old, existed, want)
			}
			if finished && !done {
				e.t.Errorf("the call on schedule %s answered, but it is %+v (present: %v), not %+v", key, got, ok, want)
			}
		},
	}
}

// checkUnits checks the schedule units on disk and in systemd and returns
// the schedules by key.
func (e *killEnv) checkUnits() map[string]units.Schedule {
	e.t.Helper()
	t := e.t
	entries, err := os.ReadDir(e.unitDir)
	must(t, err)
	out := map[string]units.Schedule{}
	timers := map[string]bool{}
	services := map[string]bool{}
	for _, de := range entries {
		name := de.Name()
		if strings.HasPrefix(name, ".") && strings.Contains(name, "butterd") {
			t.Errorf("temporary left in the unit directory: %s", name)
		}
		if !strings.HasPrefix(name, units.Prefix) {
			continue
		}
		stem, ok := strings.CutSuffix(name, ".timer")
		if !ok {
			if stem, ok = strings.CutSuffix(name, ".service"); !ok {
				t.Errorf("unit directory holds %s: not a timer or service", name)
				continue
			}
			services[stem] = true
			continue
		}
		data, err := os.ReadFile(filepath.Join(e.unitDir, name))
		must(t, err)
		sc, err := units.Parse(data)
		if err != nil {
			t.Errorf("%s does not parse: %v", name, err)
			continue
		}
		timer, service := units.Names(sc)
		wantTimer, wantService, err := units.Render(sc, units.DefaultButterctl)
		must(t, err)
		svc, err := os.ReadFile(filepath.Join(e.unitDir, service))
		switch {
		case timer != name:
			t.Errorf("%s holds the schedule of %s", name, timer)
		case string(data) != string(wantTimer):
			t.Errorf("%s is not what butterd renders for %s", name, sc.Key())
		case err != nil:
			t.Errorf("timer %s without its service: %v", name, err)
		case string(svc) != string(wantService):
			t.Errorf("service %s is not what butterd renders for %s:\n%s", service, sc.Key(), svc)
		}
		timers[stem] = true
		out[sc.Key()] = sc
	}
	for stem := range services {
		if !timers[stem] {
			t.Errorf("service %s.service without its timer", stem)
		}
	}
	wants, _ := filepath.Glob(filepath.Join(e.unitDir, "*.wants", units.Prefix+"*"))
	for _, link := range wants {
		if _, err := os.Stat(filepath.Join(e.unitDir, filepath.Base(link))); err != nil {
			t.Errorf("%s links a unit that is gone", link)
		}
	}
	if len(timers) == 0 {
		return out
	}
	names := make([]string, 0, len(timers))
	for stem := range timers {
		names = append(names, stem+".timer")
	}
	show := e.m.MustRun(append([]string{"systemctl", "show", "-p", "Id,LoadState,UnitFileState,ActiveState,NeedDaemonReload"}, names...)...)
	for _, block := range strings.Split(strings.TrimSpace(show), "\n\n") {
		props := map[string]string{}
		for _, line := range strings.Split(block, "\n") {
			k, v, _ := strings.Cut(line, "=")
			props[k] = v
		}
		if props["LoadState"] != "loaded" || props["UnitFileState"] != "enabled" || props["ActiveState"] != "active" || props["NeedDaemonReload"] != "no" {
			t.Errorf("systemd has %s %s, %s, %s, reload needed: %s; want loaded, enabled, active, no", props["Id"],
				props["LoadState"], props["UnitFileState"], props["ActiveState"], props["NeedDaemonReload"])
		}
	}
	return out
}
