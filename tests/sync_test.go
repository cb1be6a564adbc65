package tests

import (
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"butterd/btrfs"
	"butterd/service"
	"butterd/service/remote"
)

// Sync (DESIGN.md "Replication"): butterd pulls, from each host's
// same-named volume, the files that are newer than ours or that we lack,
// after a safety snapshot; it never deletes, never follows symlinks, writes
// each file whole, and refuses a mounted volume unless forced. The hosts
// are stores with their real SSH endpoints on 127.0.0.1.

// syncJob runs a sync from the given connections and waits for its job.
func syncJob(t *testing.T, h *replHost, volume string, force bool, from ...*remote.Client) service.Job {
	t.Helper()
	j, err := h.s.SyncFrom(from, volume, force)
	must(t, err)
	return waitJob(t, h.s, j.ID)
}

func syncOK(t *testing.T, h *replHost, volume string, from ...*remote.Client) service.Job {
	t.Helper()
	j := syncJob(t, h, volume, false, from...)
	if j.State != service.JobDone {
		t.Fatalf("sync of %s: %s: %s\n%s", volume, j.State, j.Error, j.Summary)
	}
	t.Logf("sync of %s:\n%s", volume, j.Summary)
	return j
}

// hostLine is the summary's line about a host.
func hostLine(t *testing.T, j service.Job, c *remote.Client) string {
	t.Helper()
	for _, line := range strings.Split(j.Summary, "\n") {
		if strings.HasPrefix(line, c.Addr()+": ") {
			return line
		}
	}
	t.Fatalf("no line about %s in the summary:\n%s", c.Addr(), j.Summary)
	return ""
}

func wantLine(t *testing.T, j service.Job, c *remote.Client, want ...string) {
	t.Helper()
	line := hostLine(t, j, c)
	for _, w := range want {
		if !strings.Contains(line, w) {
			t.Errorf("summary line %q does not say %q", line, w)
		}
	}
}

// noSyncLeftovers requires a host to hold nothing of a sync: nothing in
// received/, no temporary subvolume, no journal entry, no staging
// directory in its volumes.
func noSyncLeftovers(t *testing.T, h *replHost) {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(h.root, "received"))
	must(t, err)
	for _, e := range entries {
		t.Errorf("left in received/: %s", e.Name())
	}
	if l := leftovers(t, h.root); len(l) != 0 {
		t.Errorf("leftovers: %v", l)
	}
	stages, err := filepath.Glob(filepath.Join(h.root, "volumes", "*", ".butterd-sync-*"))
	must(t, err)
	if len(stages) != 0 {
		t.Errorf("staging directories left: %v", stages)
	}
}

// servedJobsDone waits until a serving host has finished its serve-sync
// jobs (after a cut link it cleans up on its own time).
func servedJobsDone(t *testing.T, h *replHost) {
	t.Helper()
	for _, j := range h.s.ListJobs() {
		if j.Kind == "serve-sync" {
			waitJob(t, h.s, j.ID)
		}
	}
}

func syncVolume(t *testing.T, h *replHost, name string, opts service.CreateOptions) string {
	t.Helper()
	v, _, err := h.s.CreateVolume(name, opts)
	must(t, err)
	return v.Path
}

// put writes a file with a given mtime, making its directories.
func put(t *testing.T, path, content string, mtime time.Time) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Dir(path), 0o755))
	writeFile(t, path, content)
	must(t, os.Chtimes(path, mtime, mtime))
}

func lsetMtime(t *testing.T, path string, mtime time.Time) {
	t.Helper()
	ts := unix.NsecToTimespec(mtime.UnixNano())
	must(t, unix.UtimesNanoAt(unix.AT_FDCWD, path, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW))
}

func mtimes(t *testing.T, dir string) map[string]time.Time {
	t.Helper()
	out := map[string]time.Time{}
	must(t, filepath.Walk(dir, func(path string, fi os.FileInfo, err error) error {
		if err == nil {
			out[path] = fi.ModTime()
		}
		return err
	}))
	return out
}

func randomFile(t *testing.T, path string, size int) {
	t.Helper()
	b := make([]byte, size)
	rand.Read(b)
	must(t, os.WriteFile(path, b, 0o644))
}

