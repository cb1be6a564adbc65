package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Bind is a host path bound into a container booted by BootSystemd.
type Bind struct {
	Src      string
	Dst      string // where it appears inside; Src when empty
	ReadOnly bool
}

// Machine is a real systemd (PID 1, journald, the system bus) booted with
// systemd-nspawn on the host's own root, read-only, under a throwaway
// overlay: whatever a test writes inside (/etc, /usr, /run) vanishes with
// the container. Its network is private (loopback only) and it boots
// basic.target, so that services the host enables (Docker, databases...)
// do not start inside it.
type Machine struct {
	Name    string
	Leader  int    // the container's systemd, as a host pid
	Pid     int    // systemd-nspawn
	Root    string // the read-only bind mount of / that nspawn boots
	LogPath string // nspawn's output (the container's console)

	t       testing.TB
	cmd     *exec.Cmd
	done    chan struct{}
	err     error
	cgroups []string // the cgroup directories made for nspawn
	binds   []Bind
	stop    sync.Once // cleanup runs once: at PowerOff or at the end of the test
	opts    MachineOptions
	// dockerCgroups are the cgroup v1 directories the container's dockerd
	// puts its containers under.
	dockerCgroups []string
}

// MachineOptions say what a container booted by BootSystemdWith gets.
type MachineOptions struct {
	Binds []Bind
	// LoopDevices makes /dev/loop-control and /dev/loop0 to /dev/loop255
	// inside (no udev makes them there), so that mount -o loop works.
	LoopDevices bool
	// Docker lets Docker's own units run inside (docker.socket is listening
	// after boot; docker.service starts on its first use), with a drop-in
	// that gives dockerd flags that work in the container (no iptables, no
	// bridge, the vfs storage driver) and its containers a cgroup of their
	// own; see Docker. Run the client as /usr/bin/docker.
	Docker bool
}

// Units the host may enable that must not start in a test container even
// when something pulls them in.
var nspawnMasked = []string{"docker.socket", "docker.service", "containerd.service"}

// BootSystemd boots a container as SANDBOX.md describes and returns once
// its systemd reports the system running (or degraded: the failed units
// are logged) and its system bus answers. binds are bound in before boot;
// /tmp is a tmpfs inside, so anything the container needs from the host's
// /tmp (a test's temp dir, a built binary) must be bound. Cleanup powers it
// off (SIGKILL after a bound), removes its cgroups and what nspawn left in
// /run/systemd/nspawn, and unmounts its root. When the test failed, the
// container's journal and console are logged first.
func BootSystemd(t testing.TB, binds ...Bind) *Machine {
	t.Helper()
	return BootSystemdWith(t, MachineOptions{Binds: binds})
}

