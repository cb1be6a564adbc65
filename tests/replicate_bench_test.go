package tests

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"butterd/service"
	"butterd/service/remote"
	"butterd/tests/testenv"
)

// Replication against its primitives, on the same generated data and in
// the same run (issue "Speed"); tests/benchreport prints the ratios:
//
//   - BenchmarkReplicateBtrfsPipe: `btrfs send | btrfs receive`, two
//     processes joined by a pipe, from one loop BTRFS to another.
//   - BenchmarkReplicateBtrfsPipeDurable: the same, then `btrfs
//     filesystem sync` of the receiver (its data written out).
//   - BenchmarkReplicateSendToLoopback: service.Store.SendTo to another
//     store's replication endpoint (remote.Server) on 127.0.0.1: butterd's
//     SSH transport, both ends in this process.
//   - BenchmarkReplicateOpenSSH: `btrfs send | ssh | btrfs receive` from
//     host A to an sshd in host B (network namespaces, testenv.Hosts).
//   - BenchmarkReplicateSendToNetns: SendTo from A to an endpoint that
//     listens in B.
//   - BenchmarkReplicateIncremental: after a full SendTo, the size of
//     incremental sends, each after changing 1% of the volume.
//
// The throughput benchmarks report MB/s of the volume's data. Each round
// sends the same read-only snapshot in full; between rounds, with the timer
// stopped, the receiver's copy is deleted and both filesystems settle
// (cleaner done, data written). Run them with a few rounds:
//
//	go test -run '^$' -bench Replicate -benchtime 3x ./tests/
//
// BUTTERD_BENCH_REPLICATE_MIB sets the volume size of all of them
// (default: replMiB for throughput, replIncrMiB for the incremental check).
//
// The same figure with two butterd daemons (an endpoint served by butterd
// in B, `butterctl send` in A) is a BenchmarkReplicateButterdNetns, which
// benchreport prefers to the in-process one: testenv.Hosts(b, 2), then
// testenv.StartHost on each with FSSize replFSSize(mib), replFill into a
// volume made with butterctl on A, a snapshot, the peers added with
// `butterctl remote add`, and replRounds with `butterctl send` in A as the
// round and `butterctl rm SNAPSHOT` in B plus replSettle as the drop.

const (
	replMiB     = 256  // MiB of data in the throughput benchmarks' volume
	replIncrMiB = 1024 // in the incremental check's
	replFile    = 1 << 20
)

// replSize is the volume size in MiB: def, or BUTTERD_BENCH_REPLICATE_MIB.
func replSize(b *testing.B, def int) int {
	v := os.Getenv("BUTTERD_BENCH_REPLICATE_MIB")
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		b.Fatalf("BUTTERD_BENCH_REPLICATE_MIB=%q: want a number of MiB", v)
	}
	return n
}

// replFSSize is the size of a filesystem that holds a volume of mib MiB,
// one more copy being deleted, and the changes of a few rounds.
func replFSSize(mib int) string { return fmt.Sprintf("%dM", 2*mib+512) }

// replSource is the sending side: a store on a fresh BTRFS holding volume
// "data" and a read-only snapshot of it.
type replSource struct {
	s        *service.Store
	mnt      string
	vol      string // the volume's path
	snap     string // the snapshot's name
	snapPath string
	mib      int
}

// newReplSource makes the volume, fills it with mib MiB of incompressible
// files and snapshots it, all on disk before anything is timed.
func newReplSource(b *testing.B, mib int) *replSource {
	b.Helper()
	mnt := testenv.BtrfsSize(b, replFSSize(mib))
	root := filepath.Join(mnt, "data root")
	src := &replSource{s: perfStoreAt(b, root), mnt: mnt, mib: mib}
	v, _, err := src.s.CreateVolume("data", service.CreateOptions{})
	if err != nil {
		b.Fatal(err)
	}
	src.vol = v.Path
	replFill(b, src.vol, mib)
	snap, err := src.s.CreateSnapshot("data")
	if err != nil {
		b.Fatal(err)
	}
	src.snap, src.snapPath = snap.Name, filepath.Join(root, "snapshots", snap.Name)
	replSettle(b, mnt)
	return src
}

