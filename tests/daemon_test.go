package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"butterd/tests/testenv"
)

// These tests run the butterd binary itself: the embedded pool, refusals
// at start, socket activation, socket files and the data root lock.

// daemonProc is a process a test started (butterd, or
// systemd-socket-activate that execs butterd in place). Cleanup stops it by
// its pid.
type daemonProc struct {
	Pid     int
	LogPath string

	t    *testing.T
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// startProc starts name with args, stdout and stderr going to a log file,
// in an environment without butterd's or systemd's variables. The process
// gets SIGKILL if the test binary dies; cleanup sends SIGTERM, then SIGKILL.
func startProc(t *testing.T, name string, args ...string) *daemonProc {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), "proc.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(name, args...)
	cmd.Env = daemonTestEnv()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &daemonProc{Pid: cmd.Process.Pid, LogPath: logPath, t: t, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			syscall.Kill(p.Pid, syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(10 * time.Second):
				t.Errorf("pid %d ignored SIGTERM for 10 s: killed", p.Pid)
				syscall.Kill(p.Pid, syscall.SIGKILL)
				<-p.done
			}
		}
		if t.Failed() {
			t.Logf("%s (pid %d) output:\n%s", filepath.Base(name), p.Pid, p.Log())
		}
	})
	return p
}

func (p *daemonProc) Log() string {
	b, _ := os.ReadFile(p.LogPath)
	return string(b)
}

func (p *daemonProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// wait waits up to limit for the exit and returns its code (-1 when killed
// by a signal); the test fails when the process is still running.
func (p *daemonProc) wait(limit time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(limit):
		p.t.Fatalf("pid %d still running after %v; output:\n%s", p.Pid, limit, p.Log())
	}
	if p.err == nil {
		return 0
	}
	var ee *exec.ExitError
	if !errors.As(p.err, &ee) {
		p.t.Fatalf("pid %d: %v", p.Pid, p.err)
	}
	return ee.ExitCode()
}

// terminate sends SIGTERM and returns the exit code.
func (p *daemonProc) terminate() int {
	p.t.Helper()
	if err := syscall.Kill(p.Pid, syscall.SIGTERM); err != nil && !p.exited() {
		p.t.Fatalf("SIGTERM to %d: %v", p.Pid, err)
	}
	return p.wait(15 * time.Second)
}

// runButterdFailing runs butterd with args, expects it to exit with a
// non-zero status within 30 s and returns its output.
func runButterdFailing(t *testing.T, args ...string) string {
	t.Helper()
	p := startProc(t, testenv.BuildButterd(t), args...)
	if code := p.wait(30 * time.Second); code == 0 {
		t.Fatalf("butterd %q exited 0, want a failure; output:\n%s", args, p.Log())
	}
	return p.Log()
}

func daemonTestEnv() []string { return testenv.ButterdEnv(nil) }

// pluginPost sends one plugin call over the unix socket sock.
func pluginPost(sock, path string, body any, timeout time.Duration) (int, map[string]any, error) {
	raw, err := json.Marshal(body)
	if err != nil {
		return 0, nil, err
	}
	c := &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", sock)
			},
			DisableKeepAlives: true,
		},
	}
	resp, err := c.Post("http://plugin"+path, "application/vnd.docker.plugins.v1.1+json", bytes.NewReader(raw))
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return resp.StatusCode, nil, fmt.Errorf("answer is not JSON: %q", data)
	}
	return resp.StatusCode, m, nil
}