// BootSystemdWith is BootSystemd with options.
func BootSystemdWith(t testing.TB, o MachineOptions) *Machine {
	t.Helper()
	binds := o.Binds
	Root(t)
	nspawn := Command(t, "systemd-nspawn")
	Command(t, "nsenter")
	Command(t, "systemctl")
	Command(t, "dbus-daemon")
	_, err := os.Stat("/lib/systemd/systemd")
	Need(t, err == nil, "needs systemd (/lib/systemd/systemd) to boot in the container")

	var rnd [4]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		t.Fatal(err)
	}
	m := &Machine{
		Name:    "butterd-" + hex.EncodeToString(rnd[:]),
		t:       t,
		done:    make(chan struct{}),
		LogPath: filepath.Join(t.TempDir(), "nspawn.log"),
		opts:    o,
	}
	// R and its directory are only ever rmdir'ed, never removed
	// recursively: R holds the host's root while mounted. nspawn keeps a
	// lock file next to R.
	dir, err := os.MkdirTemp("", "butterd-nspawn-")
	if err != nil {
		t.Fatal(err)
	}
	m.Root = filepath.Join(dir, "root")
	if err := os.Mkdir(m.Root, 0o755); err != nil {
		os.Remove(dir)
		t.Fatal(err)
	}
	t.Cleanup(m.PowerOff)
	if err := unix.Mount("/", m.Root, "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("bind / on %s: %v", m.Root, err)
	}
	if err := unix.Mount("", m.Root, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY, ""); err != nil {
		t.Fatalf("remount %s read-only: %v", m.Root, err)
	}
	m.cgroups = nspawnCgroups(t, m.Name)

	args := []string{"-q", "-D", m.Root, "-b", "--volatile=overlay", "--register=no", "--keep-unit",
		"--private-network", "--console=pipe", "-M", m.Name}
	if o.Docker {
		// runc gives every container a session keyring.
		args = append(args, "--system-call-filter=@keyring")
	}
	for _, b := range binds {
		dst := b.Dst
		if dst == "" {
			dst = b.Src
		}
		opt := "--bind="
		if b.ReadOnly {
			opt = "--bind-ro="
		}
		args = append(args, opt+nspawnEscape(b.Src)+":"+nspawnEscape(dst))
	}
	// Arguments after the directory go to the container's init: systemd
	// reads them as its kernel command line.
	args = append(args, "--", "systemd.unit=basic.target")
	for _, u := range nspawnMasked {
		if !o.Docker {
			args = append(args, "systemd.mask="+u)
		}
	}

	logf, err := os.Create(m.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	// A shell puts itself into the new cgroups and then becomes nspawn, so
	// nspawn starts in its own cgroup (it moves the container there).
	script := `n=$1; shift
while [ "$n" -gt 0 ]; do echo $$ >"$1" || exit 125; shift; n=$((n-1)); done
exec "$@"`
	shArgs := []string{"-c", script, "sh", strconv.Itoa(len(m.cgroups))}
	for _, dir := range m.cgroups {
		shArgs = append(shArgs, filepath.Join(dir, "cgroup.procs"))
	}
	shArgs = append(shArgs, nspawn)
	m.cmd = exec.Command("/bin/sh", append(shArgs, args...)...)
	m.cmd.Env = cleanEnv("NOTIFY_SOCKET", "LISTEN_", "DBUS_", "SYSTEMD_", "BUTTERD_", "JOURNAL_STREAM")
	m.cmd.Stdout, m.cmd.Stderr = logf, logf
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	start := time.Now()
	if err := m.cmd.Start(); err != nil {
		t.Fatalf("start systemd-nspawn: %v", err)
	}
	m.Pid = m.cmd.Process.Pid
	go func() {
		m.err = m.cmd.Wait()
		close(m.done)
	}()
	m.waitBooted(60 * time.Second)
	t.Logf("container %s booted in %v (nspawn pid %d, systemd pid %d)", m.Name, time.Since(start).Round(time.Millisecond), m.Pid, m.Leader)
	if o.LoopDevices {
		m.makeLoopDevices()
	}
	if o.Docker {
		m.setUpDocker()
	}
	return m
}

// nspawnCgroups makes the cgroup NAME in the hierarchies nspawn looks at:
// name=systemd and the unified one on a hybrid host, or the root of a pure
// cgroup2 host.
func nspawnCgroups(t testing.TB, name string) []string {
	t.Helper()
	var parents []string
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		parents = []string{"/sys/fs/cgroup"}
	} else {
		for _, p := range []string{"/sys/fs/cgroup/systemd", "/sys/fs/cgroup/unified"} {
			if _, err := os.Stat(filepath.Join(p, "cgroup.procs")); err == nil {
				parents = append(parents, p)
			}
		}
	}
	Need(t, len(parents) > 0, "needs a name=systemd or cgroup2 hierarchy under /sys/fs/cgroup")
	var dirs []string
	for _, p := range parents {
		dir := filepath.Join(p, name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatalf("make cgroup %s: %v", dir, err)
		}
		dirs = append(dirs, dir)
	}
	return dirs
}

