package testenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Several hosts on one machine (SANDBOX.md): each host is a network
// namespace with a loopback and an eth0 on a private test subnet. A switch
// namespace holds a bridge with one veth pair per host, so the machine's
// own network namespace gets no interface, no address and no route, and
// hosts reach nothing but each other.

// netnsPrefix starts the name of every namespace these helpers make; then
// come the test binary's pid and a counter, so that concurrent test
// binaries never share one.
const netnsPrefix = "butterd-test-"

// netnsDir is where `ip netns` keeps its named namespaces.
const netnsDir = "/run/netns"

// Host is one network namespace made by Hosts.
type Host struct {
	Name string // the namespace: /run/netns/NAME, `ip netns exec NAME`
	Addr string // its IPv4 address on eth0

	port string // its veth's end on the bridge, in the switch namespace
	net  *hostNet
}

// hostNet is what one Hosts call made.
type hostNet struct {
	t      testing.TB
	ip     string
	sw     string // the switch namespace
	hosts  []*Host
	mu     sync.Mutex
	cmds   []*exec.Cmd // made by Host.Command: killed at cleanup
	inodes map[string]uint64
}

var netnsSeq atomic.Int64

// netnsMu serialises `ip netns add` within a test binary: the first one on
// a machine makes /run/netns a shared mount, and two at once may race.
var netnsMu sync.Mutex

// Hosts makes n hosts (at most 26: a, b, c...) joined by a bridge, with addresses
// 10.231.X.1, 10.231.X.2, ... in 10.231.X.0/24, loopback and eth0 up.
// Each call takes its own X, although namespaces that do not share a
// bridge never see each other's traffic anyway. Cleanup kills the
// processes started by Host.Command, reports (without killing them) any
// other process still inside a host, and deletes the namespaces, which
// removes their interfaces with them.
func Hosts(t testing.TB, n int) []*Host {
	t.Helper()
	Root(t)
	ip := Command(t, "ip")
	if n < 1 || n > 26 {
		t.Fatalf("Hosts(%d): between 1 and 26 hosts", n)
	}
	removeStaleNetns(ip)
	seq := netnsSeq.Add(1)
	base := fmt.Sprintf("%s%d-%d-", netnsPrefix, os.Getpid(), seq)
	subnet := fmt.Sprintf("10.231.%d", (os.Getpid()+int(seq)*37)%250+1)
	hn := &hostNet{t: t, ip: ip, sw: base + "sw", inodes: map[string]uint64{}}
	t.Cleanup(hn.cleanup)

	hn.addNetns(hn.sw)
	hn.must("-n", hn.sw, "link", "add", "br0", "type", "bridge", "forward_delay", "0", "stp_state", "0")
	hn.must("-n", hn.sw, "link", "set", "br0", "up")
	for i := range n {
		h := &Host{Name: base + string(rune('a'+i)), Addr: fmt.Sprintf("%s.%d", subnet, i+1), port: "h" + strconv.Itoa(i), net: hn}
		hn.addNetns(h.Name)
		hn.hosts = append(hn.hosts, h)
		hn.must("-n", hn.sw, "link", "add", h.port, "type", "veth", "peer", "name", "eth0", "netns", h.Name)
		hn.must("-n", hn.sw, "link", "set", h.port, "master", "br0", "up")
		hn.must("-n", h.Name, "addr", "add", h.Addr+"/24", "dev", "eth0")
		hn.must("-n", h.Name, "link", "set", "lo", "up")
		hn.must("-n", h.Name, "link", "set", "eth0", "up")
	}
	for _, h := range hn.hosts {
		h.waitCarrier(true)
	}
	return hn.hosts
}

func (hn *hostNet) addNetns(name string) {
	hn.t.Helper()
	netnsMu.Lock()
	defer netnsMu.Unlock()
	hn.must("netns", "add", name)
	ino, err := netnsInode(filepath.Join(netnsDir, name))
	if err != nil {
		hn.t.Fatal(err)
	}
	hn.inodes[name] = ino
}