// replFill writes mib files of 1 MiB of pseudo-random bytes into dir.
func replFill(b *testing.B, dir string, mib int) {
	b.Helper()
	for i := range mib {
		replWrite(b, dir, i, 0)
	}
}

// replChange rewrites in place 1% of the files replFill made (rounded up),
// other ones each round, with new bytes.
func replChange(b *testing.B, dir string, mib, round int) {
	b.Helper()
	k := (mib + 99) / 100
	for j := range k {
		replWrite(b, dir, (round*k+j)%mib, round+1)
	}
}

// replWrite writes file i of dir, generation gen, over what is there.
func replWrite(b *testing.B, dir string, i, gen int) {
	var seed [32]byte
	binary.LittleEndian.PutUint64(seed[:], uint64(i))
	binary.LittleEndian.PutUint64(seed[8:], uint64(gen))
	buf := make([]byte, replFile)
	rand.NewChaCha8(seed).Read(buf)
	f, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("f%05d", i)), os.O_WRONLY|os.O_CREATE, 0o600)
	if err == nil {
		_, err = f.WriteAt(buf, 0)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		b.Fatal(err)
	}
}

// replSettle waits until the filesystem at mnt has cleaned up deleted
// subvolumes and written its data. `btrfs filesystem sync` commits and
// wakes the cleaner (a syncfs does not: the cleaner would wait for the next
// periodic commit, up to 30 s).
func replSettle(b *testing.B, mnt string) {
	b.Helper()
	for _, args := range [][]string{{"filesystem", "sync", mnt}, {"subvolume", "sync", mnt}, {"filesystem", "sync", mnt}} {
		if out, err := exec.Command("btrfs", args...).CombinedOutput(); err != nil {
			b.Fatalf("btrfs %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
}

// replRounds sets the bytes of a round to the volume's data and runs send
// b.N times; after each, with the timer stopped, drop removes what was
// received.
func replRounds(b *testing.B, mib int, send, drop func()) {
	b.SetBytes(int64(mib) * replFile)
	for b.Loop() {
		send()
		b.StopTimer()
		drop()
		b.StartTimer()
	}
}

// replPipe runs cmds with each one's standard output piped into the next
// one's standard input, and fails the benchmark when one fails.
func replPipe(b *testing.B, cmds ...*exec.Cmd) {
	b.Helper()
	var ends []*os.File
	stderr := make([]bytes.Buffer, len(cmds))
	for i, c := range cmds {
		c.Stderr = &stderr[i]
		if i > 0 {
			r, w, err := os.Pipe()
			if err != nil {
				b.Fatal(err)
			}
			cmds[i-1].Stdout, c.Stdin = w, r
			ends = append(ends, r, w)
		}
	}
	var failed []string
	for _, c := range cmds {
		if err := c.Start(); err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", c, err))
			break
		}
	}
	for _, f := range ends {
		f.Close()
	}
	for i, c := range cmds {
		if c.Process == nil {
			continue
		}
		if len(failed) > 0 {
			c.Process.Kill()
		}
		if err := c.Wait(); err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v: %s", c, err, stderr[i].String()))
		}
	}
	if len(failed) > 0 {
		b.Fatalf("pipeline failed: %s", strings.Join(failed, "; "))
	}
}

// replDropSubvolume deletes the subvolume name received under dir and lets
// the filesystem at mnt settle.
func replDropSubvolume(b *testing.B, mnt, dir, name string) {
	b.Helper()
	if out, err := exec.Command("btrfs", "subvolume", "delete", filepath.Join(dir, name)).CombinedOutput(); err != nil {
		b.Fatalf("the received copy: %v: %s", err, out)
	}
	replSettle(b, mnt)
}

func BenchmarkReplicateBtrfsPipe(b *testing.B) {
	btrfsBin := testenv.Command(b, "btrfs")
	src := newReplSource(b, replSize(b, replMiB))
	dst := testenv.BtrfsSize(b, replFSSize(src.mib))
	replRounds(b, src.mib, func() {
		replPipe(b, exec.Command(btrfsBin, "send", "-q", src.snapPath), exec.Command(btrfsBin, "receive", "-q", dst))
	}, func() {
		replDropSubvolume(b, dst, dst, src.snap)
	})
}

// BenchmarkReplicateBtrfsPipeDurable is BenchmarkReplicateBtrfsPipe
// followed by `btrfs filesystem sync` of the receiving filesystem: the
// received data on disk, as it is when butterd's import makes its
// read-only snapshot (a snapshot writes out the data of its source).
func BenchmarkReplicateBtrfsPipeDurable(b *testing.B) {
	btrfsBin := testenv.Command(b, "btrfs")
	src := newReplSource(b, replSize(b, replMiB))
	dst := testenv.BtrfsSize(b, replFSSize(src.mib))
	replRounds(b, src.mib, func() {
		replPipe(b, exec.Command(btrfsBin, "send", "-q", src.snapPath), exec.Command(btrfsBin, "receive", "-q", dst))
		if out, err := exec.Command(btrfsBin, "filesystem", "sync", dst).CombinedOutput(); err != nil {
			b.Fatalf("btrfs filesystem sync: %v: %s", err, out)
		}
	}, func() {
		replDropSubvolume(b, dst, dst, src.snap)
	})
}

func BenchmarkReplicateOpenSSH(b *testing.B) {
	btrfsBin := testenv.Command(b, "btrfs")
	src := newReplSource(b, replSize(b, replMiB))
	dst := testenv.BtrfsSize(b, replFSSize(src.mib))
	hosts := testenv.Hosts(b, 2)
	ssh := startSSHD(b, hosts[1])
	receive := btrfsBin + " receive -q " + shellQuote(dst)
	replRounds(b, src.mib, func() {
		replPipe(b, exec.Command(btrfsBin, "send", "-q", src.snapPath),
			hosts[0].Command(context.Background(), ssh[0], append(ssh[1:], receive)...))
	}, func() {
		replDropSubvolume(b, dst, dst, src.snap)
	})
}

func BenchmarkReplicateSendToLoopback(b *testing.B) {
	src, dst, dstMnt, dial := replLoopback(b, replSize(b, replMiB))
	replSendRounds(b, src, dst, dstMnt, dial)
}

// BenchmarkReplicateExportImport is butterd's own stream path on one
// machine, without SSH: an export job writes the send stream into a pipe
// whose other end an import job of another store receives (header and
// clone checks, btrfs receive, the snapshot put in place), as `butterctl
// export SNAP - | butterctl import -` does on one host.
func BenchmarkReplicateExportImport(b *testing.B) {
	src := newReplSource(b, replSize(b, replMiB))
	dst, dstMnt := replTarget(b, src.mib)
	replRounds(b, src.mib, func() {
		r, w, err := os.Pipe()
		if err != nil {
			b.Fatal(err)
		}
		ej, err := src.s.ExportSnapshot(src.snap, "", w)
		if err != nil {
			r.Close()
			b.Fatal(err)
		}
		ij, err := dst.ImportSnapshot(r)
		if err != nil {
			b.Fatal(err)
		}
		for _, j := range []struct {
			s  *service.Store
			id uint32
		}{{src.s, ej.ID}, {dst, ij.ID}} {
			for {
				got, err := j.s.GetJob(j.id)
				if err != nil {
					b.Fatal(err)
				}
				if got.Done() {
					if got.State != service.JobDone {
						b.Fatalf("%s job %d: %s %s", got.Kind, got.ID, got.State, got.Error)
					}
					break
				}
				time.Sleep(time.Millisecond)
			}
		}
	}, func() {
		if err := dst.RemoveSnapshot(src.snap); err != nil {
			b.Fatal(err)
		}
		replSettle(b, dstMnt)
	})
}

// replLoopback makes a source of mib MiB and a target store whose endpoint
// listens on 127.0.0.1.
func replLoopback(b *testing.B, mib int) (*replSource, *service.Store, string, replDial) {
	b.Helper()
	src := newReplSource(b, mib)
	dst, dstMnt := replTarget(b, mib)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	return src, dst, dstMnt, replServe(b, dst, l, remote.Options{})
}

func BenchmarkReplicateSendToNetns(b *testing.B) {
	src := newReplSource(b, replSize(b, replMiB))
	dst, dstMnt := replTarget(b, src.mib)
	hosts := testenv.Hosts(b, 2)
	l, err := hosts[1].Listen("tcp", net.JoinHostPort(hosts[1].Addr, strconv.Itoa(testenv.SSHPort)))
	if err != nil {
		b.Fatal(err)
	}
	replSendRounds(b, src, dst, dstMnt, replServe(b, dst, l, remote.Options{Dial: hosts[0].DialContext}))
}

// replSendRounds times full SendTo rounds of src's snapshot to dst, each
// on a new connection made by dial, as `btrfs send | ssh` makes one.
func replSendRounds(b *testing.B, src *replSource, dst *service.Store, dstMnt string, dial replDial) {
	ctx := replBenchCtx(b)
	var stream int64
	replRounds(b, src.mib, func() {
		c := dial(ctx)
		r, err := src.s.SendTo(ctx, c, src.snap)
		c.Close()
		if err != nil {
			b.Fatal(err)
		}
		if r.Incremental || r.AlreadyThere {
			b.Fatalf("send = %+v, want a full stream", r)
		}
		stream = r.Bytes
	}, func() {
		if err := dst.RemoveSnapshot(src.snap); err != nil {
			b.Fatal(err)
		}
		replSettle(b, dstMnt)
	})
	b.ReportMetric(float64(stream), "stream-bytes")
}

func BenchmarkReplicateIncremental(b *testing.B) {
	src, _, _, dial := replLoopback(b, replSize(b, replIncrMiB))
	ctx := replBenchCtx(b)
	c := dial(ctx)
	defer c.Close()
	full, err := src.s.SendTo(ctx, c, src.snap)
	if err != nil {
		b.Fatal(err)
	}
	if full.Incremental || full.Bytes < int64(src.mib)*replFile {
		b.Fatalf("first send = %+v, want a full stream of at least the %d MiB of data", full, src.mib)
	}
	parent := src.snap
	var sum int64
	rounds := 0
	for b.Loop() {
		b.StopTimer()
		replChange(b, src.vol, src.mib, rounds)
		snap, err := src.s.CreateSnapshot("data")
		if err != nil {
			b.Fatal(err)
		}
		replSettle(b, src.mnt)
		b.StartTimer()
		r, err := src.s.SendTo(ctx, c, snap.Name)
		if err != nil {
			b.Fatal(err)
		}
		if !r.Incremental || r.Parent != parent {
			b.Fatalf("send after a 1%% change = %+v, want incremental against %s", r, parent)
		}
		parent = snap.Name
		sum += r.Bytes
		rounds++
	}
	mean := float64(sum) / float64(rounds)
	b.ReportMetric(float64(full.Bytes), "full-bytes")
	b.ReportMetric(mean, "incr-bytes")
	b.ReportMetric(100*mean/float64(full.Bytes), "incr-%")
}

// replTarget opens the receiving store on a fresh BTRFS; it also returns
// that filesystem's mount point.
func replTarget(b *testing.B, mib int) (*service.Store, string) {
	b.Helper()
	mnt := testenv.BtrfsSize(b, replFSSize(mib))
	return perfStoreAt(b, filepath.Join(mnt, "data root")), mnt
}

// replDial connects to a replication endpoint; it fails the benchmark
// when it cannot.
type replDial func(ctx context.Context) *remote.Client

// replServe serves dst's replication endpoint on l until the benchmark
// ends, for one peer that may push and pull, and returns how that peer
// connects to it with opts.
func replServe(b *testing.B, dst *service.Store, l net.Listener, opts remote.Options) replDial {
	b.Helper()
	dir := b.TempDir()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	key := func(name string) ssh.Signer {
		k, err := remote.LoadOrCreateKey(filepath.Join(dir, name))
		if err != nil {
			b.Fatal(err)
		}
		return k
	}
	hostKey, clientKey := key("host_key"), key("client_key")
	peers := remote.OpenPeers(filepath.Join(dir, "peers.json"))
	if err := peers.Add(remote.Peer{Name: "bench", PublicKey: clientKey.PublicKey(), Push: true, Pull: true}); err != nil {
		b.Fatal(err)
	}
	srv := &remote.Server{HostKey: hostKey, Peers: peers, Handler: dst.RemoteHandler(), Log: quiet}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Serve(ctx, l); close(done) }()
	b.Cleanup(func() { cancel(); <-done })

	addr := l.Addr().String()
	knownHosts := filepath.Join(dir, "known_hosts")
	if err := remote.AddKnownHost(knownHosts, addr, hostKey.PublicKey(), false); err != nil {
		b.Fatal(err)
	}
	opts.Log = quiet
	return func(ctx context.Context) *remote.Client {
		c, err := remote.Dial(ctx, addr, "butterd", clientKey, knownHosts, opts)
		if err != nil {
			b.Fatal(err)
		}
		return c
	}
}