// nspawnEscape escapes a path for --bind=SRC:DST.
func nspawnEscape(p string) string {
	return strings.NewReplacer(`\`, `\\`, `:`, `\:`).Replace(p)
}

// waitBooted finds the container's systemd (a child of nspawn) and waits
// until the system is up and its bus answers.
func (m *Machine) waitBooted(limit time.Duration) {
	t := m.t
	t.Helper()
	deadline := time.Now().Add(limit)
	exited := func() bool {
		select {
		case <-m.done:
			return true
		default:
			return false
		}
	}
	for m.Leader == 0 {
		if exited() {
			t.Fatalf("systemd-nspawn exited before booting: %v\n%s", m.err, m.Console())
		}
		if time.Now().After(deadline) {
			t.Fatalf("no systemd under systemd-nspawn (pid %d) within %v:\n%s", m.Pid, limit, m.Console())
		}
		for _, c := range childPids(m.Pid) {
			if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", c)); strings.TrimSpace(string(comm)) == "systemd" {
				if _, err := os.Stat(fmt.Sprintf("/proc/%d/root/run/systemd/private", c)); err == nil {
					m.Leader = c
				}
			}
		}
		if m.Leader == 0 {
			time.Sleep(10 * time.Millisecond)
		}
	}
	for {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		out, _ := m.run(ctx, "systemctl", "is-system-running", "--wait")
		cancel()
		state := strings.TrimSpace(out)
		switch state {
		case "running":
		case "degraded":
			failed, _ := m.Run("systemctl", "--failed", "--no-legend", "--plain")
			t.Logf("container %s is degraded; failed units:\n%s", m.Name, failed)
		case "offline", "unknown", "initializing", "starting", "":
			// systemd not reachable yet, or --wait cut short.
			if exited() || time.Now().After(deadline) {
				t.Fatalf("container %s did not boot within %v (state %q):\n%s", m.Name, limit, state, m.Console())
			}
			time.Sleep(10 * time.Millisecond)
			continue
		default:
			t.Fatalf("container %s booted into state %q:\n%s\n%s", m.Name, state, m.Journal(), m.Console())
		}
		break
	}
	// dbus.socket listens once sockets.target is reached; asking the bus
	// daemon itself proves it answers.
	if out, err := m.Run("busctl", "call", "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "GetId"); err != nil {
		t.Fatalf("the system bus in container %s does not answer: %v: %s", m.Name, err, out)
	}
}

// childPids lists the processes whose parent is pid.
func childPids(pid int) []int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err == nil {
		var out []int
		for _, f := range strings.Fields(string(data)) {
			if n, err := strconv.Atoi(f); err == nil {
				out = append(out, n)
			}
		}
		return out
	}
	// Without CONFIG_PROC_CHILDREN: scan /proc.
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", n))
		if err != nil {
			continue
		}
		i := strings.LastIndexByte(string(stat), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, n)
		}
	}
	return out
}

// Path is the host path of path inside the container (through
// /proc/LEADER/root): the host can read, write and connect there.
func (m *Machine) Path(path string) string {
	return fmt.Sprintf("/proc/%d/root%s", m.Leader, path)
}

// BusAddress is the address of the container's system bus, usable from the
// host (busctl --address=..., DBUS_SYSTEM_BUS_ADDRESS).
func (m *Machine) BusAddress() string {
	return "unix:path=" + escapeAddressValue(m.Path("/run/dbus/system_bus_socket"))
}

// WriteFile writes a file inside the container (in its overlay), making the
// parent directories.
func (m *Machine) WriteFile(path string, data []byte, perm os.FileMode) {
	m.t.Helper()
	host := m.Path(path)
	if err := os.MkdirAll(filepath.Dir(host), 0o755); err != nil {
		m.t.Fatal(err)
	}
	if err := os.WriteFile(host, data, perm); err != nil {
		m.t.Fatalf("write %s in container %s: %v", path, m.Name, err)
	}
}

// Run runs a command inside the container (all its namespaces, as root)
// and returns its combined output; it is killed after 30 s.
func (m *Machine) Run(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return m.run(ctx, args...)
}

// MustRun is Run that fails the test when the command fails.
func (m *Machine) MustRun(args ...string) string {
	m.t.Helper()
	out, err := m.Run(args...)
	if err != nil {
		m.t.Fatalf("in container %s: %s: %v\n%s", m.Name, strings.Join(args, " "), err, out)
	}
	return out
}

func (m *Machine) run(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "nsenter", append([]string{"-t", strconv.Itoa(m.Leader), "-a", "--"}, args...)...)
	cmd.Env = []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"LANG=C.UTF-8", "TERM=dumb", "SYSTEMD_PAGER=", "SYSTEMD_COLORS=0",
	}
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Console returns what nspawn and the container printed on its console.
func (m *Machine) Console() string {
	data, _ := os.ReadFile(m.LogPath)
	return string(data)
}

// Journal returns the end of the container's journal.
func (m *Machine) Journal() string {
	if m.Leader == 0 {
		return ""
	}
	out, err := m.Run("journalctl", "--no-pager", "-b", "-n", "300")
	if err != nil {
		return fmt.Sprintf("journalctl: %v\n%s", err, out)
	}
	return out
}

func (m *Machine) exited() bool {
	select {
	case <-m.done:
		return true
	default:
		return false
	}
}

// PowerOff stops the container now, as the test's cleanup would: poweroff
// inside (SIGKILL after a bound), then its cgroups, nspawn's leftovers and
// its root go. The journal and console are logged first when the test has
// failed. Calling it again does nothing.
func (m *Machine) PowerOff() { m.stop.Do(m.cleanup) }

// Reboot powers the container off and boots a new one from the host's root
// with the same binds: what lives in the binds survives, the overlay
// (/etc, /var, /run written inside) does not.
func (m *Machine) Reboot() *Machine {
	m.t.Helper()
	m.PowerOff()
	return BootSystemdWith(m.t, m.opts)
}

func (m *Machine) cleanup() {
	t := m.t
	if m.cmd != nil && m.cmd.Process != nil {
		if t.Failed() {
			t.Logf("container %s journal:\n%s\nconsole %s:\n%s", m.Name, m.Journal(), m.LogPath, m.Console())
		}
		start := time.Now()
		grace := 20 * time.Second
		if m.Leader != 0 && m.exited() {
			t.Errorf("container %s stopped during the test: systemd-nspawn %v", m.Name, m.err)
		}
		if m.Leader == 0 {
			grace = 0 // it never booted: nothing to power off
		} else if !m.exited() {
			if out, err := m.Run("systemctl", "poweroff", "--no-block"); err != nil {
				t.Errorf("systemctl poweroff in container %s: %v: %s", m.Name, err, out)
			}
		}
		select {
		case <-m.done:
			t.Logf("container %s powered off in %v", m.Name, time.Since(start).Round(time.Millisecond))
		case <-time.After(grace):
			if m.Leader != 0 {
				t.Errorf("container %s (nspawn pid %d) did not power off within %v: killed", m.Name, m.Pid, grace)
			}
			m.cmd.Process.Signal(syscall.SIGKILL)
			<-m.done
		}
	}
	m.removeCgroups()
	m.removeDockerCgroups()
	for _, dir := range []string{"/run/systemd/nspawn/propagate/" + m.Name, "/run/systemd/nspawn/unix-export/" + m.Name} {
		removeLeftover(t, dir)
	}
	removeStaleLocks()
	if m.Root != "" {
		unmountRoot(t, m.Root)
	}
}

// removeCgroups kills what is left in the container's cgroups (nothing,
// after a clean poweroff) and removes them, deepest first.
func (m *Machine) removeCgroups() {
	t := m.t
	for _, dir := range m.cgroups {
		if _, err := os.Stat(filepath.Join(dir, "cgroup.kill")); err == nil && cgroupBusy(dir) {
			t.Errorf("processes left in cgroup %s after the container stopped: killed", dir)
			os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0)
		}
	}
	for _, dir := range m.cgroups {
		var subdirs []string
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				subdirs = append(subdirs, p)
			}
			return nil
		})
		deadline := time.Now().Add(10 * time.Second)
		for i := len(subdirs) - 1; i >= 0; i-- {
			for {
				err := os.Remove(subdirs[i])
				if err == nil || errors.Is(err, fs.ErrNotExist) {
					break
				}
				if !errors.Is(err, unix.EBUSY) || time.Now().After(deadline) {
					t.Errorf("remove cgroup %s: %v", subdirs[i], err)
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
	}
}

// cgroupBusy reports whether any process is left in dir or below.
func cgroupBusy(dir string) bool {
	busy := false
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() == "cgroup.procs" {
			if data, _ := os.ReadFile(p); len(strings.TrimSpace(string(data))) > 0 {
				busy = true
			}
		}
		return nil
	})
	return busy
}

// removeLeftover removes a directory nspawn may leave in /run/systemd/nspawn
// when /run is not a tmpfs, unless something is mounted on it.
func removeLeftover(t testing.TB, dir string) {
	fi, err := os.Lstat(dir)
	if err != nil {
		return
	}
	pfi, err := os.Lstat(filepath.Dir(dir))
	if err != nil || !fi.IsDir() || fi.Sys().(*syscall.Stat_t).Dev != pfi.Sys().(*syscall.Stat_t).Dev {
		t.Errorf("nspawn left %s behind and it is not a plain directory: not removed", dir)
		return
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Errorf("remove %s: %v", dir, err)
	}
}

// removeStaleLocks removes the image locks of /run/systemd/nspawn/locks
// that no nspawn holds (one killed leaves its lock behind). Every
// container booting the host's root shares one lock file: a lock that
// another test's container holds stays.
func removeStaleLocks() {
	files, _ := filepath.Glob("/run/systemd/nspawn/locks/*")
	for _, p := range files {
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			continue
		}
		// nspawn takes open file description locks (a shared one to boot a
		// read-only or volatile tree).
		lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: io.SeekStart}
		if unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk) == nil {
			os.Remove(p)
		}
		f.Close()
	}
}

func unmountRoot(t testing.TB, root string) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := unix.Unmount(root, 0)
		if err == nil || errors.Is(err, unix.EINVAL) { // EINVAL: not mounted
			break
		}
		if !errors.Is(err, unix.EBUSY) || time.Now().After(deadline) {
			t.Errorf("unmount %s: %v: detached", root, err)
			unix.Unmount(root, unix.MNT_DETACH)
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	// nspawn removes its lock next to the tree unless it was killed.
	lock := filepath.Join(filepath.Dir(root), ".#"+filepath.Base(root)+".lck")
	if err := os.Remove(lock); err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("remove %s: %v", lock, err)
	}
	for _, d := range []string{root, filepath.Dir(root)} {
		if err := os.Remove(d); err != nil {
			t.Errorf("remove %s: %v", d, err)
		}
	}
}