func TestSyncFromTwoHosts(t *testing.T) {
	local, a, b := newReplHost(t), newReplHost(t), newReplHost(t)
	a.serve(t, local)
	b.serve(t, local)
	fromA, fromB := local.dial(t, a), local.dial(t, b)
	now := time.Now()
	outside := t.TempDir()
	put(t, filepath.Join(outside, "target"), "outside", now.Add(-3*time.Hour))

	lv := syncVolume(t, local, "v1", service.CreateOptions{})
	put(t, filepath.Join(lv, "a"), "local a", now.Add(-2*time.Hour))
	put(t, filepath.Join(lv, "shared"), "local shared", now.Add(-2*time.Hour))
	put(t, filepath.Join(lv, "keep"), "only here", now.Add(-2*time.Hour))
	put(t, filepath.Join(lv, "newer-here"), "local newest", now)
	// Planted symlinks: a directory and a file that lead outside.
	must(t, os.Symlink(outside, filepath.Join(lv, "escape")))
	must(t, os.Symlink(filepath.Join(outside, "target"), filepath.Join(lv, "lnk")))
	lsetMtime(t, filepath.Join(lv, "lnk"), now.Add(-2*time.Hour))
	before := snapshotNames(t, local.s, "v1")

	av := syncVolume(t, a, "v1", service.CreateOptions{})
	put(t, filepath.Join(av, "a"), "a from A", now.Add(-time.Hour))
	put(t, filepath.Join(av, "shared"), "shared from A", now.Add(-time.Hour))
	put(t, filepath.Join(av, "newer-here"), "older on A", now.Add(-3*time.Hour))
	put(t, filepath.Join(av, "fromA/deep/f"), "deep file from A", now.Add(-time.Hour))
	put(t, filepath.Join(av, "escape/f"), "must not land outside", now)
	randomFile(t, filepath.Join(av, "big"), 4<<20)
	put(t, filepath.Join(av, "owned"), "owner, mode and xattrs come along", now.Add(-time.Hour))
	must(t, os.Chown(filepath.Join(av, "owned"), 1234, 5678))
	must(t, unix.Chmod(filepath.Join(av, "owned"), 0o4750))
	must(t, unix.Setxattr(filepath.Join(av, "owned"), "user.origin", []byte("host A"), 0))

	bv := syncVolume(t, b, "v1", service.CreateOptions{})
	put(t, filepath.Join(bv, "shared"), "shared from B", now.Add(-30*time.Minute))
	put(t, filepath.Join(bv, "b"), "b from B", now.Add(-30*time.Minute))
	put(t, filepath.Join(bv, "lnk"), "a file from B", now.Add(-30*time.Minute))

	j := syncOK(t, local, "v1", fromA, fromB)
	if j.Kind != "sync" || j.Target != "v1" || j.FilesDone == 0 || j.BytesDone < 4<<20 {
		t.Errorf("job %+v: want a sync of v1 counting files and at least the 4 MiB streamed", j)
	}
	for name, want := range map[string]string{
		"a": "a from A", "shared": "shared from B", "keep": "only here", "newer-here": "local newest",
		"fromA/deep/f": "deep file from A", "b": "b from B", "lnk": "a file from B",
	} {
		if got := readFile(t, filepath.Join(lv, name)); got != want {
			t.Errorf("%s holds %q, want %q", name, got, want)
		}
	}
	sameContent(t, av, lv, "a", "big", "owned")
	// Nothing written through the symlinks: the directory one is left
	// alone, the file one replaced by B's file.
	if entries, _ := os.ReadDir(outside); len(entries) != 1 || readFile(t, filepath.Join(outside, "target")) != "outside" {
		t.Errorf("the sync wrote outside the volume: %v", entries)
	}
	if fi, err := os.Lstat(filepath.Join(lv, "escape")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("escape: %v, %v: want the planted symlink left alone", fi, err)
	}
	if fi, err := os.Lstat(filepath.Join(lv, "lnk")); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("lnk: %v, %v: want B's file in place of the symlink", fi, err)
	}
	// Owner, mode (set-uid included), xattrs and times come along.
	var st unix.Stat_t
	must(t, unix.Lstat(filepath.Join(lv, "owned"), &st))
	if st.Uid != 1234 || st.Gid != 5678 || st.Mode&0o7777 != 0o4750 {
		t.Errorf("owned: uid %d gid %d mode %o, want 1234 5678 4750", st.Uid, st.Gid, st.Mode&0o7777)
	}
	xattr := make([]byte, 64)
	n, err := unix.Getxattr(filepath.Join(lv, "owned"), "user.origin", xattr)
	if err != nil || string(xattr[:n]) != "host A" {
		t.Errorf("owned: xattr user.origin %q, %v; want \"host A\"", xattr[:max(n, 0)], err)
	}
	for _, name := range []string{"fromA", "fromA/deep", "fromA/deep/f", "a"} {
		want, err1 := os.Stat(filepath.Join(av, name))
		got, err2 := os.Stat(filepath.Join(lv, name))
		if err1 != nil || err2 != nil || !got.ModTime().Equal(want.ModTime()) || got.Mode() != want.Mode() {
			t.Errorf("%s: %v %v here, %v %v on A (%v %v)", name, got.Mode(), got.ModTime(), want.Mode(), want.ModTime(), err1, err2)
		}
	}
	// Per host: what was created, updated, unchanged and left alone; the
	// data was shared by reflink, not copied.
	wantLine(t, j, fromA, "5 created, 2 updated, 1 unchanged, 1 left alone, 0 skipped", " 0 bytes copied", "full stream")
	wantLine(t, j, fromB, "1 created, 2 updated, 0 unchanged, 0 left alone")
	if !strings.Contains(j.Summary, `"escape": left alone: a symlink here, a directory in the source`) {
		t.Errorf("the summary does not report the symlink left alone:\n%s", j.Summary)
	}
	// One safety snapshot, holding what was there before.
	after := snapshotNames(t, local.s, "v1")
	if len(after) != len(before)+1 {
		t.Fatalf("snapshots %v, were %v: want one safety snapshot more", after, before)
	}
	safety, err := local.s.GetSnapshot(after[len(after)-1])
	must(t, err)
	if !safety.Safety || readFile(t, filepath.Join(safety.Path, "a")) != "local a" || !strings.Contains(j.Summary, "safety snapshot "+safety.Name) {
		t.Errorf("snapshot %+v: want the safety snapshot, holding the old a, named in the summary", safety)
	}
	for _, h := range []*replHost{local, a, b} {
		noSyncLeftovers(t, h)
	}

	// A second sync changes nothing, and takes no snapshot.
	times := mtimes(t, lv)
	j = syncOK(t, local, "v1", fromA, fromB)
	wantLine(t, j, fromA, "0 created, 0 updated, 8 unchanged, 1 left alone")
	wantLine(t, j, fromB, "0 created, 0 updated, 3 unchanged")
	if !strings.HasPrefix(j.Summary, "volume v1 unchanged") {
		t.Errorf("summary of a sync that changed nothing:\n%s", j.Summary)
	}
	if names := snapshotNames(t, local.s, "v1"); !slices.Equal(names, after) {
		t.Errorf("snapshots %v after a sync that changed nothing, were %v", names, after)
	}
	if got := mtimes(t, lv); !sameTimes(got, times) {
		t.Errorf("a sync that changed nothing changed times")
	}
	for _, h := range []*replHost{local, a, b} {
		noSyncLeftovers(t, h)
	}
}

