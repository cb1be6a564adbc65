package tests

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"hash/crc32"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"butterd/btrfs"
	"butterd/service"
	"butterd/tests/testenv"
)

// Import (DESIGN.md "Replication", "Export/import"): a send stream read
// from a file descriptor becomes the read-only snapshot it names, after
// butterd has checked the stream's header; nothing half-received is ever
// left in snapshots/ or received/.

// importSource is a store A with a volume "app" and two snapshots of it,
// exported as a full stream of the first and an incremental stream of the
// second.
type importSource struct {
	s          *service.Store
	root       string
	snap1      string
	snap2      string
	full, incr string // stream files
}

func newImportSource(t *testing.T) *importSource {
	t.Helper()
	s, root := openStore(t)
	v, _, err := s.CreateVolume("app", service.CreateOptions{})
	must(t, err)
	writeFile(t, filepath.Join(v.Path, "small"), "hello\n")
	big := make([]byte, 3<<20)
	rand.Read(big)
	must(t, os.WriteFile(filepath.Join(v.Path, "big"), big, 0o600))
	must(t, os.Mkdir(filepath.Join(v.Path, "sub"), 0o750))
	writeFile(t, filepath.Join(v.Path, "sub/f"), "in a directory")
	must(t, os.Symlink("small", filepath.Join(v.Path, "link")))
	s1, err := s.CreateSnapshot("app")
	must(t, err)
	// The second snapshot changes a little: one file appended, one
	// removed, one added.
	f, err := os.OpenFile(filepath.Join(v.Path, "big"), os.O_APPEND|os.O_WRONLY, 0)
	must(t, err)
	_, err = f.Write([]byte("appended"))
	must(t, err)
	must(t, f.Close())
	must(t, os.Remove(filepath.Join(v.Path, "small")))
	writeFile(t, filepath.Join(v.Path, "sub/new"), "new in the second snapshot")
	time.Sleep(2 * time.Millisecond) // distinct snapshot names
	s2, err := s.CreateSnapshot("app")
	must(t, err)
	src := &importSource{s: s, root: root, snap1: s1.Name, snap2: s2.Name}
	src.full = exportStream(t, s, s1.Name, "")
	src.incr = exportStream(t, s, s2.Name, s1.Name)
	return src
}

// exportStream exports a snapshot into a file with the service's export job.
func exportStream(t *testing.T, s *service.Store, name, parent string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "stream")
	f, err := os.Create(path)
	must(t, err)
	j, err := s.ExportSnapshot(name, parent, f)
	must(t, err)
	if j = waitJob(t, s, j.ID); j.State != service.JobDone {
		t.Fatalf("export of %s: %s: %s", name, j.State, j.Error)
	}
	return path
}

// importFile imports a stream file and waits for the job.
func importFile(t *testing.T, s *service.Store, path string) service.Job {
	t.Helper()
	f, err := os.Open(path)
	must(t, err)
	j, err := s.ImportSnapshot(f)
	must(t, err)
	return waitJob(t, s, j.ID)
}

// importBytes imports a stream given as bytes, through a file.
func importBytes(t *testing.T, s *service.Store, data []byte) service.Job {
	t.Helper()
	path := filepath.Join(t.TempDir(), "stream")
	must(t, os.WriteFile(path, data, 0o600))
	return importFile(t, s, path)
}

func importOK(t *testing.T, s *service.Store, path string) service.Job {
	t.Helper()
	j := importFile(t, s, path)
	if j.State != service.JobDone {
		t.Fatalf("import of %s: %s: %s", path, j.State, j.Error)
	}
	return j
}

func importFails(t *testing.T, s *service.Store, j service.Job, want string) {
	t.Helper()
	if j.State != service.JobFailed || !strings.Contains(j.Error, want) {
		t.Fatalf("import: %s %q; want failed saying %q", j.State, j.Error, want)
	}
	t.Logf("refused: %s", j.Error)
}

// noImportLeftovers requires received/ to be empty and no temporary or
// journal entry to be left.
func noImportLeftovers(t *testing.T, root string) {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(root, "received"))
	must(t, err)
	for _, e := range entries {
		t.Errorf("left in received/: %s", e.Name())
	}
	if l := leftovers(t, root); len(l) != 0 {
		t.Errorf("leftovers: %v", l)
	}
}

