package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"butterd/service"
	"butterd/tests/testenv"
)

// Benchmarks of butterd against the raw primitive it is built on, measured
// in the same run: each service figure has a bare
// counterpart (the BTRFS ioctl issued directly, or an HTTP round trip over a
// unix socket to a trivial server), and `make bench` prints them side by
// side with tests/benchreport. Each benchmark times every operation on its
// own and reports the median and the 99th percentile besides the mean
// (ns/op); run them with -benchtime 1000x (or more) so that each figure
// rests on at least 1,000 operations. Nothing here asserts a time.

// perfBatch is how many subvolumes a benchmark makes (or removes) between
// pauses, in which, with the timer stopped, the next batch is prepared or
// the last one removed so that a long run does not fill the filesystem.
const perfBatch = 1000

// perfPluginVolumes is how many volumes the plugin benchmarks start with.
const perfPluginVolumes = 10000

// perfFSSize is the size of each benchmark's fresh BTRFS: an empty
// subvolume takes about 32 KiB of metadata (a 16 KiB root node, twice with
// DUP metadata), so 10,000 volumes need about 320 MiB.
const perfFSSize = "2G"

// The bare BTRFS ioctls, from <linux/btrfs.h>.

// struct btrfs_ioctl_vol_args { __s64 fd; char name[4088]; } (4096 bytes).
type perfVolArgs struct {
	Fd   int64
	Name [4088]byte
}

// struct btrfs_ioctl_vol_args_v2 { __s64 fd; __u64 transid; __u64 flags;
// __u64 unused[4]; char name[4040]; } (4096 bytes).
type perfVolArgsV2 struct {
	Fd      int64
	Transid uint64
	Flags   uint64
	Unused  [4]uint64
	Name    [4040]byte
}

// perfIOW is _IOW(0x94, nr, size) in the generic encoding.
func perfIOW(nr, size uintptr) uintptr { return 1<<30 | size<<16 | 0x94<<8 | nr }

var (
	perfIocSubvolCreate = perfIOW(14, unsafe.Sizeof(perfVolArgs{}))   // BTRFS_IOC_SUBVOL_CREATE
	perfIocSnapDestroy  = perfIOW(15, unsafe.Sizeof(perfVolArgs{}))   // BTRFS_IOC_SNAP_DESTROY
	perfIocSnapCreateV2 = perfIOW(23, unsafe.Sizeof(perfVolArgsV2{})) // BTRFS_IOC_SNAP_CREATE_V2
)

const perfSubvolRdonly = 1 << 1 // BTRFS_SUBVOL_RDONLY

func perfIoctl(fd int, req uintptr, arg unsafe.Pointer) error {
	for {
		_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(arg))
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return e
		}
		return nil
	}
}

// perfCreate makes the empty subvolume name in the directory open as dirfd.
func perfCreate(dirfd int, name string) error {
	var a perfVolArgs
	copy(a.Name[:], name)
	return perfIoctl(dirfd, perfIocSubvolCreate, unsafe.Pointer(&a))
}

// perfSnapshot makes name, in the directory open as dirfd, a read-only
// snapshot of the subvolume open as srcfd.
func perfSnapshot(dirfd, srcfd int, name string) error {
	var a perfVolArgsV2
	a.Fd = int64(srcfd)
	a.Flags = perfSubvolRdonly
	copy(a.Name[:], name)
	return perfIoctl(dirfd, perfIocSnapCreateV2, unsafe.Pointer(&a))
}

// perfDestroy deletes the subvolume name in the directory open as dirfd.
func perfDestroy(dirfd int, name string) error {
	var a perfVolArgs
	copy(a.Name[:], name)
	return perfIoctl(dirfd, perfIocSnapDestroy, unsafe.Pointer(&a))
}

// perfOpenDir opens a directory for ioctls; cleanup closes it.
func perfOpenDir(b *testing.B, dir string) int {
	b.Helper()
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		b.Fatalf("open %q: %v", dir, err)
	}
	b.Cleanup(func() { unix.Close(fd) })
	return fd
}