func replBenchCtx(b *testing.B) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	b.Cleanup(cancel)
	return ctx
}

// startSSHD runs OpenSSH's sshd as root inside h, on port 22 of its
// address, with a host key and an authorized client key made for it in a
// temporary directory, and returns the ssh command line (without the
// remote command) that logs in from another host. Cleanup stops it.
func startSSHD(b *testing.B, h *testenv.Host) []string {
	b.Helper()
	sshd := testenv.Command(b, "sshd")
	ssh := testenv.Command(b, "ssh")
	keygen := testenv.Command(b, "ssh-keygen")
	dir := b.TempDir()
	file := func(name string) string { return filepath.Join(dir, name) }
	for _, k := range []string{"host_key", "client_key"} {
		if out, err := exec.Command(keygen, "-q", "-t", "ed25519", "-N", "", "-C", k, "-f", file(k)).CombinedOutput(); err != nil {
			b.Fatalf("ssh-keygen: %v: %s", err, out)
		}
	}
	read := func(name string) string {
		data, err := os.ReadFile(file(name))
		if err != nil {
			b.Fatal(err)
		}
		return string(data)
	}
	config := strings.Join([]string{
		"ListenAddress " + h.Addr, "Port 22", "HostKey " + file("host_key"),
		"AuthorizedKeysFile " + file("authorized_keys"), "PermitRootLogin prohibit-password",
		"PasswordAuthentication no", "KbdInteractiveAuthentication no", "UsePAM no", "StrictModes no",
		"UseDNS no", "PrintMotd no", "PidFile none", "",
	}, "\n")
	for name, data := range map[string]string{
		"sshd_config":     config,
		"authorized_keys": read("client_key.pub"),
		"known_hosts":     h.Addr + " " + read("host_key.pub"),
	} {
		if err := os.WriteFile(file(name), []byte(data), 0o600); err != nil {
			b.Fatal(err)
		}
	}
	// sshd's privilege separation directory, as its package makes it.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		b.Fatal(err)
	}

	// A session runs the command with root's shell, and bash reads
	// ~/.bashrc then: that file is hidden from sshd (/dev/null bound over
	// it in the mount namespace of its own that ip netns exec gives it), so
	// that a round times the transfer, not this machine's shell set-up.
	root, err := user.Lookup("root")
	if err != nil {
		b.Fatal(err)
	}
	cmd := h.Command(context.Background(), "sh", "-c", `if [ -f "$1" ]; then mount --bind /dev/null "$1" || exit; fi; shift; exec "$@"`,
		"sh", filepath.Join(root.HomeDir, ".bashrc"), sshd, "-D", "-e", "-f", file("sshd_config"))
	stderr, err := cmd.StderrPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatalf("start sshd: %v", err)
	}
	var log bytes.Buffer
	logged := make(chan struct{})
	listening := make(chan bool, 1)
	go func() {
		defer close(logged)
		buf := make([]byte, 4096)
		said := false
		for {
			n, err := stderr.Read(buf)
			log.Write(buf[:n])
			if !said && strings.Contains(log.String(), "Server listening on "+h.Addr) {
				said = true
				listening <- true
			}
			if err != nil {
				if !said {
					listening <- false
				}
				return
			}
		}
	}()
	b.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		<-logged
		cmd.Wait()
		if b.Failed() {
			b.Logf("sshd log:\n%s", log.String())
		}
	})
	if !<-listening {
		<-logged
		b.Fatalf("sshd in %s did not listen: %s", h.Name, log.String())
	}
	return []string{ssh, "-F", "/dev/null", "-i", file("client_key"), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
		"-o", "UserKnownHostsFile=" + file("known_hosts"), "-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "StrictHostKeyChecking=yes", "-o", "Compression=no", "-o", "LogLevel=ERROR",
		"-c", "aes128-gcm@openssh.com", "root@" + h.Addr}
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func BenchmarkReplicateButterdNetns(b *testing.B) {
	testenv.Command(b, "btrfs")
	mib := replSize(b, replMiB)
	hosts := testenv.Hosts(b, 2)
	a := testenv.StartHost(b, hosts[0], testenv.HostOptions{FSSize: replFSSize(mib)})
	dst := testenv.StartHost(b, hosts[1], testenv.HostOptions{FSSize: replFSSize(mib)})
	ctl := func(hd *testenv.HostDaemon, args ...string) string {
		b.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		var stderr bytes.Buffer
		cmd := hd.Butterctl(ctx, b, args...)
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			b.Fatalf("butterctl %s in %s: %v: %s", strings.Join(args, " "), hd.Name, err, stderr.String())
		}
		return strings.TrimSpace(string(out))
	}
	keys := func(hd *testenv.HostDaemon) (client, hostFP string) {
		client, hostFP, _ = strings.Cut(ctl(hd, "remote", "key"), "\n")
		return client, hostFP
	}
	clientA, hostA := keys(a)
	clientB, hostB := keys(dst)
	ctl(a, "remote", "add", "hostb", "--address", dst.Addr, "--key", clientB)
	ctl(dst, "remote", "add", "hosta", "--address", a.Addr, "--key", clientA, "--push")
	ctl(a, "remote", "trust", "hostb", hostB)
	ctl(dst, "remote", "trust", "hosta", hostA)

	ctl(a, "volume", "create", "data")
	replFill(b, filepath.Join(a.DataRoot, "volumes", "data"), mib)
	snap := ctl(a, "snapshot", "data")
	replSettle(b, filepath.Dir(a.DataRoot))
	replRounds(b, mib, func() {
		if out := ctl(a, "send", "-q", "hostb", snap); !strings.HasPrefix(out, "full: ") {
			b.Fatalf("send printed %q, want a full stream", out)
		}
	}, func() {
		ctl(dst, "rm", snap)
		replSettle(b, filepath.Dir(dst.DataRoot))
	})
}