// sameTree requires two directory trees to hold the same names, types,
// permissions, file contents and symlink targets.
func sameTree(t *testing.T, want, got string) {
	t.Helper()
	list := func(root string) map[string]string {
		out := map[string]string{}
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, path)
			info, err := d.Info()
			if err != nil {
				return err
			}
			desc := info.Mode().String()
			switch {
			case info.Mode().IsRegular():
				b, err := os.ReadFile(path)
				if err != nil {
					return err
				}
				desc += " " + string(b)
			case info.Mode()&fs.ModeSymlink != 0:
				target, err := os.Readlink(path)
				if err != nil {
					return err
				}
				desc += " -> " + target
			}
			out[rel] = desc
			return nil
		})
		must(t, err)
		return out
	}
	a, b := list(want), list(got)
	for name, da := range a {
		if db, ok := b[name]; !ok {
			t.Errorf("%s: missing in %s", name, got)
		} else if da != db {
			t.Errorf("%s differs (%.60q vs %.60q)", name, da, db)
		}
	}
	for name := range b {
		if _, ok := a[name]; !ok {
			t.Errorf("%s: not in %s", name, want)
		}
	}
}

func TestImportFullThenIncremental(t *testing.T) {
	src := newImportSource(t)
	s, root := openStore(t)
	var mu sync.Mutex
	var events []string
	s.SetNotify(func(ev service.Event) {
		if ev.Kind == service.SnapshotNew {
			mu.Lock()
			events = append(events, ev.Name)
			mu.Unlock()
		}
	})

	j := importOK(t, s, src.full)
	if j.Kind != "import" || j.Target != src.snap1 || j.Progress != 1 || int64(j.BytesDone) != fileSize(t, src.full) {
		t.Fatalf("job %+v: want an import of %s that read %d bytes", j, src.snap1, fileSize(t, src.full))
	}
	got := filepath.Join(root, "snapshots", src.snap1)
	sameTree(t, filepath.Join(src.root, "snapshots", src.snap1), got)
	info := getInfo(t, got)
	if !info.ReadOnly || info.ReceivedUUID != getInfo(t, filepath.Join(src.root, "snapshots", src.snap1)).UUID {
		t.Fatalf("imported snapshot: %+v; want read-only with A's snapshot UUID as received UUID", info)
	}
	if _, err := s.GetSnapshot(src.snap1); err != nil {
		t.Fatal(err)
	}
	noImportLeftovers(t, root)

	// The incremental stream's parent is found by its received UUID.
	j = importOK(t, s, src.incr)
	if !slices.Contains(j.Uses, src.snap1) {
		t.Fatalf("incremental import uses %v, want its parent %s", j.Uses, src.snap1)
	}
	got2 := filepath.Join(root, "snapshots", src.snap2)
	sameTree(t, filepath.Join(src.root, "snapshots", src.snap2), got2)
	info2 := getInfo(t, got2)
	if !info2.ReadOnly || info2.ReceivedUUID != getInfo(t, filepath.Join(src.root, "snapshots", src.snap2)).UUID {
		t.Fatalf("imported incremental snapshot: %+v", info2)
	}
	if names := snapshotNames(t, s, "app"); !slices.Equal(names, []string{src.snap1, src.snap2}) {
		t.Fatalf("snapshots %v", names)
	}
	mu.Lock()
	if !slices.Equal(events, []string{src.snap1, src.snap2}) {
		t.Errorf("SnapshotNew for %v", events)
	}
	mu.Unlock()
	noImportLeftovers(t, root)

	// A restart finds them like any snapshot.
	s.Close()
	s = openStoreAt(t, root, service.Config{})
	if names := snapshotNames(t, s, "app"); !slices.Equal(names, []string{src.snap1, src.snap2}) {
		t.Fatalf("after a restart: snapshots %v", names)
	}
}

func TestImportIncrementalWithoutParentIsRefused(t *testing.T) {
	src := newImportSource(t)
	var steps []string
	root := filepath.Join(testenv.Btrfs(t), "root")
	s := openStoreAt(t, root, service.Config{AfterStep: func(op, step string) error {
		steps = append(steps, op+"/"+step)
		return nil
	}})
	hdr := streamHeader(t, src.incr)
	j := importFile(t, s, src.incr)
	importFails(t, s, j, "parent (UUID "+hdr.ParentUUID)
	if !strings.Contains(j.Error, "import the parent first") {
		t.Errorf("the error does not say what to do: %s", j.Error)
	}
	if len(steps) != 0 {
		t.Fatalf("steps taken before the refusal: %v", steps)
	}
	if names := snapshotNames(t, s, ""); len(names) != 0 {
		t.Fatalf("snapshots %v", names)
	}
	noImportLeftovers(t, root)

	// A parent with the same volume and another UUID is no parent either.
	v, _, err := s.CreateVolume("app", service.CreateOptions{})
	must(t, err)
	writeFile(t, filepath.Join(v.Path, "small"), "hello\n")
	_, err = s.CreateSnapshot("app")
	must(t, err)
	importFails(t, s, importFile(t, s, src.incr), "is not among the snapshots of volume \"app\"")
	noImportLeftovers(t, root)
}

func streamHeader(t *testing.T, path string) btrfs.StreamHeader {
	t.Helper()
	f, err := os.Open(path)
	must(t, err)
	defer f.Close()
	h, _, err := btrfs.ReadStreamHeader(f)
	must(t, err)
	return h
}