// must runs ip with args and fails the test when it fails.
func (hn *hostNet) must(args ...string) string {
	hn.t.Helper()
	out, err := exec.Command(hn.ip, args...).CombinedOutput()
	if err != nil {
		hn.t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// cleanup kills the commands it started, waits (10 s at most) for the
// namespaces to hold no process, and deletes them.
func (hn *hostNet) cleanup() {
	t := hn.t
	hn.mu.Lock()
	for _, c := range hn.cmds {
		if c.Process != nil {
			c.Process.Signal(syscall.SIGKILL) // an error when it was waited for already
		}
	}
	hn.mu.Unlock()
	var left []string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		left = left[:0]
		for name, ino := range hn.inodes {
			for _, pid := range pidsInNetns(ino) {
				cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
				left = append(left, fmt.Sprintf("pid %d (%s) in %s", pid, strings.ReplaceAll(strings.TrimSpace(string(cmdline)), "\x00", " "), name))
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(left) > 0 {
		t.Errorf("processes the test started are still running in its hosts: %s", strings.Join(left, "; "))
	}
	for name := range hn.inodes {
		if out, err := exec.Command(hn.ip, "netns", "delete", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns delete %s: %v: %s", name, err, out)
		}
	}
}

// Inode is the namespace's inode number: /proc/PID/ns/net of a process in
// it names the same one.
func (h *Host) Inode() uint64 { return h.net.inodes[h.Name] }

// Holds reports whether the process pid runs in this host's namespace.
func (h *Host) Holds(pid int) bool {
	ino, err := netnsInode(fmt.Sprintf("/proc/%d/ns/net", pid))
	return err == nil && ino == h.Inode()
}

// Prefix is the command prefix that runs a command inside the host:
// `ip netns exec NAME`, which also gives it a mount namespace of its own
// with the namespace's /sys (mounts made outside later still show).
func (h *Host) Prefix() []string { return []string{h.net.ip, "netns", "exec", h.Name} }

// Command is exec.CommandContext of name and args run inside the host.
// ip execs the command, so the process's pid is the command's. It is
// killed with the test process (PDEATHSIG) and at the test's cleanup.
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	argv := append(h.Prefix(), name)
	cmd := exec.CommandContext(ctx, argv[0], append(argv[1:], args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	h.net.mu.Lock()
	h.net.cmds = append(h.net.cmds, cmd)
	h.net.mu.Unlock()
	return cmd
}

// Run runs name with args inside the host, fails the test when it fails
// or takes over a minute, and returns its standard output.
func (h *Host) Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := h.Command(ctx, name, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("in %s: %s %s: %v: %s", h.Name, name, strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// Listen is net.Listen with the socket made inside the host, by this
// process: a socket stays in the namespace it was made in.
func (h *Host) Listen(network, addr string) (net.Listener, error) {
	var l net.Listener
	err := h.do(func() (err error) {
		l, err = net.Listen(network, addr)
		return err
	})
	return l, err
}

// DialContext is net.Dialer.DialContext with the socket made inside the
// host (its signature is remote.Options.Dial's).
func (h *Host) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := h.do(func() (err error) {
		var d net.Dialer
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// do runs f on an OS thread moved into the host's namespace. The thread
// goes back afterwards; if it cannot, it stays locked and ends with its
// goroutine, so that no other goroutine ever runs in the wrong namespace.
func (h *Host) do(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		self, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer self.Close()
		target, err := os.Open(filepath.Join(netnsDir, h.Name))
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter %s: %w", h.Name, err)
			return
		}
		ferr := f()
		if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("leave %s: %w", h.Name, err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// LinkDown cuts the host's link as a pulled cable does: its port on the
// bridge goes down, so its eth0 loses the carrier; it keeps its address
// and routes, and what it sends, or is sent to it, is lost.
func (h *Host) LinkDown() {
	h.net.t.Helper()
	h.net.must("-n", h.net.sw, "link", "set", "dev", h.port, "down")
	h.waitCarrier(false)
}

// LinkUp restores the link and returns once eth0 has the carrier again.
func (h *Host) LinkUp() {
	h.net.t.Helper()
	h.net.must("-n", h.net.sw, "link", "set", "dev", h.port, "up")
	h.waitCarrier(true)
}

// waitCarrier waits (10 s at most) until the host's eth0 has, or has lost,
// the carrier.
func (h *Host) waitCarrier(up bool) {
	h.net.t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		out := h.net.must("-n", h.Name, "-o", "link", "show", "dev", "eth0")
		if strings.Contains(out, "LOWER_UP") == up {
			return
		}
		if time.Now().After(deadline) {
			h.net.t.Fatalf("eth0 of %s: carrier still %v after 10 s: %s", h.Name, !up, out)
		}
	}
}

// netnsInode is the inode of a namespace file (/run/netns/NAME or
// /proc/PID/ns/net).
func netnsInode(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

// pidsInNetns lists the live processes (zombies have no namespace left) in
// the network namespace with inode ino.
func pidsInNetns(ino uint64) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if i, err := netnsInode(fmt.Sprintf("/proc/%d/ns/net", pid)); err == nil && i == ino {
			pids = append(pids, pid)
		}
	}
	return pids
}

// removeStaleNetns deletes the namespaces left by test binaries that died
// before their cleanup (their pid is gone). Processes still inside one
// keep running; only the name goes.
func removeStaleNetns(ip string) {
	entries, _ := os.ReadDir(netnsDir)
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), netnsPrefix)
		if !ok {
			continue
		}
		pidText, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid <= 0 || syscall.Kill(pid, 0) != syscall.ESRCH {
			continue
		}
		exec.Command(ip, "netns", "delete", e.Name()).Run()
	}
}

// SSHPort is the port of butterd's replication endpoint on every host.
const SSHPort = 1122

// HostOptions are the less common settings of StartHost.
type HostOptions struct {
	FSSize   string   // the host's BTRFS ("256M" when empty)
	Policies []string // more bus policy files (StartBus)
	Args     []string // more `butterd run` flags
}

// HostDaemon is a host with its own loop-mounted BTRFS, its own system bus
// (the project's policy) and a butterd running inside its namespace.
type HostDaemon struct {
	*Host
	Bus      *Bus
	Butterd  *Daemon
	DataRoot string

	socket string   // butterd's plugin socket
	args   []string // its `butterd run` flags beyond StartButterdWith's
}

// StartHost gives h a fresh BTRFS, a private system bus and a butterd that
// runs inside h's namespace on a data root in that BTRFS, serving that bus
// and listening for replication on h's address, port SSHPort. The bus and
// the plugin socket are unix sockets in the file system: namespaces of the
// network do not separate them, so the test reaches both from outside.
// Cleanup stops butterd and the bus and unmounts the BTRFS.
func StartHost(t testing.TB, h *Host, o HostOptions) *HostDaemon {
	t.Helper()
	if o.FSSize == "" {
		o.FSSize = "256M"
	}
	mnt := BtrfsSize(t, o.FSSize)
	bus := StartBus(t, o.Policies...)
	root := filepath.Join(mnt, "data root")
	sock := filepath.Join(t.TempDir(), "btrfs.sock")
	args := append([]string{"--ssh-address=" + h.Addr, "--ssh-port=" + strconv.Itoa(SSHPort)}, o.Args...)
	hd := &HostDaemon{Host: h, Bus: bus, DataRoot: root, socket: sock, args: args}
	hd.start(t)
	return hd
}

func (hd *HostDaemon) start(t testing.TB) {
	t.Helper()
	hd.Butterd = StartButterdWith(t, hd.DataRoot, hd.socket, ButterdOptions{Bus: hd.Bus, Args: hd.args, Prefix: hd.Prefix()})
	if !hd.Holds(hd.Butterd.Pid) {
		t.Fatalf("butterd (pid %d) does not run in %s", hd.Butterd.Pid, hd.Name)
	}
}

// Restart starts butterd again, as StartHost did, once the one running
// has exited (Butterd.Kill or Stop): on the same data root, bus and flags.
func (hd *HostDaemon) Restart(t testing.TB) {
	t.Helper()
	select {
	case <-hd.Butterd.done:
	default:
		t.Fatalf("restart of butterd in %s: pid %d still runs", hd.Name, hd.Butterd.Pid)
	}
	hd.start(t)
}

// Env is the environment of a client of this host's butterd: its bus.
func (hd *HostDaemon) Env() []string { return ButterdEnv(hd.Bus) }

// Butterctl is butterctl with args, run inside the host against its bus.
func (hd *HostDaemon) Butterctl(ctx context.Context, t testing.TB, args ...string) *exec.Cmd {
	t.Helper()
	cmd := hd.Command(ctx, BuildButterctl(t), args...)
	cmd.Env = hd.Env()
	return cmd
}