// waitActivate polls Plugin.Activate on sock until it answers (fails the
// test when p exits first or limit passes).
func waitActivate(t *testing.T, p *daemonProc, sock string, limit time.Duration) map[string]any {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		st, m, err := pluginPost(sock, "/Plugin.Activate", nil, 5*time.Second)
		if err == nil {
			if st != http.StatusOK {
				t.Fatalf("Plugin.Activate on %s answered %d: %v", sock, st, m)
			}
			return m
		}
		if p.exited() {
			t.Fatalf("pid %d exited before answering on %s; output:\n%s", p.Pid, sock, p.Log())
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing answered on %s within %v: %v", sock, limit, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// eventually polls cond every 20 ms for up to limit.
func eventually(limit time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func onBtrfs(t *testing.T, path string) bool {
	t.Helper()
	var fs unix.Statfs_t
	if err := unix.Statfs(path, &fs); err != nil {
		t.Fatalf("statfs %s: %v", path, err)
	}
	return fs.Type == unix.BTRFS_SUPER_MAGIC
}

func fsid(t *testing.T, path string) unix.Fsid {
	t.Helper()
	var fs unix.Statfs_t
	if err := unix.Statfs(path, &fs); err != nil {
		t.Fatalf("statfs %s: %v", path, err)
	}
	return fs.Fsid
}

// mountOf returns "FSTYPE SOURCE" of the mount at exactly dir, or "".
func mountOf(dir string) string {
	out, err := exec.Command("findmnt", "-n", "-o", "FSTYPE,SOURCE", "--mountpoint", dir).Output()
	if err != nil {
		return ""
	}
	return strings.Join(strings.Fields(string(out)), " ")
}

// loopsOf lists the loop devices backed by image.
func loopsOf(t *testing.T, image string) []string {
	t.Helper()
	out, err := exec.Command("losetup", "-n", "-O", "NAME", "-j", image).CombinedOutput()
	if err != nil {
		t.Fatalf("losetup -j %s: %v: %s", image, err, out)
	}
	return strings.Fields(string(out))
}

func inodeOf(t *testing.T, path string) uint64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

// nonBtrfsDir is a fresh temp dir that is not on BTRFS (the embedded pool
// is only made there).
func nonBtrfsDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	testenv.Need(t, !onBtrfs(t, dir), "needs a temp dir that is not on BTRFS ("+dir+" is)")
	return dir
}

// cleanupPool unmounts the pool at dir (every stacked mount) and checks
// that the loop device of image went with it.
func cleanupPool(t *testing.T, dir, image string) {
	t.Helper()
	for i := 0; i < 5 && mountOf(dir) != ""; i++ {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
			exec.Command("umount", "-l", dir).Run()
		}
	}
	if m := mountOf(dir); m != "" {
		t.Errorf("%s still mounted (%s)", dir, m)
	}
	if _, err := os.Stat(image); err != nil {
		return
	}
	if !eventually(5*time.Second, func() bool { return len(loopsOf(t, image)) == 0 }) {
		loops := loopsOf(t, image)
		t.Errorf("loop devices of %s left after unmounting: %v", image, loops)
		for _, l := range loops {
			exec.Command("losetup", "-d", l).Run()
		}
	}
}

// The embedded pool: a data root that is not on BTRFS gets a sparse image
// beside it, loop-mounted there, made once and reused.
func TestDaemonEmbeddedPool(t *testing.T) {
	testenv.Root(t)
	testenv.Command(t, "mkfs.btrfs")
	testenv.Command(t, "findmnt")
	testenv.Command(t, "losetup")
	base := nonBtrfsDir(t)
	dir := filepath.Join(base, "data")
	image := dir + ".img"
	sock := filepath.Join(base, "p.sock")
	// Registered before any daemon: runs after they are stopped.
	t.Cleanup(func() { cleanupPool(t, dir, image) })

	start := time.Now()
	d := testenv.StartButterd(t, dir, sock, "--pool-size=300M")
	t.Logf("first start with a new pool: %v", time.Since(start))

	fi, err := os.Stat(image)
	if err != nil {
		t.Fatalf("pool image: %v", err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Size() != 300<<20 {
		t.Errorf("image size %d, want %d", fi.Size(), 300<<20)
	}
	allocated := st.Blocks * 512
	t.Logf("image %s: size %d, allocated %d", image, fi.Size(), allocated)
	if allocated > fi.Size()/4 {
		t.Errorf("image is not sparse: %d of %d bytes allocated", allocated, fi.Size())
	}
	if fi.Mode().Perm()&0o077 != 0 {
		t.Errorf("image mode %v: readable by others", fi.Mode().Perm())
	}
	if left, _ := filepath.Glob(image + ".tmp-*"); len(left) != 0 {
		t.Errorf("temporary images left: %v", left)
	}
	m := mountOf(dir)
	if !strings.HasPrefix(m, "btrfs /dev/loop") {
		t.Fatalf("%s is mounted as %q, want btrfs on a loop device", dir, m)
	}
	if !onBtrfs(t, dir) {
		t.Fatalf("statfs: %s is not on BTRFS", dir)
	}
	loops := loopsOf(t, image)
	if len(loops) != 1 || !strings.HasSuffix(m, " "+loops[0]) {
		t.Errorf("loop devices of %s: %v, mount source %q", image, loops, m)
	}
	log := d.Log()
	for _, want := range []string{"created pool image", "mounted butterd's pool image", image} {
		if !strings.Contains(log, want) {
			t.Errorf("log does not say %q:\n%s", want, log)
		}
	}

	if st, m := d.Call("/VolumeDriver.Create", map[string]any{"Name": "pooled"}); st != 200 || m["Err"] != nil {
		t.Fatalf("create: %d %v", st, m)
	}
	vol := filepath.Join(dir, "volumes", "pooled")
	requireSubvolume(t, vol)
	writeFile(t, filepath.Join(vol, "hello"), "kept")
	ino, id := inodeOf(t, image), fsid(t, dir)

	if err := d.Stop(); err != nil {
		t.Fatalf("SIGTERM: butterd did not exit 0: %v", err)
	}

	// Restart with the pool still mounted: nothing new is made.
	d = testenv.StartButterd(t, dir, sock, "--pool-size=300M")
	if log := d.Log(); strings.Contains(log, "created pool image") {
		t.Errorf("second start made a new image:\n%s", log)
	}
	if st, m := d.Call("/VolumeDriver.Get", map[string]any{"Name": "pooled"}); st != 200 || m["Err"] != nil {
		t.Fatalf("get after restart: %d %v", st, m)
	}
	if inodeOf(t, image) != ino || fsid(t, dir) != id {
		t.Errorf("image or filesystem changed across a restart")
	}
	if err := d.Stop(); err != nil {
		t.Fatalf("SIGTERM: butterd did not exit 0: %v", err)
	}

	// As after a reboot: the pool is not mounted. The same image is mounted
	// again, not formatted.
	if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
		t.Fatalf("umount %s: %v: %s", dir, err, out)
	}
	if !eventually(5*time.Second, func() bool { return len(loopsOf(t, image)) == 0 }) {
		t.Fatalf("loop device of %s not released by umount: %v", image, loopsOf(t, image))
	}
	if onBtrfs(t, dir) {
		t.Fatalf("%s still on BTRFS after umount", dir)
	}
	d = testenv.StartButterd(t, dir, sock, "--pool-size=300M")
	log = d.Log()
	if strings.Contains(log, "created pool image") || !strings.Contains(log, "mounted butterd's pool image") {
		t.Errorf("start on an unmounted pool: want the existing image mounted, not a new one:\n%s", log)
	}
	if inodeOf(t, image) != ino {
		t.Errorf("image %s was replaced", image)
	}
	if fsid(t, dir) != id {
		t.Errorf("the pool's filesystem changed (reformatted?)")
	}
	if st, m := d.Call("/VolumeDriver.Get", map[string]any{"Name": "pooled"}); st != 200 || m["Err"] != nil {
		t.Fatalf("get after remount: %d %v", st, m)
	}
	requireFile(t, filepath.Join(vol, "hello"), "kept")
	if err := d.Stop(); err != nil {
		t.Fatalf("SIGTERM: butterd did not exit 0: %v", err)
	}
}

// A data root that is not on BTRFS and not empty is never mounted over:
// butterd refuses and formats nothing.
func TestDaemonPoolRefusesNonEmptyDir(t *testing.T) {
	testenv.Root(t)
	base := nonBtrfsDir(t)
	dir := filepath.Join(base, "data")
	image := dir + ".img"
	sock := filepath.Join(base, "p.sock")
	t.Cleanup(func() { cleanupPool(t, dir, image) }) // only if the refusal failed
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "precious"), "data")

	out := runButterdFailing(t, "run", "--config=/dev/null", "--data-root="+dir, "--pool-size=300M", "--plugin-socket="+sock)
	if !strings.Contains(out, "not empty") || !strings.Contains(out, dir) {
		t.Errorf("refusal does not say %s is not empty:\n%s", dir, out)
	}
	if _, err := os.Stat(image); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("image %s made for a refused data root (%v)", image, err)
	}
	if left, _ := filepath.Glob(image + "*"); len(left) != 0 {
		t.Errorf("files left beside the data root: %v", left)
	}
	if m := mountOf(dir); m != "" || onBtrfs(t, dir) {
		t.Errorf("%s was mounted over: %q", dir, m)
	}
	requireFile(t, filepath.Join(dir, "precious"), "data")
	if _, err := os.Lstat(sock); err == nil {
		t.Errorf("socket %s created by a butterd that refused to start", sock)
	}
}