func TestImportTruncatedStreamLeavesNothing(t *testing.T) {
	src := newImportSource(t)
	s, root := openStore(t)
	data, err := os.ReadFile(src.full)
	must(t, err)
	for _, c := range []struct {
		name string
		n    int
		want string
	}{
		{"in the header", 20, "truncated in its stream header"},
		{"in the first command", 40, "truncated in its first command"},
		{"in the data", len(data) / 2, "btrfs receive"},
		// The end marker is the last command: 10 bytes, a header only.
		{"without the end marker", len(data) - 10, "btrfs receive"},
	} {
		t.Run(c.name, func(t *testing.T) {
			importFails(t, s, importBytes(t, s, data[:c.n]), c.want)
			if names := snapshotNames(t, s, ""); len(names) != 0 {
				t.Fatalf("snapshots %v", names)
			}
			noImportLeftovers(t, root)
		})
	}
	// The whole stream still imports.
	importOK(t, s, src.full)
	noImportLeftovers(t, root)
}

func TestImportCorruptStreamIsRefused(t *testing.T) {
	src := newImportSource(t)
	s, root := openStore(t)
	data, err := os.ReadFile(src.full)
	must(t, err)
	// A flipped bit in the first command fails its CRC.
	bad := bytes.Clone(data)
	bad[40] ^= 1
	importFails(t, s, importBytes(t, s, bad), "CRC32C")
	importFails(t, s, importBytes(t, s, []byte("not a stream at all, but long enough")), "magic")
	importFails(t, s, importBytes(t, s, nil), "empty")
	// Damage further on is for btrfs receive to find: a flipped bit in the
	// second command fails its CRC there.
	second := 17 + 10 + int(binary.LittleEndian.Uint32(data[17:]))
	bad = bytes.Clone(data)
	bad[second+10] ^= 1
	importFails(t, s, importBytes(t, s, bad), "btrfs receive")
	noImportLeftovers(t, root)
}

// withStreamName rewrites the PATH of a stream's first command and its CRC.
func withStreamName(t *testing.T, data []byte, name string) []byte {
	t.Helper()
	return withStreamAttrs(t, data, map[uint16][]byte{15: []byte(name)}) // BTRFS_SEND_A_PATH
}

// uuidBytes is a UUID in the 16 bytes a send stream carries.
func uuidBytes(t *testing.T, uuid string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(uuid, "-", ""))
	if err != nil || len(b) != 16 {
		t.Fatalf("UUID %q: %v", uuid, err)
	}
	return b
}

// withStreamAttrs rewrites attributes (by type) of a stream's first
// command and its CRC.
func withStreamAttrs(t *testing.T, data []byte, set map[uint16][]byte) []byte {
	t.Helper()
	const head, cmdHead = 17, 10
	n := int(binary.LittleEndian.Uint32(data[head:]))
	attrs := data[head+cmdHead : head+cmdHead+n]
	var payload []byte
	for len(attrs) > 0 {
		typ, l := binary.LittleEndian.Uint16(attrs), int(binary.LittleEndian.Uint16(attrs[2:]))
		val := attrs[4 : 4+l]
		if v, ok := set[typ]; ok {
			val = v
		}
		payload = binary.LittleEndian.AppendUint16(payload, typ)
		payload = binary.LittleEndian.AppendUint16(payload, uint16(len(val)))
		payload = append(payload, val...)
		attrs = attrs[4+l:]
	}
	cmd := binary.LittleEndian.AppendUint32(nil, uint32(len(payload)))
	cmd = append(cmd, data[head+4:head+6]...)
	cmd = append(cmd, 0, 0, 0, 0)
	cmd = append(cmd, payload...)
	// crc32c with seed 0 and no final inversion, as the kernel's.
	crc := ^crc32.Update(^uint32(0), crc32.MakeTable(crc32.Castagnoli), cmd)
	binary.LittleEndian.PutUint32(cmd[6:], crc)
	out := append(bytes.Clone(data[:head]), cmd...)
	return append(out, data[head+cmdHead+n:]...)
}

