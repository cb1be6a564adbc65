package tests

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"butterd/dbusapi"
	"butterd/tests/testenv"
)

// Benchmarks of butterd's management path against what it stands on,
// measured in the same run (see bench_test.go for the conventions: each
// operation timed on its own, median and p99 reported, set-up and clean-up
// with the timer stopped, a fresh BTRFS per benchmark):
//
//   - BenchmarkDBusCreateSnapshot, a CreateSnapshot round trip through a
//     private system bus to a real butterd, against BenchmarkStoreSnapshot
//     (the service call in process);
//   - BenchmarkButterctlSnapshot, `butterctl snapshot VOL` run as a process
//     (start, D-Bus, ioctl), against BenchmarkBtrfsProgsSnapshot,
//     `btrfs subvolume snapshot -r SRC DST` run the same way.

// perfButterdOnBus starts a private system bus with the project's policy and
// a butterd serving it (logging at info, its default) on a data root in a
// fresh BTRFS, and connects a client to the bus. It returns the client and
// the data root open for syncfs.
func perfButterdOnBus(b *testing.B) (*testenv.Bus, *dbusapi.Client, int) {
	b.Helper()
	testenv.Root(b)
	bus := testenv.StartBus(b)
	root := filepath.Join(testenv.BtrfsSize(b, perfFSSize), "data root")
	sock := filepath.Join(b.TempDir(), "btrfs.sock")
	// StartButterdWith passes --log-level=debug; the later flag wins.
	testenv.StartButterdWith(b, root, sock, testenv.ButterdOptions{Bus: bus, Args: []string{"--log-level=info"}})
	conn, err := dbus.Connect(bus.Address)
	if err != nil {
		b.Fatalf("connect to the bus %s: %v", bus.Address, err)
	}
	client := dbusapi.NewClient(conn)
	b.Cleanup(func() { client.Close() })
	if _, err := client.CreateVolume("src", nil); err != nil {
		b.Fatalf("CreateVolume src: %v", err)
	}
	rootfd := perfOpenDir(b, root)
	perfSync(b, rootfd)
	return bus, client, rootfd
}

// perfRemoveSnapshots removes the snapshots named over D-Bus and commits
// the filesystem; call it with the timer stopped.
func perfRemoveSnapshots(b *testing.B, client *dbusapi.Client, rootfd int, names []string) {
	b.Helper()
	for _, name := range names {
		if err := client.RemoveSnapshot(name); err != nil {
			b.Fatalf("RemoveSnapshot %s: %v", name, dbusapi.Message(err))
		}
	}
	perfSync(b, rootfd)
}

// BenchmarkDBusCreateSnapshot is dbusapi.Client.CreateSnapshot of an empty
// volume: a method call through a private dbus-daemon (the real policy) to
// butterd and its answer, over one connection.
func BenchmarkDBusCreateSnapshot(b *testing.B) {
	_, client, rootfd := perfButterdOnBus(b)
	var times perfTimes
	var made []string
	for i := 0; b.Loop(); i++ {
		if i > 0 && i%perfBatch == 0 {
			b.StopTimer()
			perfRemoveSnapshots(b, client, rootfd, made)
			made = made[:0]
			b.StartTimer()
		}
		start := time.Now()
		name, err := client.CreateSnapshot("src")
		times = append(times, time.Since(start))
		if err != nil {
			b.Fatalf("CreateSnapshot src: %v", dbusapi.Message(err))
		}
		made = append(made, name)
	}
	times.report(b)
}

// BenchmarkButterctlSnapshot runs the real butterctl binary, `butterctl
// snapshot src`, once per operation: process start, connection to the bus,
// the CreateSnapshot call (and the ioctl in butterd), printing the name and
// exit, as a user or a cron job runs it.
func BenchmarkButterctlSnapshot(b *testing.B) {
	bin := testenv.BuildButterctl(b)
	bus, client, rootfd := perfButterdOnBus(b)
	env := testenv.ButterdEnv(bus)
	var times perfTimes
	var made []string
	for i := 0; b.Loop(); i++ {
		if i > 0 && i%perfBatch == 0 {
			b.StopTimer()
			perfRemoveSnapshots(b, client, rootfd, made)
			made = made[:0]
			b.StartTimer()
		}
		out, d := perfExec(b, env, bin, "snapshot", "src")
		times = append(times, d)
		name := strings.TrimSuffix(out, "\n")
		if !strings.HasPrefix(name, "src@") || strings.ContainsAny(name, "\n ") {
			b.Fatalf("butterctl snapshot src printed %q, want one snapshot name", out)
		}
		made = append(made, name)
	}
	times.report(b)
}

// BenchmarkBtrfsProgsSnapshot runs `btrfs subvolume snapshot -r SRC DST`
// once per operation on an empty subvolume: what one would script without
// butterd, and the yardstick of BenchmarkButterctlSnapshot.
func BenchmarkBtrfsProgsSnapshot(b *testing.B) {
	btrfsBin := testenv.Command(b, "btrfs")
	mnt := testenv.BtrfsSize(b, perfFSSize)
	mntfd := perfOpenDir(b, mnt)
	if err := perfCreate(mntfd, "src"); err != nil {
		b.Fatal(err)
	}
	snaps := filepath.Join(mnt, "snapshots")
	if err := os.Mkdir(snaps, 0o700); err != nil {
		b.Fatal(err)
	}
	src := filepath.Join(mnt, "src")
	dirfd := perfOpenDir(b, snaps)
	perfSync(b, mntfd)
	env := os.Environ()
	var times perfTimes
	for i := 0; b.Loop(); i++ {
		perfDropBatch(b, dirfd, i)
		_, d := perfExec(b, env, btrfsBin, "subvolume", "snapshot", "-r", src, filepath.Join(snaps, perfName(i)))
		times = append(times, d)
	}
	times.report(b)
}

// perfExec runs a command to its end and returns its standard output and
// the time from the start of the process to its exit. A failure (an exit
// status other than 0, or anything on standard error) fails the benchmark.
func perfExec(b *testing.B, env []string, name string, args ...string) (string, time.Duration) {
	b.Helper()
	var out, errb bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	d := time.Since(start)
	if err != nil || errb.Len() > 0 {
		b.Fatalf("%s %s: %v; stdout %q, stderr %q", name, strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String(), d
}