func TestDaemonPoolBadSize(t *testing.T) {
	testenv.Root(t)
	base := nonBtrfsDir(t)
	cases := []struct{ size, want string }{
		{"abc", "use a positive number with K, M, G or T"},
		{"-5G", "use a positive number"},
		{"12M", "at least 256M"},
	}
	for i, c := range cases {
		t.Run(c.size, func(t *testing.T) {
			dir := filepath.Join(base, fmt.Sprintf("data%d", i))
			image := dir + ".img"
			t.Cleanup(func() { cleanupPool(t, dir, image) })
			out := runButterdFailing(t, "run", "--config=/dev/null", "--data-root="+dir,
				"--pool-size="+c.size, "--plugin-socket="+filepath.Join(base, "p.sock"))
			if !strings.Contains(out, "pool size") || !strings.Contains(out, c.want) {
				t.Errorf("--pool-size=%s: output does not say %q:\n%s", c.size, c.want, out)
			}
			if strings.Contains(out, "panic") || strings.Count(strings.TrimSpace(out), "\n") > 2 {
				t.Errorf("--pool-size=%s: want a short clear error, got:\n%s", c.size, out)
			}
			if left, _ := filepath.Glob(image + "*"); len(left) != 0 {
				t.Errorf("files left beside the data root: %v", left)
			}
			if m := mountOf(dir); m != "" {
				t.Errorf("%s mounted (%s)", dir, m)
			}
		})
	}
}