func TestImportInvalidNameIsRefusedBeforeReceive(t *testing.T) {
	src := newImportSource(t)
	var steps []string
	root := filepath.Join(testenv.Btrfs(t), "root")
	s := openStoreAt(t, root, service.Config{AfterStep: func(op, step string) error {
		steps = append(steps, op+"/"+step)
		return nil
	}})
	data, err := os.ReadFile(src.full)
	must(t, err)
	_, stamp, _ := strings.Cut(src.snap1, "@")
	for _, name := range []string{
		"../x@" + stamp,
		"x/y@" + stamp,
		"..@" + stamp,
		".app@" + stamp,
		"app",
		"app@yesterday",
		"app@" + stamp + "@otherhost",
		"a@" + stamp,
	} {
		t.Run(name, func(t *testing.T) {
			patched := withStreamName(t, data, name)
			if h, _, err := btrfs.ReadStreamHeader(bytes.NewReader(patched)); err != nil || h.Name != name {
				t.Fatalf("patched stream: %+v %v", h, err)
			}
			importFails(t, s, importBytes(t, s, patched), "not a valid snapshot name")
			if len(steps) != 0 {
				t.Fatalf("steps taken: %v", steps)
			}
			noImportLeftovers(t, root)
			if _, err := os.Lstat(filepath.Join(root, "x")); err == nil {
				t.Fatal("something was written outside the data root's directories")
			}
		})
	}
	if names := snapshotNames(t, s, ""); len(names) != 0 {
		t.Fatalf("snapshots %v", names)
	}
	// A valid new name is a valid import of the same data.
	p := filepath.Join(t.TempDir(), "renamed")
	must(t, os.WriteFile(p, withStreamName(t, data, "copy@"+stamp), 0o600))
	importOK(t, s, p)
	sameTree(t, filepath.Join(src.root, "snapshots", src.snap1), filepath.Join(root, "snapshots", "copy@"+stamp))
}

// A name dated far ahead would stay the volume's latest snapshot for
// decades: the import is refused before anything is received.
func TestImportFutureDatedNameIsRefused(t *testing.T) {
	src := newImportSource(t)
	s, root := openStore(t)
	data, err := os.ReadFile(src.full)
	must(t, err)
	future := "app@2099-01-01T00:00:00.000000"
	j := importBytes(t, s, withStreamName(t, data, future))
	importFails(t, s, j, `import refused: snapshot name "app@2099-01-01T00:00:00.000000" is dated `)
	importFails(t, s, j, " years ahead of this host's clock (at most 2 days allowed): check the clock of the host that made the stream")
	if names := snapshotNames(t, s, ""); len(names) != 0 {
		t.Fatalf("snapshots %v", names)
	}
	noImportLeftovers(t, root)
	// A name dated a few hours ahead (another time zone) is imported.
	soon := service.SnapshotName("app", time.Now().Add(5*time.Hour))
	p := filepath.Join(t.TempDir(), "soon")
	must(t, os.WriteFile(p, withStreamName(t, data, soon), 0o600))
	importOK(t, s, p)
	if names := snapshotNames(t, s, ""); len(names) != 1 || names[0] != soon {
		t.Fatalf("snapshots %v, want [%s]", names, soon)
	}
}

func TestImportExistingNameIsRefused(t *testing.T) {
	src := newImportSource(t)
	// Into the store that has it.
	importFails(t, src.s, importFile(t, src.s, src.full), "already exists")
	noImportLeftovers(t, src.root)

	s, root := openStore(t)
	importOK(t, s, src.full)
	before := getInfo(t, filepath.Join(root, "snapshots", src.snap1))
	importFails(t, s, importFile(t, s, src.full), "already exists")
	if after := getInfo(t, filepath.Join(root, "snapshots", src.snap1)); after.UUID != before.UUID {
		t.Fatal("the existing snapshot was replaced")
	}
	noImportLeftovers(t, root)
}

func TestImportVersion2Stream(t *testing.T) {
	src := newImportSource(t)
	path := filepath.Join(t.TempDir(), "v2.stream")
	out, err := exec.Command(testenv.Command(t, "btrfs"), "send", "-q", "--proto", "2", "-f", path,
		filepath.Join(src.root, "snapshots", src.snap1)).CombinedOutput()
	testenv.Need(t, err == nil, "btrfs send --proto 2: "+string(out))
	if h := streamHeader(t, path); h.Version != 2 {
		t.Fatalf("version %d", h.Version)
	}
	s, root := openStore(t)
	importOK(t, s, path)
	sameTree(t, filepath.Join(src.root, "snapshots", src.snap1), filepath.Join(root, "snapshots", src.snap1))
	noImportLeftovers(t, root)
}

// receiveRunning lists the processes whose command line names dir.
func receiveRunning(dir string) []string {
	var out []string
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err == nil && bytes.Contains(b, []byte(dir)) && bytes.HasPrefix(b, []byte("btrfs\x00receive")) {
			out = append(out, p)
		}
	}
	return out
}

