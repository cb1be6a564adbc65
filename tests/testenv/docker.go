package testenv

import (
	"archive/tar"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Image is the name of the busybox image every test dockerd holds.
const Image = "busybox"

// dockerClient is Debian's client, the one that matches its dockerd.
const dockerClient = "/usr/bin/docker"

// Docker is a dockerd started by a test, with its own data root, exec root
// and API socket. Every dockerd looks for legacy plugins in
// /run/docker/plugins, so tests that start one must not run in parallel.
type Docker struct {
	Pid    int
	Dir    string // holds data/, exec/, the socket, the log and the CLI config
	Socket string

	t    testing.TB
	cmd  *exec.Cmd
	done chan struct{}
	err  error
	log  string
}

// StartDocker starts a dockerd with the flags of SANDBOX.md (no host
// networking is touched: run containers with --network none), waits until
// it answers and imports the busybox image. Cleanup removes every
// container, stops dockerd and unmounts whatever it left behind.
func StartDocker(t testing.TB) *Docker {
	t.Helper()
	Root(t)
	dockerd := Command(t, "dockerd")
	Command(t, "containerd")
	Command(t, "runc")
	_, err := os.Stat(dockerClient)
	Need(t, err == nil, "needs "+dockerClient+" (package docker.io)")
	busybox := Command(t, "busybox")
	Need(t, isStatic(busybox), "needs a static busybox (package busybox-static)")
	LockPlugins(t)

	// A short path: unix sockets of containerd live under the exec root.
	dir, err := os.MkdirTemp("", "butterd-dockerd-")
	if err != nil {
		t.Fatal(err)
	}
	d := &Docker{
		Dir:    dir,
		Socket: filepath.Join(dir, "docker.sock"),
		t:      t,
		done:   make(chan struct{}),
		log:    filepath.Join(dir, "dockerd.log"),
	}
	config := filepath.Join(dir, "daemon.json")
	if err := os.WriteFile(config, []byte("{}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(d.log)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(dockerd,
		"--iptables=false", "--ip-masq=false", "--ip-forward=false", "--bridge=none",
		"--userland-proxy=false", "--storage-driver=overlay2",
		"--config-file="+config,
		"--data-root="+filepath.Join(dir, "data"),
		"--exec-root="+filepath.Join(dir, "exec"),
		"--pidfile="+filepath.Join(dir, "dockerd.pid"),
		"-H", "unix://"+d.Socket)
	cmd.Env = cleanEnv("DOCKER_", "NOTIFY_SOCKET", "LISTEN_")
	cmd.Stdout, cmd.Stderr = logf, logf
	// dockerd shuts down (and stops its containerd) if the test binary dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		t.Fatalf("start dockerd: %v", err)
	}
	d.cmd, d.Pid = cmd, cmd.Process.Pid
	go func() {
		d.err = cmd.Wait()
		close(d.done)
	}()
	t.Cleanup(d.cleanup)

	d.waitReady(60 * time.Second)
	d.importBusybox(busybox)
	return d
}

func (d *Docker) waitReady(limit time.Duration) {
	d.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		select {
		case <-d.done:
			d.t.Fatalf("dockerd exited at start: %v", d.err)
		default:
		}
		_, err := d.run(5*time.Second, "version")
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("dockerd did not answer within %v: %v", limit, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// importBusybox makes the image from a rootfs tar holding /bin/busybox and
// a symlink per applet.
func (d *Docker) importBusybox(busybox string) {
	d.t.Helper()
	tarPath := filepath.Join(d.Dir, "rootfs.tar")
	busyboxRootfs(d.t, busybox, tarPath)
	d.MustRun("import", "-c", "ENV PATH=/bin", tarPath, Image)
}

// busyboxRootfs writes the image's rootfs tar at path.
func busyboxRootfs(t testing.TB, busybox, path string) {
	t.Helper()
	out, err := exec.Command(busybox, "--list").Output()
	if err != nil {
		t.Fatalf("busybox --list: %v", err)
	}
	if err := writeRootfs(path, busybox, strings.Fields(string(out))); err != nil {
		t.Fatalf("busybox rootfs: %v", err)
	}
}

func writeRootfs(path, busybox string, applets []string) error {
	bin, err := os.ReadFile(busybox)
	if err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	now := time.Now()
	for _, dir := range []string{"bin", "dev", "etc", "proc", "sys", "tmp"} {
		mode := int64(0o755)
		if dir == "tmp" {
			mode = 0o1777
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir + "/", Mode: mode, ModTime: now}); err != nil {
			return err
		}
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "bin/busybox", Mode: 0o755, Size: int64(len(bin)), ModTime: now}); err != nil {
		return err
	}
	if _, err := tw.Write(bin); err != nil {
		return err
	}
	seen := map[string]bool{"busybox": true}
	for _, a := range applets {
		a = filepath.Base(a)
		if seen[a] {
			continue
		}
		seen[a] = true
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + a, Linkname: "busybox", Mode: 0o777, ModTime: now}); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return f.Close()
}