// Started by systemd-socket-activate, butterd serves the socket it is
// passed, binds nothing itself and never removes the socket file.
func TestDaemonSocketActivation(t *testing.T) {
	testenv.Root(t)
	activate := testenv.Command(t, "systemd-socket-activate")
	bin := testenv.BuildButterd(t)
	root := filepath.Join(testenv.Btrfs(t), "root")
	dir := t.TempDir()
	sock := filepath.Join(dir, "act.sock")
	unused := filepath.Join(dir, "unused.sock")

	p := startProc(t, activate, "-l", sock, bin, "run", "--config=/dev/null", "--log-level=debug",
		"--data-root="+root, "--plugin-socket="+unused)
	// systemd-socket-activate binds at once and execs butterd on the first
	// connection: the probe below is that connection.
	if !eventually(10*time.Second, func() bool { _, err := os.Lstat(sock); return err == nil || p.exited() }) {
		t.Fatalf("systemd-socket-activate did not create %s", sock)
	}
	m := waitActivate(t, p, sock, 20*time.Second)
	if impl, _ := m["Implements"].([]any); len(impl) != 1 || impl[0] != "VolumeDriver" {
		t.Errorf("Plugin.Activate: %v", m)
	}
	if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", p.Pid)); err != nil || exe != bin {
		t.Fatalf("pid %d runs %q (%v), want butterd %q exec'd in place", p.Pid, exe, err, bin)
	}
	if st, m, err := pluginPost(sock, "/VolumeDriver.Create", map[string]any{"Name": "activated"}, 10*time.Second); err != nil || st != 200 || m["Err"] != nil {
		t.Fatalf("create through the passed socket: %d %v %v", st, m, err)
	}
	requireSubvolume(t, filepath.Join(root, "volumes", "activated"))
	log := p.Log()
	if !strings.Contains(log, "serving") || !strings.Contains(log, "socket="+sock) {
		t.Errorf("log does not say butterd serves %s:\n%s", sock, log)
	}
	if _, err := os.Lstat(unused); err == nil {
		t.Errorf("butterd bound PLUGIN_SOCKET %s although systemd passed a socket", unused)
	}

	if code := p.terminate(); code != 0 {
		t.Fatalf("SIGTERM: butterd exited %d, want 0; output:\n%s", code, p.Log())
	}
	fi, err := os.Lstat(sock)
	if err != nil {
		t.Fatalf("butterd removed the socket systemd owns: %v", err)
	}
	if fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("%s is no longer a socket: %v", sock, fi.Mode())
	}
	if !strings.Contains(p.Log(), "shutting down") {
		t.Errorf("no clean shutdown in the log:\n%s", p.Log())
	}
}

// A socket file nobody listens on is stale: butterd replaces it (and removes
// the one it made when it stops).
func TestDaemonStaleSocketReplaced(t *testing.T) {
	testenv.Root(t)
	root := filepath.Join(testenv.Btrfs(t), "root")
	sock := filepath.Join(t.TempDir(), "stale.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	if _, err := net.Dial("unix", sock); err == nil {
		t.Fatal("the stale socket answers")
	}

	// StartButterd returns once butterd answers on sock: the file was
	// replaced by a live socket.
	d := testenv.StartButterd(t, root, sock)
	if st, m := d.Call("/VolumeDriver.List", map[string]any{}); st != 200 || m["Err"] != nil {
		t.Fatalf("list: %d %v", st, m)
	}
	if err := d.Stop(); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket %s that butterd made is left after it stopped (%v)", sock, err)
	}
}