func waitNoReceive(t *testing.T, dir string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(receiveRunning(dir)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("btrfs receive still runs: %v", receiveRunning(dir))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestImportCancelStalledStream(t *testing.T) {
	src := newImportSource(t)
	s, root := openStore(t)
	data, err := os.ReadFile(src.full)
	must(t, err)
	r, w := osPipe(t)
	defer w.Close()
	half := len(data) / 2
	go w.Write(data[:half]) // then the writer stalls, never closing
	j, err := s.ImportSnapshot(r)
	must(t, err)
	deadline := time.Now().Add(20 * time.Second)
	for {
		cur, err := s.GetJob(j.ID)
		must(t, err)
		if cur.BytesDone >= uint64(half) && len(receiveRunning(filepath.Join(root, "received"))) > 0 {
			break
		}
		if cur.Done() || time.Now().After(deadline) {
			t.Fatalf("job %+v: want it running and blocked after %d bytes", cur, half)
		}
		time.Sleep(10 * time.Millisecond)
	}
	must(t, s.CancelJob(j.ID))
	if j = waitJob(t, s, j.ID); j.State != service.JobCanceled {
		t.Fatalf("job %+v", j)
	}
	waitNoReceive(t, filepath.Join(root, "received"))
	if names := snapshotNames(t, s, ""); len(names) != 0 {
		t.Fatalf("snapshots %v", names)
	}
	noImportLeftovers(t, root)
}

var importSteps = []string{"dir-created", "received", "snapshotted"}

func TestImportFailureAtEachStep(t *testing.T) {
	src := newImportSource(t)
	for _, step := range importSteps {
		t.Run(step, func(t *testing.T) {
			root := filepath.Join(testenv.Btrfs(t), "root")
			injected := errors.New("injected failure")
			fail := true
			s := openStoreAt(t, root, service.Config{AfterStep: func(op, st string) error {
				if op == "import" && st == step && fail {
					return injected
				}
				return nil
			}})
			j := importFile(t, s, src.full)
			finished := step == "snapshotted" // after the switch, the import finishes
			if finished != (j.State == service.JobDone) || !finished && !strings.Contains(j.Error, injected.Error()) {
				t.Fatalf("job %s %q", j.State, j.Error)
			}
			noImportLeftovers(t, root)
			fail = false
			if !finished {
				if names := snapshotNames(t, s, ""); len(names) != 0 {
					t.Fatalf("snapshots %v", names)
				}
				importOK(t, s, src.full) // a retry goes through
			}
			sameTree(t, filepath.Join(src.root, "snapshots", src.snap1), filepath.Join(root, "snapshots", src.snap1))
		})
	}
}

// TestImportCrashAtEachStep kills a process importing at each step (and
// while btrfs receive runs): its btrfs receive dies with it, and the next
// start deletes what the import left in received/, keeping the snapshot
// only when it was made.
func TestImportCrashAtEachStep(t *testing.T) {
	importCrashChild(t)
	src := newImportSource(t)
	for _, step := range append([]string{"receiving"}, importSteps...) {
		t.Run(step, func(t *testing.T) {
			root := filepath.Join(testenv.Btrfs(t), "root")
			cmd := exec.Command(os.Args[0], "-test.run=^TestImportCrashAtEachStep$", "-test.v")
			cmd.Env = append(os.Environ(), "BUTTERD_IMPORT_CRASH="+root+"|"+step+"|"+src.full)
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("the child was not killed at step %s: %v\n%s", step, err, out)
			}
			waitNoReceive(t, filepath.Join(root, "received"))
			// Before the restart, received/ holds the job's directory, and
			// from the start of btrfs receive on, the received subvolume.
			if entries, _ := os.ReadDir(filepath.Join(root, "received")); len(entries) != 1 {
				t.Fatalf("received/ holds %d entries before the restart", len(entries))
			}
			if hasEntries(filepath.Join(root, "received")) != (step != "dir-created") {
				t.Fatalf("received/ before the restart: want a received subvolume only after btrfs receive ran")
			}
			s := openStoreAt(t, root, service.Config{})
			noImportLeftovers(t, root)
			names := snapshotNames(t, s, "")
			if step == "snapshotted" {
				if !slices.Equal(names, []string{src.snap1}) {
					t.Fatalf("snapshots %v, want the imported one", names)
				}
			} else {
				if len(names) != 0 {
					t.Fatalf("snapshots %v", names)
				}
				importOK(t, s, src.full)
			}
			sameTree(t, filepath.Join(src.root, "snapshots", src.snap1), filepath.Join(root, "snapshots", src.snap1))
			noImportLeftovers(t, root)
		})
	}
}

// received/<job>/ is butterd's own directory: what an interrupted import
// left there is deleted at the next start, whatever it is (a file, a
// symbolic link: removed, never followed), and the journal entry ends. A
// received/<job> that is itself a link is not butterd's and is left alone.
func TestImportCrashCleansEverythingInReceived(t *testing.T) {
	importCrashChild(t)
	src := newImportSource(t)
	mnt := testenv.Btrfs(t)
	root := filepath.Join(mnt, "root")
	received := filepath.Join(root, "received")
	// crash leaves an import killed after its receive: it returns the
	// job's directory under received/.
	crash := func() string {
		t.Helper()
		cmd := exec.Command(os.Args[0], "-test.run=^TestImportCrashCleansEverythingInReceived$", "-test.v")
		cmd.Env = append(os.Environ(), "BUTTERD_IMPORT_CRASH="+root+"|received|"+src.full)
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("the child was not killed: %v\n%s", err, out)
		}
		entries, err := os.ReadDir(received)
		must(t, err)
		if len(entries) != 1 {
			t.Fatalf("received/ holds %d entries, want the job's directory", len(entries))
		}
		job := filepath.Join(received, entries[0].Name())
		if !isSubvolume(t, filepath.Join(job, src.snap1)) {
			t.Fatalf("no received subvolume in %s", job)
		}
		return job
	}
	journal := func() []string {
		entries, err := os.ReadDir(filepath.Join(root, "state", "journal"))
		must(t, err)
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		return names
	}
	outside := filepath.Join(mnt, "outside")
	must(t, os.Mkdir(outside, 0o700))
	keep := filepath.Join(outside, "keep")
	writeFile(t, keep, "not butterd's")

	job := crash()
	writeFile(t, filepath.Join(job, "stray file"), "left here")
	must(t, os.Symlink(outside, filepath.Join(job, "link")))
	must(t, os.Mkdir(filepath.Join(job, "dir"), 0o700))
	must(t, os.Symlink(keep, filepath.Join(job, "dir", "link")))
	s := openStoreAt(t, root, service.Config{})
	noImportLeftovers(t, root)
	if names := snapshotNames(t, s, ""); len(names) != 0 {
		t.Errorf("snapshots after the restart: %v", names)
	}
	if got, err := os.ReadFile(keep); err != nil || string(got) != "not butterd's" {
		t.Fatalf("the links' target: %q, %v", got, err)
	}
	s.Close()

	// A job directory replaced by a link is left alone, and so is where it
	// points; the journal entry stays for the next start.
	job = crash()
	moved := filepath.Join(outside, "moved")
	must(t, os.Rename(job, moved))
	must(t, os.Symlink(moved, job))
	pending := journal()
	if len(pending) != 1 {
		t.Fatalf("journal before the restart: %v", pending)
	}
	s = openStoreAt(t, root, service.Config{})
	if got := journal(); !slices.Equal(got, pending) {
		t.Errorf("journal after the restart: %v, want %v kept", got, pending)
	}
	if _, err := os.Lstat(job); err != nil {
		t.Errorf("the link in received/: %v", err)
	}
	if !isSubvolume(t, filepath.Join(moved, src.snap1)) {
		t.Errorf("the subvolume the link points to is gone")
	}
	s.Close()
}