// sameContent requires the files named to hold the same bytes in both
// directories.
func sameContent(t *testing.T, want, got string, names ...string) {
	t.Helper()
	for _, name := range names {
		if a, b := readFile(t, filepath.Join(want, name)), readFile(t, filepath.Join(got, name)); a != b {
			t.Errorf("%s: %d bytes in %s, %d bytes in %s: want the same", name, len(a), want, len(b), got)
		}
	}
}

func sameTimes(a, b map[string]time.Time) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !b[k].Equal(v) {
			return false
		}
	}
	return true
}

// A mounted volume is refused unless forced; into a NOCOW volume the
// bytes are copied (BTRFS refuses to share data with a NOCOW file).
func TestSyncMountedNoCOWVolume(t *testing.T) {
	local, a := newReplHost(t), newReplHost(t)
	a.serve(t, local)
	fromA := local.dial(t, a)
	lv := syncVolume(t, local, "db", service.CreateOptions{NoCOW: true})
	av := syncVolume(t, a, "db", service.CreateOptions{})
	randomFile(t, filepath.Join(av, "data"), 1<<20)
	_, err := local.s.Mount("db", "container-1")
	must(t, err)

	if _, err := local.s.SyncFrom([]*remote.Client{fromA}, "db", false); !errors.Is(err, service.ErrInUse) || !strings.Contains(err.Error(), "force") {
		t.Fatalf("sync of a mounted volume: %v; want it refused, saying how to force it", err)
	}
	if _, err := os.Stat(filepath.Join(lv, "data")); !errors.Is(err, os.ErrNotExist) || len(snapshotNames(t, local.s, "db")) != 0 {
		t.Fatalf("a refused sync changed the volume")
	}
	j := syncJob(t, local, "db", true, fromA)
	if j.State != service.JobDone {
		t.Fatalf("forced sync: %s %s", j.State, j.Error)
	}
	sameFiles(t, av, lv, "data")
	nocow, err := btrfs.NoCOW(filepath.Join(lv, "data"))
	must(t, err)
	if !nocow {
		t.Errorf("the synced file is not NOCOW like its volume")
	}
	wantLine(t, j, fromA, "1 created", "0 bytes reflinked, 1048576 bytes copied")
	noSyncLeftovers(t, local)

	// A volume the host does not have: the job fails with the host's word.
	syncVolume(t, local, "other", service.CreateOptions{})
	j = syncJob(t, local, "other", false, fromA)
	if j.State != service.JobFailed || !strings.Contains(j.Error, `no such volume "other"`) {
		t.Errorf("sync of a volume the host lacks: %s %q", j.State, j.Error)
	}
	noSyncLeftovers(t, local)
	noSyncLeftovers(t, a)
}