// Run runs the docker client against this dockerd and returns its standard
// output without the final newline; the error carries standard error.
func (d *Docker) Run(args ...string) (string, error) {
	return d.run(2*time.Minute, args...)
}

// MustRun is Run that fails the test on error.
func (d *Docker) MustRun(args ...string) string {
	d.t.Helper()
	out, err := d.Run(args...)
	if err != nil {
		d.t.Fatal(err)
	}
	return out
}

func (d *Docker) run(timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, dockerClient, append([]string{"-H", "unix://" + d.Socket}, args...)...)
	cmd.Env = append(cleanEnv("DOCKER_"), "DOCKER_CONFIG="+filepath.Join(d.Dir, "cli"))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("docker %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSuffix(string(out), "\n"), nil
}

// Log returns what dockerd logged so far.
func (d *Docker) Log() string {
	b, _ := os.ReadFile(d.log)
	return string(b)
}

func (d *Docker) cleanup() {
	t := d.t
	t.Helper()
	if t.Failed() {
		t.Logf("dockerd (pid %d) log:\n%s", d.Pid, d.Log())
	}
	select {
	case <-d.done:
	default:
		if ids, err := d.run(30*time.Second, "ps", "-aq"); err != nil {
			t.Errorf("list containers: %v", err)
		} else if ids = strings.TrimSpace(ids); ids != "" {
			if _, err := d.run(2*time.Minute, append([]string{"rm", "-f"}, strings.Fields(ids)...)...); err != nil {
				t.Errorf("remove containers: %v", err)
			}
		}
		d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.done:
		case <-time.After(30 * time.Second):
			t.Errorf("dockerd (pid %d) ignored SIGTERM for 30 s: killed", d.Pid)
			d.cmd.Process.Signal(syscall.SIGKILL)
			<-d.done
		}
	}
	// dockerd stops its containerd; shims of containers it lost track of
	// would stay. They name our exec root on their command line.
	for _, pid := range pidsMentioning(d.Dir) {
		t.Errorf("process %d outlived dockerd: killed", pid)
		syscall.Kill(pid, syscall.SIGKILL)
	}
	left := mountsUnder(d.Dir)
	for _, m := range left {
		if err := unix.Unmount(m, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			t.Errorf("unmount %q: %v", m, err)
		}
	}
	if left := mountsUnder(d.Dir); len(left) > 0 {
		t.Errorf("mounts left under %q, not removing it: %q", d.Dir, left)
		return
	}
	if err := os.RemoveAll(d.Dir); err != nil {
		t.Errorf("remove %q: %v", d.Dir, err)
	}
}

// mountsUnder lists mount points below dir, deepest first.
func mountsUnder(dir string) []string {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := unescapeMountinfo(f[4])
		if strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

// unescapeMountinfo undoes the octal escapes (\040 for a space) of
// /proc/self/mountinfo.
func unescapeMountinfo(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// pidsMentioning lists processes whose command line contains s.
func pidsMentioning(s string) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(cmdline), s) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// isStatic reports whether an ELF binary has no program interpreter.
func isStatic(path string) bool {
	f, err := elf.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false
		}
	}
	return true
}

var plugins struct {
	sync.Mutex
	users int
	file  *os.File
}

// LockPlugins keeps other test binaries of this machine away from
// /run/docker/plugins (a dockerd, or butterd on the default plugin socket)
// until the test ends. Within one test binary such tests simply must not
// run in parallel; the lock is shared by all of them.
func LockPlugins(t testing.TB) {
	t.Helper()
	plugins.Lock()
	defer plugins.Unlock()
	if plugins.users == 0 {
		f, err := os.OpenFile("/run/lock/butterd-tests-plugins.lock", os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Minute)
		for {
			err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
			if err == nil {
				break
			}
			if !errors.Is(err, unix.EWOULDBLOCK) || time.Now().After(deadline) {
				f.Close()
				t.Fatalf("lock /run/docker/plugins for this test: %v", err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		plugins.file = f
	}
	plugins.users++
	t.Cleanup(func() {
		plugins.Lock()
		defer plugins.Unlock()
		if plugins.users--; plugins.users == 0 {
			plugins.file.Close()
			plugins.file = nil
		}
	})
}