// TestImportReceiveDiesWithButterd kills a process running btrfs receive
// on a stream that stalls: the receive dies with it.
func TestImportReceiveDiesWithButterd(t *testing.T) {
	importCrashChild(t)
	src := newImportSource(t)
	dir := filepath.Join(testenv.Btrfs(t), "received")
	must(t, os.Mkdir(dir, 0o700))
	data, err := os.ReadFile(src.full)
	must(t, err)
	r, w := osPipe(t)
	defer w.Close()
	go w.Write(data[:len(data)/2])
	cmd := exec.Command(os.Args[0], "-test.run=^TestImportReceiveDiesWithButterd$", "-test.v")
	cmd.Env = append(os.Environ(), "BUTTERD_IMPORT_CRASH="+dir+"|pdeathsig|"+src.full)
	cmd.Stdin = r
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("the child was not killed: %v\n%s", err, out)
	}
	r.Close()
	waitNoReceive(t, dir)
	// What it left is a writable, unfinished subvolume.
	info := getInfo(t, filepath.Join(dir, "job", src.snap1))
	if info.ReadOnly || info.ReceivedUUID != "" {
		t.Fatalf("half-received subvolume: %+v", info)
	}
}

// importCrashChild turns the test into the process its parent run kills,
// when BUTTERD_IMPORT_CRASH says so; otherwise it returns at once. It never
// returns in the child.
func importCrashChild(t *testing.T) {
	arg := os.Getenv("BUTTERD_IMPORT_CRASH")
	if arg == "" {
		return
	}
	parts := strings.SplitN(arg, "|", 3)
	root, step, stream := parts[0], parts[1], parts[2]
	kill := func() { syscall.Kill(os.Getpid(), syscall.SIGKILL) }
	if step == "pdeathsig" {
		// btrfs receive reads our stdin, whose writer (the test) never
		// closes it: only PDEATHSIG ends it when we die.
		go func() {
			for !hasEntries(root) {
				time.Sleep(5 * time.Millisecond)
			}
			time.Sleep(100 * time.Millisecond)
			kill()
		}()
		dir := filepath.Join(root, "job")
		must(t, os.Mkdir(dir, 0o700))
		err := btrfs.Receive(context.Background(), dir, os.Stdin)
		t.Fatalf("btrfs receive returned: %v", err)
	}
	s, err := service.Open(service.Config{Root: root, BootID: "boot-1", AfterStep: killAtStep(root, "import", step)})
	must(t, err)
	data, err := os.ReadFile(stream)
	must(t, err)
	in, err := os.Open(stream)
	must(t, err)
	if step == "receiving" {
		// Half the stream, then a writer that stalls, its end kept open
		// however much the pipes and buffers on the way take in.
		r, w, err := os.Pipe()
		must(t, err)
		go func() {
			w.Write(data[:len(data)/2])
			select {}
		}()
		defer w.Close()
		in.Close()
		in = r
	}
	j, err := s.ImportSnapshot(in)
	must(t, err)
	j = waitJob(t, s, j.ID)
	t.Fatalf("step %s not reached: job %s %q", step, j.State, j.Error)
}

