package tests

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"butterd/tests/testenv"
)

// The hosts of the replication tests (testenv.Hosts, StartHost): network
// namespaces on one bridge that reach each other and nothing else, whose
// links can be cut, and that leave nothing behind.

// greet serves l until the test ends: each connection gets msg, then EOF.
func greet(t *testing.T, l net.Listener, msg string) {
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, msg)
			c.Close()
		}
	}()
}

// echo serves l until the test ends: each connection gets back what it
// sends.
func echo(t *testing.T, l net.Listener) {
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
}

func listenIn(t *testing.T, h *testenv.Host, addr string) net.Listener {
	t.Helper()
	l, err := h.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen on %s in %s: %v", addr, h.Name, err)
	}
	return l
}

// dialFrom connects from inside h (from the machine itself when h is nil)
// and returns the connection, or the error after 3 s at most.
func dialFrom(h *testenv.Host, addr string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if h == nil {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}
	return h.DialContext(ctx, "tcp", addr)
}

// greeting reads all a connection sends.
func greeting(t *testing.T, c net.Conn) string {
	t.Helper()
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read from %s: %v", c.RemoteAddr(), err)
	}
	return string(b)
}

func TestHostsReachEachOther(t *testing.T) {
	hosts := testenv.Hosts(t, 3)
	a, b, c := hosts[0], hosts[1], hosts[2]
	l := listenIn(t, b, b.Addr+":0")
	greet(t, l, "hello from b")
	addr := l.Addr().String()

	// A process run inside A (bash's /dev/tcp) reaches B's listener...
	out := a.Run(t, "bash", "-c", fmt.Sprintf("exec 3<>/dev/tcp/%s/%d && cat <&3", b.Addr, l.Addr().(*net.TCPAddr).Port))
	if out != "hello from b" {
		t.Errorf("A read %q from %s, want B's greeting", out, addr)
	}
	// ...and so does a socket this process makes inside C.
	conn, err := dialFrom(c, addr)
	if err != nil {
		t.Fatalf("connect from C to B at %s: %v", addr, err)
	}
	if got := greeting(t, conn); got != "hello from b" {
		t.Errorf("C read %q from %s, want B's greeting", got, addr)
	}
	if from := conn.LocalAddr().(*net.TCPAddr).IP.String(); from != c.Addr {
		t.Errorf("C's connection came from %s, want C's address %s", from, c.Addr)
	}
}

func TestHostsLoopbackIsTheirOwn(t *testing.T) {
	hosts := testenv.Hosts(t, 2)
	a, b := hosts[0], hosts[1]
	lb := listenIn(t, b, "127.0.0.1:0")
	greet(t, lb, "loopback of b")
	addr := lb.Addr().String()

	// The machine's loopback does not hold B's listener: the same address
	// and port are free there.
	lm, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen on %s on the machine, where B listens on its own loopback: %v", addr, err)
	}
	greet(t, lm, "loopback of the machine")
	for _, tc := range []struct {
		from *testenv.Host
		name string
		want string
	}{{b, "B", "loopback of b"}, {nil, "the machine", "loopback of the machine"}} {
		conn, err := dialFrom(tc.from, addr)
		if err != nil {
			t.Fatalf("connect from %s to %s: %v", tc.name, addr, err)
		}
		if got := greeting(t, conn); got != tc.want {
			t.Errorf("%s read %q from %s, want %q", tc.name, got, addr, tc.want)
		}
	}
	// A's loopback has neither.
	if conn, err := dialFrom(a, addr); err == nil {
		t.Errorf("A reached %s on its loopback and read %q, want the connection refused", addr, greeting(t, conn))
	}
}

func TestHostsLinkDownUp(t *testing.T) {
	hosts := testenv.Hosts(t, 2)
	a, b := hosts[0], hosts[1]
	l := listenIn(t, b, b.Addr+":0")
	echo(t, l)
	addr := l.Addr().String()

	conn, err := dialFrom(a, addr)
	if err != nil {
		t.Fatalf("connect from A to B at %s: %v", addr, err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	roundTrip := func(msg string, wait time.Duration) error {
		if _, err := io.WriteString(conn, msg+"\n"); err != nil {
			return err
		}
		return readLine(conn, r, msg, wait)
	}
	if err := roundTrip("before", 10*time.Second); err != nil {
		t.Fatalf("echo over a working link: %v", err)
	}

	b.LinkDown()
	if c, err := dialFrom(a, addr); err == nil {
		c.Close()
		t.Fatalf("A connected to %s while B's link was down", addr)
	}
	// The open connection gets no answer: what A sends is lost, and TCP
	// sends it again later.
	if _, err := io.WriteString(conn, "during\n"); err != nil {
		t.Fatalf("write while the link is down: %v (want it queued)", err)
	}
	if err := readLine(conn, r, "during", 1500*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read while B's link is down: %v, want no answer (deadline exceeded)", err)
	}

	b.LinkUp()
	// TCP's next retransmission gets through on the same connection.
	if err := readLine(conn, r, "during", 30*time.Second); err != nil {
		t.Fatalf("the open connection after the link came back: %v", err)
	}
	if err := roundTrip("after", 10*time.Second); err != nil {
		t.Fatalf("echo after the link came back: %v", err)
	}
	c2, err := dialFrom(a, addr)
	if err != nil {
		t.Fatalf("connect from A to B after the link came back: %v", err)
	}
	c2.Close()
}

// readLine reads one line within wait and requires it to be want.
func readLine(conn net.Conn, r *bufio.Reader, want string, wait time.Duration) error {
	conn.SetReadDeadline(time.Now().Add(wait))
	line, err := r.ReadString('\n')
	if err != nil {
		return err
	}
	if line != want+"\n" {
		return fmt.Errorf("read %q, want %q", line, want+"\n")
	}
	return nil
}

// rootLinks lists the machine's own network interfaces.
func rootLinks(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("ip", "-o", "link", "show").Output()
	if err != nil {
		t.Fatalf("ip link show: %v", err)
	}
	var names []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(line); len(f) > 1 {
			names = append(names, strings.TrimSuffix(f[1], ":"))
		}
	}
	slices.Sort(names)
	return names
}

func netnsList(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatalf("ip netns list: %v", err)
	}
	return string(out)
}