// Into a NOCOW volume a sparse file is copied with its holes: a disk image
// of 64 MiB holding 2 MiB of data takes 2 MiB, not 64.
func TestSyncSparseFileIntoNoCOWVolume(t *testing.T) {
	local, a := newReplHost(t), newReplHost(t)
	a.serve(t, local)
	fromA := local.dial(t, a)
	lv := syncVolume(t, local, "vm", service.CreateOptions{NoCOW: true})
	av := syncVolume(t, a, "vm", service.CreateOptions{})
	f, err := os.Create(filepath.Join(av, "disk.img"))
	must(t, err)
	data := make([]byte, 1<<20)
	for _, off := range []int64{4 << 20, 40 << 20} {
		rand.Read(data)
		_, err := f.WriteAt(data, off)
		must(t, err)
	}
	must(t, f.Truncate(64<<20))
	must(t, f.Close())

	j := syncOK(t, local, "vm", fromA)
	sameFiles(t, av, lv, "disk.img")
	var st unix.Stat_t
	must(t, unix.Stat(filepath.Join(lv, "disk.img"), &st))
	if st.Size != 64<<20 || st.Blocks*512 > 4<<20 {
		t.Errorf("synced disk image: %d bytes, %d allocated; want 64 MiB with 2 MiB of data allocated", st.Size, st.Blocks*512)
	}
	nocow, err := btrfs.NoCOW(filepath.Join(lv, "disk.img"))
	must(t, err)
	if !nocow {
		t.Errorf("the synced file is not NOCOW like its volume")
	}
	wantLine(t, j, fromA, "1 created", "0 bytes reflinked, 2097152 bytes copied")
	noSyncLeftovers(t, local)
}

// With a snapshot both hosts hold, the stream is incremental against it,
// and small.
func TestSyncIncremental(t *testing.T) {
	local, a := newReplHost(t), newReplHost(t)
	a.serve(t, local)
	local.serve(t, a)
	fromA, toLocal := local.dial(t, a), a.dial(t, local)
	ctx := replCtx(t)
	av := syncVolume(t, a, "v1", service.CreateOptions{})
	randomFile(t, filepath.Join(av, "big"), 8<<20)
	put(t, filepath.Join(av, "small"), "one", time.Now().Add(-time.Hour))
	s1, err := a.s.CreateSnapshot("v1")
	must(t, err)
	_, err = a.s.SendTo(ctx, toLocal, s1.Name)
	must(t, err)
	_, err = local.s.Restore(s1.Name, "v1", false)
	must(t, err)
	lv, err := local.s.Path("v1")
	must(t, err)

	put(t, filepath.Join(av, "small"), "two", time.Now())
	j := syncOK(t, local, "v1", fromA)
	wantLine(t, j, fromA, "0 created, 1 updated, 1 unchanged", "stream incremental against "+s1.Name)
	if line := hostLine(t, j, fromA); j.BytesDone > 1<<20 {
		t.Errorf("incremental stream of %d bytes (%s): want far below the 8 MiB of data", j.BytesDone, line)
	}
	if readFile(t, filepath.Join(lv, "small")) != "two" {
		t.Errorf("small was not updated")
	}
	if !slices.Contains(j.Uses, s1.Name) {
		t.Errorf("job uses %v: want the parent %s kept from purge", j.Uses, s1.Name)
	}
	noSyncLeftovers(t, local)
	noSyncLeftovers(t, a)
}