func hasEntries(dir string) bool {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if sub, _ := os.ReadDir(filepath.Join(dir, e.Name())); len(sub) > 0 {
			return true
		}
	}
	return false
}

// TestStreamFixtures checks the headers of streams made by a real btrfs
// send against the subvolumes sent, and with
// BUTTERD_UPDATE_STREAM_FIXTURES=1 writes them as btrfs/testdata fixtures.
func TestStreamFixtures(t *testing.T) {
	mnt := testenv.Btrfs(t)
	vol := filepath.Join(mnt, "app")
	mustCreate(t, vol)
	writeFile(t, filepath.Join(vol, "f"), "fixture\n")
	snap1 := filepath.Join(mnt, "app@2024-01-02T03:04:05.000006")
	snap2 := filepath.Join(mnt, "app@2024-01-02T03:04:06.000000")
	must(t, btrfs.Snapshot(vol, snap1, true))
	writeFile(t, filepath.Join(vol, "g"), "second\n")
	must(t, btrfs.Snapshot(vol, snap2, true))

	dir := t.TempDir()
	send := func(name, path, parent string) string {
		out := filepath.Join(dir, name+".stream")
		f, err := os.Create(out)
		must(t, err)
		must(t, btrfs.Send(path, parent, f))
		must(t, f.Close())
		return out
	}
	streams := map[string]string{
		"full-v1":        send("full-v1", snap1, ""),
		"incremental-v1": send("incremental-v1", snap2, snap1),
		"full-v2":        filepath.Join(dir, "full-v2.stream"),
	}
	out, err := exec.Command(testenv.Command(t, "btrfs"), "send", "-q", "--proto", "2", "-f", streams["full-v2"], snap1).CombinedOutput()
	testenv.Need(t, err == nil, "btrfs send --proto 2: "+string(out))

	info1, info2 := getInfo(t, snap1), getInfo(t, snap2)
	want := map[string]btrfs.StreamHeader{
		"full-v1":        {Version: 1, Name: filepath.Base(snap1), UUID: info1.UUID},
		"incremental-v1": {Version: 1, Name: filepath.Base(snap2), UUID: info2.UUID, ParentUUID: info1.UUID},
		"full-v2":        {Version: 2, Name: filepath.Base(snap1), UUID: info1.UUID},
	}
	update := os.Getenv("BUTTERD_UPDATE_STREAM_FIXTURES") == "1"
	for name, path := range streams {
		h := streamHeader(t, path)
		w := want[name]
		if h.CTransID == 0 || h.Incremental() && h.ParentCTransID == 0 {
			t.Errorf("%s: no ctransid in %+v", name, h)
		}
		w.CTransID, w.ParentCTransID = h.CTransID, h.ParentCTransID
		if h != w {
			t.Errorf("%s:\n got %+v\nwant %+v", name, h, w)
		}
		if !update {
			continue
		}
		data, err := os.ReadFile(path)
		must(t, err)
		golden, err := json.MarshalIndent(h, "", "  ")
		must(t, err)
		testdata := filepath.Join(testenv.ModuleRoot(t), "btrfs", "testdata")
		must(t, os.MkdirAll(testdata, 0o755))
		must(t, os.WriteFile(filepath.Join(testdata, name+".stream"), data, 0o644))
		must(t, os.WriteFile(filepath.Join(testdata, name+".json"), append(golden, '\n'), 0o644))
		t.Logf("wrote %s (%d bytes)", filepath.Join(testdata, name+".stream"), len(data))
	}
}

// An export's parent must be another snapshot of the same volume.
func TestExportParentMustBeAnotherSnapshotOfTheVolume(t *testing.T) {
	s, _ := openStore(t)
	var snaps []string
	for _, vol := range []string{"app", "other"} {
		_, _, err := s.CreateVolume(vol, service.CreateOptions{})
		must(t, err)
		snap, err := s.CreateSnapshot(vol)
		must(t, err)
		snaps = append(snaps, snap.Name)
	}
	for _, c := range []struct{ parent, want string }{
		{snaps[0], "is the snapshot exported itself"},
		{snaps[1], `is a snapshot of volume "other", not of "app"`},
	} {
		f, err := os.Create(filepath.Join(t.TempDir(), "stream"))
		must(t, err)
		if _, err := s.ExportSnapshot(snaps[0], c.parent, f); !errors.Is(err, service.ErrInvalidArg) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("export of %s against %s: %v; want an invalid argument saying %q", snaps[0], c.parent, err, c.want)
		}
	}
}