// perfSync commits the filesystem holding the directory open as fd.
func perfSync(b *testing.B, fd int) {
	b.Helper()
	if err := unix.Syncfs(fd); err != nil {
		b.Fatalf("syncfs: %v", err)
	}
}

func perfName(i int) string { return fmt.Sprintf("v%05d", i) }

// perfTimes collects the time of each operation.
type perfTimes []time.Duration

// report adds the median and the 99th percentile (nearest rank) to the
// benchmark's result. Call it after the b.Loop loop.
func (p perfTimes) report(b *testing.B) {
	b.Helper()
	if len(p) == 0 {
		return
	}
	s := append(perfTimes(nil), p...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	n := len(s)
	median := float64(s[n/2])
	if n%2 == 0 {
		median = (float64(s[n/2-1]) + float64(s[n/2])) / 2
	}
	rank := (99*n + 99) / 100 // ceil(0.99 n)
	b.ReportMetric(median, "median-ns/op")
	b.ReportMetric(float64(s[rank-1]), "p99-ns/op")
}

// perfStore opens a store on a data root in a fresh BTRFS. It logs at the
// default level (info) as butterd does, into io.Discard: the cost of
// formatting log lines counts, that of writing them does not.
func perfStore(b *testing.B) (*service.Store, int) {
	b.Helper()
	root := filepath.Join(testenv.BtrfsSize(b, perfFSSize), "data root")
	return perfStoreAt(b, root), perfOpenDir(b, root)
}

// perfStoreAt opens a store on root as perfStore does.
func perfStoreAt(b *testing.B, root string) *service.Store {
	b.Helper()
	s, err := service.Open(service.Config{
		Root:   root,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		BootID: "bench",
	})
	if err != nil {
		b.Fatalf("open store: %v", err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// BenchmarkBareCreate is BTRFS_IOC_SUBVOL_CREATE on an open directory.
func BenchmarkBareCreate(b *testing.B) {
	dirfd := perfOpenDir(b, testenv.BtrfsSize(b, perfFSSize))
	var times perfTimes
	for i := 0; b.Loop(); i++ {
		perfDropBatch(b, dirfd, i)
		name := perfName(i)
		start := time.Now()
		err := perfCreate(dirfd, name)
		times = append(times, time.Since(start))
		if err != nil {
			b.Fatalf("create %s: %v", name, err)
		}
	}
	times.report(b)
}

// BenchmarkStoreCreate is service.Store.CreateVolume without options.
func BenchmarkStoreCreate(b *testing.B) {
	s, rootfd := perfStore(b)
	var times perfTimes
	for i := 0; b.Loop(); i++ {
		if i > 0 && i%perfBatch == 0 {
			b.StopTimer()
			for j := i - perfBatch; j < i; j++ {
				if _, err := s.RemoveVolume(perfName(j), service.RemoveOptions{NoFinalSnapshot: true}); err != nil {
					b.Fatal(err)
				}
			}
			perfSync(b, rootfd)
			b.StartTimer()
		}
		name := perfName(i)
		start := time.Now()
		_, _, err := s.CreateVolume(name, service.CreateOptions{})
		times = append(times, time.Since(start))
		if err != nil {
			b.Fatalf("create volume %s: %v", name, err)
		}
	}
	times.report(b)
}

// BenchmarkBareSnapshot is BTRFS_IOC_SNAP_CREATE_V2 (read-only) of an empty
// subvolume, with the source and the target directory already open.
func BenchmarkBareSnapshot(b *testing.B) {
	mnt := testenv.BtrfsSize(b, perfFSSize)
	mntfd := perfOpenDir(b, mnt)
	if err := perfCreate(mntfd, "src"); err != nil {
		b.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(mnt, "snapshots"), 0o700); err != nil {
		b.Fatal(err)
	}
	srcfd := perfOpenDir(b, filepath.Join(mnt, "src"))
	dirfd := perfOpenDir(b, filepath.Join(mnt, "snapshots"))
	perfSync(b, mntfd)
	var times perfTimes
	for i := 0; b.Loop(); i++ {
		perfDropBatch(b, dirfd, i)
		name := perfName(i)
		start := time.Now()
		err := perfSnapshot(dirfd, srcfd, name)
		times = append(times, time.Since(start))
		if err != nil {
			b.Fatalf("snapshot %s: %v", name, err)
		}
	}
	times.report(b)
}

// BenchmarkStoreSnapshot is service.Store.CreateSnapshot of an empty volume.
func BenchmarkStoreSnapshot(b *testing.B) {
	s, rootfd := perfStore(b)
	if _, _, err := s.CreateVolume("src", service.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	perfSync(b, rootfd)
	var times perfTimes
	var made []string
	for i := 0; b.Loop(); i++ {
		if i > 0 && i%perfBatch == 0 {
			b.StopTimer()
			for _, name := range made {
				if err := s.RemoveSnapshot(name); err != nil {
					b.Fatal(err)
				}
			}
			made = made[:0]
			perfSync(b, rootfd)
			b.StartTimer()
		}
		start := time.Now()
		snap, err := s.CreateSnapshot("src")
		times = append(times, time.Since(start))
		if err != nil {
			b.Fatalf("snapshot: %v", err)
		}
		made = append(made, snap.Name)
	}
	times.report(b)
}

// BenchmarkBareDelete is BTRFS_IOC_SNAP_DESTROY of an empty subvolume made
// (with the timer stopped, and committed) by BTRFS_IOC_SUBVOL_CREATE.
func BenchmarkBareDelete(b *testing.B) {
	dirfd := perfOpenDir(b, testenv.BtrfsSize(b, perfFSSize))
	var times perfTimes
	for i := 0; b.Loop(); i++ {
		if i%perfBatch == 0 {
			b.StopTimer()
			for j := i; j < i+perfBatch; j++ {
				if err := perfCreate(dirfd, perfName(j)); err != nil {
					b.Fatal(err)
				}
			}
			perfSync(b, dirfd)
			b.StartTimer()
		}
		name := perfName(i)
		start := time.Now()
		err := perfDestroy(dirfd, name)
		times = append(times, time.Since(start))
		if err != nil {
			b.Fatalf("delete %s: %v", name, err)
		}
	}
	times.report(b)
}

// BenchmarkBareDeleteSnapshot is BTRFS_IOC_SNAP_DESTROY of a read-only
// snapshot made (with the timer stopped) by BTRFS_IOC_SNAP_CREATE_V2: the
// primitive under Store.RemoveSnapshot.
func BenchmarkBareDeleteSnapshot(b *testing.B) {
	mnt := testenv.BtrfsSize(b, perfFSSize)
	mntfd := perfOpenDir(b, mnt)
	if err := perfCreate(mntfd, "src"); err != nil {
		b.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(mnt, "snapshots"), 0o700); err != nil {
		b.Fatal(err)
	}
	srcfd := perfOpenDir(b, filepath.Join(mnt, "src"))
	dirfd := perfOpenDir(b, filepath.Join(mnt, "snapshots"))
	var times perfTimes
	for i := 0; b.Loop(); i++ {
		if i%perfBatch == 0 {
			b.StopTimer()
			for j := i; j < i+perfBatch; j++ {
				if err := perfSnapshot(dirfd, srcfd, perfName(j)); err != nil {
					b.Fatal(err)
				}
			}
			perfSync(b, dirfd)
			b.StartTimer()
		}
		name := perfName(i)
		start := time.Now()
		err := perfDestroy(dirfd, name)
		times = append(times, time.Since(start))
		if err != nil {
			b.Fatalf("delete %s: %v", name, err)
		}
	}
	times.report(b)
}

// BenchmarkStoreRemoveSnapshot is service.Store.RemoveSnapshot of snapshots
// taken (with the timer stopped) by Store.CreateSnapshot.
func BenchmarkStoreRemoveSnapshot(b *testing.B) {
	s, rootfd := perfStore(b)
	if _, _, err := s.CreateVolume("src", service.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	var times perfTimes
	var todo []string
	for b.Loop() {
		if len(todo) == 0 {
			b.StopTimer()
			for range perfBatch {
				snap, err := s.CreateSnapshot("src")
				if err != nil {
					b.Fatal(err)
				}
				todo = append(todo, snap.Name)
			}
			perfSync(b, rootfd)
			b.StartTimer()
		}
		name := todo[0]
		todo = todo[1:]
		start := time.Now()
		err := s.RemoveSnapshot(name)
		times = append(times, time.Since(start))
		if err != nil {
			b.Fatalf("remove snapshot %s: %v", name, err)
		}
	}
	times.report(b)
}

// BenchmarkStoreRemoveVolume is service.Store.RemoveVolume without the
// final snapshot, of volumes made (with the timer stopped) by
// Store.CreateVolume.
func BenchmarkStoreRemoveVolume(b *testing.B) {
	s, rootfd := perfStore(b)
	var times perfTimes
	for i := 0; b.Loop(); i++ {
		if i%perfBatch == 0 {
			b.StopTimer()
			for j := i; j < i+perfBatch; j++ {
				if _, _, err := s.CreateVolume(perfName(j), service.CreateOptions{}); err != nil {
					b.Fatal(err)
				}
			}
			perfSync(b, rootfd)
			b.StartTimer()
		}
		name := perfName(i)
		start := time.Now()
		_, err := s.RemoveVolume(name, service.RemoveOptions{NoFinalSnapshot: true})
		times = append(times, time.Since(start))
		if err != nil {
			b.Fatalf("remove volume %s: %v", name, err)
		}
	}
	times.report(b)
}

// BenchmarkPlugin starts a real butterd on a data root holding 10,000
// volumes (made beforehand with the bare create ioctl) and times plugin
// calls over its unix socket with a keep-alive client, as Docker makes them:
// List (all 10,000) and Get (one volume). butterd logs at info, its
// default.
func BenchmarkPlugin(b *testing.B) {
	testenv.Root(b)
	root := filepath.Join(testenv.BtrfsSize(b, perfFSSize), "data root")
	if err := os.MkdirAll(filepath.Join(root, "volumes"), 0o700); err != nil {
		b.Fatal(err)
	}
	dirfd := perfOpenDir(b, filepath.Join(root, "volumes"))
	for i := range perfPluginVolumes {
		if err := perfCreate(dirfd, perfName(i)); err != nil {
			b.Fatalf("create %s: %v", perfName(i), err)
		}
	}
	perfSync(b, dirfd)
	sock := filepath.Join(b.TempDir(), "btrfs.sock")
	testenv.StartButterd(b, root, sock, "--log-level=info")
	client := perfClient(sock)
	b.Cleanup(client.CloseIdleConnections)

	b.Run(fmt.Sprintf("List%d", perfPluginVolumes), func(b *testing.B) {
		var list struct {
			Volumes []json.RawMessage
			Err     string
		}
		perfPost(b, client, "/VolumeDriver.List", []byte("{}"), &list)
		if len(list.Volumes) != perfPluginVolumes || list.Err != "" {
			b.Fatalf("List answered %d volumes (Err %q), want %d", len(list.Volumes), list.Err, perfPluginVolumes)
		}
		var times perfTimes
		for b.Loop() {
			start := time.Now()
			perfPost(b, client, "/VolumeDriver.List", []byte("{}"), nil)
			times = append(times, time.Since(start))
		}
		times.report(b)
	})

	b.Run("Get", func(b *testing.B) {
		var get struct {
			Volume struct{ Name, Mountpoint string }
			Err    string
		}
		perfPost(b, client, "/VolumeDriver.Get", []byte(`{"Name":"v00042"}`), &get)
		if get.Volume.Name != "v00042" || get.Err != "" {
			b.Fatalf("Get v00042 answered %+v", get)
		}
		var times perfTimes
		for i := 0; b.Loop(); i++ {
			body := []byte(`{"Name":"` + perfName(i*7919%perfPluginVolumes) + `"}`)
			start := time.Now()
			perfPost(b, client, "/VolumeDriver.Get", body, nil)
			times = append(times, time.Since(start))
		}
		times.report(b)
	})
}

// perfHTTPEnv names the socket on which a re-executed test binary serves
// the bare HTTP answer (see init below).
const perfHTTPEnv = "BUTTERD_BENCH_HTTP_SOCKET"

// perfHTTPAnswer is about the size of butterd's answer to Get.
var perfHTTPAnswer = []byte(`{"Volume":{"Name":"v00042","Mountpoint":"/var/lib/butterd/volumes/v00042","CreatedAt":"2025-01-01T00:00:00Z","Status":{"Mounts":0}}}` + "\n")

// init turns the test binary into the trivial HTTP server of
// BenchmarkBareHTTPUnix when perfHTTPEnv is set, so that it runs in a
// process of its own as butterd does.
func init() {
	sock := os.Getenv(perfHTTPEnv)
	if sock == "" {
		return
	}
	l, err := net.Listen("unix", sock)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	err = http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/vnd.docker.plugins.v1.1+json")
		w.Write(perfHTTPAnswer)
	}))
	fmt.Fprintln(os.Stderr, err)
	os.Exit(2)
}

// BenchmarkBareHTTPUnix is the primitive under every plugin call: a POST
// answered with a small JSON by a trivial Go HTTP server in another process,
// over a unix socket, with the same keep-alive client as BenchmarkPlugin.
func BenchmarkBareHTTPUnix(b *testing.B) {
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	sock := filepath.Join(b.TempDir(), "bare.sock")
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), perfHTTPEnv+"="+sock)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	client := perfClient(sock)
	b.Cleanup(client.CloseIdleConnections)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		c, err := net.Dial("unix", sock)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("bare HTTP server did not listen on %q: %v", sock, err)
		}
	}
	var get struct{ Volume struct{ Name string } }
	perfPost(b, client, "/VolumeDriver.Get", []byte(`{"Name":"v00042"}`), &get)
	if get.Volume.Name != "v00042" {
		b.Fatalf("bare server answered %+v", get)
	}
	var times perfTimes
	for i := 0; b.Loop(); i++ {
		body := []byte(`{"Name":"` + perfName(i*7919%perfPluginVolumes) + `"}`)
		start := time.Now()
		perfPost(b, client, "/VolumeDriver.Get", body, nil)
		times = append(times, time.Since(start))
	}
	times.report(b)
}