func TestHostsCleanup(t *testing.T) {
	testenv.Root(t)
	links := rootLinks(t)
	var prefix string
	var sleeps []*exec.Cmd
	t.Run("hosts", func(t *testing.T) {
		hosts := testenv.Hosts(t, 2)
		prefix = strings.TrimSuffix(hosts[0].Name, "a")
		for _, h := range hosts {
			// It says "ready" once it runs inside (ip has entered the
			// namespace and exec'd it).
			cmd := h.Command(context.Background(), "sh", "-c", "echo ready && exec sleep 600")
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			sleeps = append(sleeps, cmd)
			if line, err := bufio.NewReader(out).ReadString('\n'); line != "ready\n" {
				t.Fatalf("sh inside %s said %q (%v), want ready", h.Name, line, err)
			}
			if !h.Holds(cmd.Process.Pid) {
				t.Errorf("sleep (pid %d) started by %s.Command does not run in it", cmd.Process.Pid, h.Name)
			}
		}
		if n := strings.Count(netnsList(t), prefix); n != 3 {
			t.Errorf("ip netns list shows %d namespaces named %s*, want 3 (two hosts and their switch):\n%s", n, prefix, netnsList(t))
		}
		if got := rootLinks(t); !slices.Equal(got, links) {
			t.Errorf("the machine's interfaces are %q with the hosts up, were %q: want the veths kept out of it", got, links)
		}
	})
	for _, cmd := range sleeps {
		var ee *exec.ExitError
		if err := cmd.Wait(); !errors.As(err, &ee) || ee.String() != "signal: killed" {
			t.Errorf("sleep (pid %d) inside a host ended with %v, want killed by the cleanup", cmd.Process.Pid, err)
		}
	}
	if list := netnsList(t); strings.Contains(list, prefix) {
		t.Errorf("namespaces %s* left after the cleanup:\n%s", prefix, list)
	}
	if got := rootLinks(t); !slices.Equal(got, links) {
		t.Errorf("the machine's interfaces are %q after the cleanup, were %q", got, links)
	}
}

func TestHostsEachServeTheirOwnBus(t *testing.T) {
	hosts := testenv.Hosts(t, 2)
	a := testenv.StartHost(t, hosts[0], testenv.HostOptions{})
	b := testenv.StartHost(t, hosts[1], testenv.HostOptions{})
	if a.Holds(b.Butterd.Pid) || b.Holds(a.Butterd.Pid) {
		t.Errorf("butterd of B (pid %d) or of A (pid %d) runs in the other host", b.Butterd.Pid, a.Butterd.Pid)
	}
	ctl := func(hd *testenv.HostDaemon) *ctlEnv {
		return &ctlEnv{t: t, bin: buildButterctl(t), env: hd.Env(), as: hd.Prefix()}
	}
	ctlA, ctlB := ctl(a), ctl(b)
	ctlA.ok("volume", "create", "on-a")
	ctlB.ok("volume", "create", "on-b")
	if got := ctlLines(ctlA.ok("volume", "ls", "-q")); !slices.Equal(got, []string{"on-a"}) {
		t.Errorf("A's volumes: %q, want [on-a]", got)
	}
	if got := ctlLines(ctlB.ok("volume", "ls", "-q")); !slices.Equal(got, []string{"on-b"}) {
		t.Errorf("B's volumes: %q, want [on-b]", got)
	}
	for _, c := range []struct {
		hd        *testenv.HostDaemon
		has, hasn string
	}{{a, "on-a", "on-b"}, {b, "on-b", "on-a"}} {
		if _, err := os.Stat(filepath.Join(c.hd.DataRoot, "volumes", c.has)); err != nil {
			t.Errorf("%s's data root: %v", c.hd.Name, err)
		}
		if _, err := os.Stat(filepath.Join(c.hd.DataRoot, "volumes", c.hasn)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s's data root holds %s (%v), made on the other host", c.hd.Name, c.hasn, err)
		}
	}
}