// btrfs receive finds a CLONE's source by received UUID anywhere on the
// filesystem, past its chroot: a stream for volume "app" that clones from
// the copy of another volume's snapshot would read that volume's data.
// butterd refuses the stream before the clone reaches btrfs receive, and
// leaves nothing.
func TestImportCloneFromAnotherVolumeIsRefused(t *testing.T) {
	src, srcRoot := openStore(t)
	o, _, err := src.CreateVolume("other", service.CreateOptions{})
	must(t, err)
	secret := make([]byte, 1<<20)
	rand.Read(secret)
	must(t, os.WriteFile(filepath.Join(o.Path, "secret"), secret, 0o600))
	other1, err := src.CreateSnapshot("other")
	must(t, err)
	a, _, err := src.CreateVolume("app", service.CreateOptions{})
	must(t, err)
	writeFile(t, filepath.Join(a.Path, "own"), "app's own data")
	app1, err := src.CreateSnapshot("app")
	must(t, err)
	// app's next snapshot shares other's extents.
	if out, err := exec.Command("cp", "--reflink=always", filepath.Join(o.Path, "secret"), filepath.Join(a.Path, "x")).CombinedOutput(); err != nil {
		t.Fatalf("cp --reflink: %v: %s", err, out)
	}
	time.Sleep(2 * time.Millisecond) // distinct snapshot names
	app2, err := src.CreateSnapshot("app")
	must(t, err)
	stream := filepath.Join(t.TempDir(), "clone.stream")
	snap := func(name string) string { return filepath.Join(srcRoot, "snapshots", name) }
	if out, err := exec.Command("btrfs", "send", "-q", "-p", snap(app1.Name), "-c", snap(other1.Name), "-f", stream, snap(app2.Name)).CombinedOutput(); err != nil {
		t.Fatalf("btrfs send -c: %v: %s", err, out)
	}
	if out, _ := exec.Command("btrfs", "receive", "--dump", "-f", stream).CombinedOutput(); !strings.Contains(string(out), "clone ") {
		t.Fatalf("the stream carries no clone:\n%s", out)
	}

	// The receiving host holds a copy of other's snapshot and app's first.
	s, root := openStore(t)
	importOK(t, s, exportStream(t, src, other1.Name, ""))
	importOK(t, s, exportStream(t, src, app1.Name, ""))
	importFails(t, s, importFile(t, s, stream), "neither the received subvolume nor its parent")
	noImportLeftovers(t, root)
	if names := snapshotNames(t, s, "app"); !slices.Equal(names, []string{app1.Name}) {
		t.Fatalf("app's snapshots after the refused import: %v", names)
	}
}

// A subvolume butterd does not know (received by hand elsewhere on the
// same filesystem) answers to a UUID first: btrfs receive takes it for an
// incremental stream's parent although butterd checked the parent among
// the volume's snapshots. The received subvolume, built on the wrong
// parent, is refused and deleted.
func TestImportBuiltOnAnotherParentIsRefused(t *testing.T) {
	mnt := testenv.Btrfs(t)
	other, _ := openStore(t)
	ov, _, err := other.CreateVolume("vb", service.CreateOptions{})
	must(t, err)
	writeFile(t, filepath.Join(ov.Path, "secret"), "not the volume's data\n")
	ox, err := other.CreateSnapshot("vb")
	must(t, err)
	elsewhere := filepath.Join(mnt, "elsewhere")
	must(t, os.Mkdir(elsewhere, 0o700))
	stream, err := os.Open(exportStream(t, other, ox.Name, ""))
	must(t, err)
	defer stream.Close()
	must(t, btrfs.Receive(context.Background(), elsewhere, stream))
	r := getInfo(t, filepath.Join(elsewhere, ox.Name)).ReceivedUUID

	src, _ := openStore(t)
	a1, a2, full, incr := posingStreams(t, src, r)
	root := filepath.Join(mnt, "root")
	s := openStoreAt(t, root, service.Config{})
	importOK(t, s, full)
	j := importFile(t, s, incr)
	importFails(t, s, j, "was built by btrfs receive on the subvolume with UUID")
	if !strings.Contains(j.Error, getInfo(t, filepath.Join(root, "snapshots", a1)).UUID) {
		t.Errorf("the error does not name the expected parent's UUID: %s", j.Error)
	}
	noImportLeftovers(t, root)
	if names := snapshotNames(t, s, "va"); !slices.Equal(names, []string{a1}) {
		t.Errorf("snapshots of va: %v, want only %s (not %s)", names, a1, a2)
	}
	noneHolds(t, s, root, "va", "secret")
}