// A socket someone listens on, or a path that is not a socket, is left
// alone: butterd refuses to start and says why.
func TestDaemonLiveSocketRefused(t *testing.T) {
	testenv.Root(t)
	root := filepath.Join(testenv.Btrfs(t), "root")
	dir := t.TempDir()

	live := filepath.Join(dir, "live.sock")
	l, err := net.Listen("unix", live)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	out := runButterdFailing(t, "run", "--config=/dev/null", "--data-root="+root, "--plugin-socket="+live)
	if !strings.Contains(out, "in use") || !strings.Contains(out, live) {
		t.Errorf("refusal does not say %s is in use:\n%s", live, out)
	}
	// Still the other listener's socket: what a client writes reaches it
	// (earlier connections, butterd's probe among them, are skipped).
	c, err := net.Dial("unix", live)
	if err != nil {
		t.Fatalf("the other listener lost its socket: %v", err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetDeadline(time.Now().Add(5 * time.Second))
	for reached := false; !reached; {
		a, err := l.Accept()
		if err != nil {
			t.Fatalf("the other listener did not get the connection: %v", err)
		}
		a.SetReadDeadline(time.Now().Add(time.Second))
		b := make([]byte, 1)
		n, _ := a.Read(b)
		reached = n == 1 && b[0] == 'x'
		a.Close()
	}

	plain := filepath.Join(dir, "plain")
	writeFile(t, plain, "not a socket")
	out = runButterdFailing(t, "run", "--config=/dev/null", "--data-root="+root, "--plugin-socket="+plain)
	if !strings.Contains(out, "not a socket") {
		t.Errorf("refusal does not say %s is not a socket:\n%s", plain, out)
	}
	requireFile(t, plain, "not a socket")
}

// The data root lock keeps a second butterd out, whatever its socket.
func TestDaemonSecondOnSameDataRoot(t *testing.T) {
	testenv.Root(t)
	root := filepath.Join(testenv.Btrfs(t), "root")
	dir := t.TempDir()
	first := filepath.Join(dir, "first.sock")
	second := filepath.Join(dir, "second.sock")
	d := testenv.StartButterd(t, root, first)
	if st, m := d.Call("/VolumeDriver.Create", map[string]any{"Name": "mine"}); st != 200 || m["Err"] != nil {
		t.Fatalf("create: %d %v", st, m)
	}

	out := runButterdFailing(t, "run", "--config=/dev/null", "--data-root="+root, "--plugin-socket="+second)
	if !strings.Contains(out, "in use") || !strings.Contains(out, root) {
		t.Errorf("second butterd does not say the data root %s is in use:\n%s", root, out)
	}
	if _, err := os.Lstat(second); err == nil {
		t.Errorf("second butterd created its socket %s", second)
	}
	if st, m := d.Call("/VolumeDriver.Get", map[string]any{"Name": "mine"}); st != 200 || m["Err"] != nil {
		t.Fatalf("first butterd after the second one's attempt: %d %v", st, m)
	}
	if err := d.Stop(); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
}

// Two butterds starting together on a new data root make one pool: one
// serves, the other says the data root is in use.
func TestDaemonPoolConcurrentStart(t *testing.T) {
	testenv.Root(t)
	base := nonBtrfsDir(t)
	dir := filepath.Join(base, "data")
	image := dir + ".img"
	t.Cleanup(func() { cleanupPool(t, dir, image) })
	bin := testenv.BuildButterd(t)
	var ps [2]*daemonProc
	var socks [2]string
	for i := range ps {
		socks[i] = filepath.Join(base, fmt.Sprintf("%d.sock", i))
		ps[i] = startProc(t, bin, "run", "--config=/dev/null", "--data-root="+dir, "--pool-size=300M", "--plugin-socket="+socks[i])
	}
	if !eventually(30*time.Second, func() bool { return ps[0].exited() || ps[1].exited() }) {
		t.Fatalf("both butterds run on %s; mounts: %q", dir, mountOf(dir))
	}
	loser, winner := 0, 1
	if !ps[0].exited() {
		loser, winner = 1, 0
	}
	if code := ps[loser].wait(time.Second); code == 0 || !strings.Contains(ps[loser].Log(), "in use") {
		t.Errorf("second butterd exited %d without saying the data root is in use:\n%s", code, ps[loser].Log())
	}
	waitActivate(t, ps[winner], socks[winner], 20*time.Second)
	if m := mountOf(dir); strings.Count(m, "btrfs") != 1 {
		t.Errorf("mounts at %s: %q, want one", dir, m)
	}
	if l := loopsOf(t, image); len(l) != 1 {
		t.Errorf("loop devices of %s: %v, want one", image, l)
	}
	if code := ps[winner].terminate(); code != 0 {
		t.Errorf("SIGTERM: exit %d", code)
	}
}