// A link cut in the middle of the stream fails the job and leaves nothing
// on either side: no received copy, no staging, no temporary snapshot on
// the host, the volume as it was. A retry goes through.
func TestSyncCutStreamLeavesNothing(t *testing.T) {
	local, a := newReplHost(t), newReplHost(t)
	a.serve(t, local)
	av := syncVolume(t, a, "v1", service.CreateOptions{})
	randomFile(t, filepath.Join(av, "big"), 16<<20)
	lv := syncVolume(t, local, "v1", service.CreateOptions{})
	put(t, filepath.Join(lv, "mine"), "mine", time.Now())

	proxy := cutProxy(t, a.addr, 2<<20, false)
	must(t, remote.AddKnownHost(filepath.Join(local.dir, "known_hosts"), proxy, a.key(t, "host_key").PublicKey(), false))
	j := syncJob(t, local, "v1", false, local.dialAddr(t, proxy))
	if j.State != service.JobFailed || !strings.Contains(j.Error, "pull of volume") {
		t.Fatalf("sync over a cut link: %s %q; want it failed, saying the pull broke", j.State, j.Error)
	}
	t.Logf("failed as wanted: %s", j.Error)
	servedJobsDone(t, a)
	noSyncLeftovers(t, local)
	noSyncLeftovers(t, a)
	if entries, _ := os.ReadDir(lv); len(entries) != 1 || len(snapshotNames(t, local.s, "v1")) != 0 {
		t.Errorf("the volume changed: %v", entries)
	}

	syncOK(t, local, "v1", local.dial(t, a))
	sameContent(t, av, lv, "big")
	noSyncLeftovers(t, local)
}

// dialAddr connects h to a butterd endpoint at addr.
func (h *replHost) dialAddr(t *testing.T, addr string) *remote.Client {
	t.Helper()
	return h.dial(t, &replHost{addr: addr})
}

// cutProxy forwards TCP connections to target and, after after bytes from
// target, cuts both sides (or, with stall, stops forwarding and keeps them
// open until the test ends).
func cutProxy(t *testing.T, target string, after int64, stall bool) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, u)
			mu.Unlock()
			wg.Go(func() { io.Copy(u, c); u.Close() })
			wg.Go(func() {
				io.CopyN(c, u, after)
				if !stall {
					c.Close()
					u.Close()
				}
			})
		}
	})
	return l.Addr().String()
}

// SyncFrom checks its hosts as SyncVolume does: one host twice, or none,
// is refused before any job.
func TestSyncFromChecksHosts(t *testing.T) {
	local, a := newReplHost(t), newReplHost(t)
	a.serve(t, local)
	fromA := local.dial(t, a)
	syncVolume(t, local, "db", service.CreateOptions{})
	for _, c := range []struct {
		clients []*remote.Client
		want    string
	}{
		{[]*remote.Client{fromA, fromA}, "is given twice"},
		{nil, "sync needs 1 to 32 hosts, not 0"},
		{[]*remote.Client{nil}, "is not connected"},
	} {
		if j, err := local.s.SyncFrom(c.clients, "db", false); !errors.Is(err, service.ErrInvalidArg) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("sync from %d clients: job %d, %v; want an invalid argument saying %q", len(c.clients), j.ID, err, c.want)
		}
	}
	if jobs := local.s.ListJobs(); len(jobs) != 0 {
		t.Errorf("refused syncs started jobs: %+v", jobs)
	}
}