// perfClient is a keep-alive HTTP client that dials a unix socket.
func perfClient(sock string) *http.Client {
	return &http.Client{
		Timeout: time.Minute,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", sock)
			},
			MaxIdleConnsPerHost: 1,
			DisableCompression:  true,
		},
	}
}

// perfPost posts body to path and reads the whole answer, decoding it into
// v when v is not nil. Anything but 200 fails the benchmark.
func perfPost(b *testing.B, c *http.Client, path string, body []byte, v any) {
	resp, err := c.Post("http://plugin"+path, "application/json", bytes.NewReader(body))
	if err != nil {
		b.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	if v != nil {
		err = json.NewDecoder(resp.Body).Decode(v)
	}
	if err == nil {
		_, err = io.Copy(io.Discard, resp.Body)
	}
	if err != nil {
		b.Fatalf("POST %s: read answer: %v", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("POST %s answered %d", path, resp.StatusCode)
	}
}

// perfDropBatch, every perfBatch operations, deletes the batch of
// subvolumes perfName(i-perfBatch)..perfName(i-1) in dirfd and commits,
// with the timer stopped, so that the filesystem never fills.
func perfDropBatch(b *testing.B, dirfd, i int) {
	if i == 0 || i%perfBatch != 0 {
		return
	}
	b.StopTimer()
	for j := i - perfBatch; j < i; j++ {
		if err := perfDestroy(dirfd, perfName(j)); err != nil {
			b.Fatal(err)
		}
	}
	perfSync(b, dirfd)
	b.StartTimer()
}
