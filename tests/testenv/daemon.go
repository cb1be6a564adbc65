package testenv

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
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
	"sync"
	"syscall"
	"testing"
	"time"
)

// PluginSocket is where dockerd looks for the btrfs legacy plugin.
const PluginSocket = "/run/docker/plugins/btrfs.sock"

// ModuleRoot returns the directory holding go.mod, found by walking up from
// the test's working directory.
func ModuleRoot(t testing.TB) string {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// BuildButterd builds ./cmd/butterd once per test binary and returns the
// binary's path.
func BuildButterd(t testing.TB) string { return buildCommand(t, "butterd") }

// BuildButterctl builds ./cmd/butterctl once per test binary.
func BuildButterctl(t testing.TB) string { return buildCommand(t, "butterctl") }

// builds holds one build per command.
var builds struct {
	sync.Mutex
	m map[string]*buildResult
}

type buildResult struct {
	once      sync.Once
	path, err string
}

// buildCommand builds ./cmd/NAME once per test binary. The binary lives in
// a directory of the system temp dir named after the module root, readable
// by every user (so that it also runs as uid 65534), so runs reuse it
// instead of leaving one behind each time; it is written under a temporary
// name and renamed, so a concurrent test binary never runs a half-written
// file.
func buildCommand(t testing.TB, name string) string {
	t.Helper()
	builds.Lock()
	if builds.m == nil {
		builds.m = map[string]*buildResult{}
	}
	b, ok := builds.m[name]
	if !ok {
		b = &buildResult{}
		builds.m[name] = b
	}
	builds.Unlock()
	b.once.Do(func() {
		path, err := build(name)
		b.path = path
		if err != nil {
			b.err = err.Error()
		}
	})
	if b.err != "" {
		t.Fatalf("build %s: %v", name, b.err)
	}
	return b.path
}

func build(name string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(root))
	dir := filepath.Join(os.TempDir(), "butterd-test-bin-"+hex.EncodeToString(sum[:6]))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(dir, "."+name+"-*")
	if err != nil {
		return "", err
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	cmd := exec.Command("go", "build", "-o", tmp.Name(), "./cmd/"+name)
	cmd.Dir = root
	if name == "butterctl" {
		// As the Makefile builds it: static, without cgo.
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/%s: %v\n%s", name, err, out)
	}
	bin := filepath.Join(dir, name)
	if err := os.Rename(tmp.Name(), bin); err != nil {
		return "", err
	}
	if err := os.Chmod(bin, 0o755); err != nil {
		return "", err
	}
	return bin, nil
}

// Daemon is a `butterd run` started by a test.
type Daemon struct {
	Pid      int
	Socket   string
	DataRoot string
	LogPath  string

	t      testing.TB
	cmd    *exec.Cmd
	done   chan struct{} // closed when the process has been waited for
	err    error         // its exit status, valid once done is closed
	client *http.Client
}

// ButterdOptions are the less common settings of StartButterdWith.
type ButterdOptions struct {
	// Bus is the system bus butterd serves management on. Without one,
	// butterd's system bus address is NoBusAddress: it reaches no bus, and
	// never the machine's own.
	Bus *Bus
	// Args are more `butterd run` flags.
	Args []string
	// Prefix is a command that runs butterd, such as `ip netns exec NAME`
	// (Host.Prefix); it must exec butterd, so that Pid is butterd's.
	Prefix []string
}

// StartButterd runs `butterd run` on dataRoot, serving the plugin on socket,
// with --config=/dev/null, --log-level=debug and no Docker Engine API
// (--docker-host=none) plus extraArgs, and no system bus (see
// ButterdOptions.Bus). It returns once the socket answers
// /Plugin.Activate. The log goes to a file that is printed when the test
// fails; cleanup stops the daemon.
func StartButterd(t testing.TB, dataRoot, socket string, extraArgs ...string) *Daemon {
	t.Helper()
	return StartButterdWith(t, dataRoot, socket, ButterdOptions{Args: extraArgs})
}

// ButterdEnv is the environment a test gives a butterd (or butterctl): the
// test's own without butterd's, systemd's and D-Bus's variables, and the
// system bus address of bus, or NoBusAddress when bus is nil.
func ButterdEnv(bus *Bus) []string {
	env := cleanEnv("BUTTERD_", "LISTEN_", "NOTIFY_SOCKET", "JOURNAL_STREAM", "DBUS_SYSTEM_BUS_ADDRESS=")
	if bus == nil {
		return append(env, "DBUS_SYSTEM_BUS_ADDRESS="+NoBusAddress)
	}
	return append(env, bus.Env()...)
}

// StartButterdWith is StartButterd with options: a bus to serve on, more
// flags, a command prefix.
func StartButterdWith(t testing.TB, dataRoot, socket string, o ButterdOptions) *Daemon {
	t.Helper()
	extraArgs := o.Args
	Root(t)
	bin := BuildButterd(t)
	if socket == PluginSocket {
		LockPlugins(t)
	}
	if socketAnswers(socket) {
		t.Fatalf("plugin socket %q is already served by another process", socket)
	}
	logPath := filepath.Join(t.TempDir(), "butterd.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	args := append([]string{"run", "--config=/dev/null", "--log-level=debug", "--systemd-bus=none", "--docker-host=none",
		"--data-root=" + dataRoot, "--plugin-socket=" + socket}, extraArgs...)
	argv := append(append(append([]string(nil), o.Prefix...), bin), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = ButterdEnv(o.Bus)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start butterd: %v", err)
	}
	d := &Daemon{
		Pid:      cmd.Process.Pid,
		Socket:   socket,
		DataRoot: dataRoot,
		LogPath:  logPath,
		t:        t,
		cmd:      cmd,
		done:     make(chan struct{}),
		client:   unixClient(socket, 30*time.Second),
	}
	go func() {
		d.err = cmd.Wait()
		close(d.done)
	}()
	t.Cleanup(func() {
		if err := d.stop(10 * time.Second); err != nil && !d.killed() {
			t.Errorf("butterd (pid %d) did not exit cleanly: %v", d.Pid, err)
		}
		if t.Failed() {
			d.dumpLog()
		}
	})
	d.waitReady(10 * time.Second)
	return d
}

// waitReady polls /Plugin.Activate until it answers, the process exits or
// the time is up.
func (d *Daemon) waitReady(limit time.Duration) {
	d.t.Helper()
	probe := unixClient(d.Socket, time.Second)
	deadline := time.Now().Add(limit)
	for {
		select {
		case <-d.done:
			d.dumpLog()
			d.t.Fatalf("butterd exited before serving %q: %v", d.Socket, d.err)
		default:
		}
		resp, err := probe.Post("http://plugin/Plugin.Activate", "application/json", strings.NewReader("null"))
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && bytes.Contains(body, []byte("VolumeDriver")) {
				return
			}
			d.dumpLog()
			d.t.Fatalf("Plugin.Activate answered %d: %s", resp.StatusCode, body)
		}
		if time.Now().After(deadline) {
			d.dumpLog()
			d.t.Fatalf("butterd did not answer on %q within %v: %v", d.Socket, limit, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop sends SIGTERM, waits for the exit (SIGKILL after 10 s) and returns
// the exit error: nil for a clean shutdown.
func (d *Daemon) Stop() error { return d.stop(10 * time.Second) }

// Kill sends SIGKILL and waits for the process.
func (d *Daemon) Kill() {
	select {
	case <-d.done:
		return
	default:
	}
	d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.done
}

func (d *Daemon) stop(grace time.Duration) error {
	select {
	case <-d.done:
		return d.err
	default:
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
		return d.err
	case <-time.After(grace):
	}
	d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.done
	return fmt.Errorf("no exit within %v of SIGTERM, killed: %v", grace, d.err)
}

// killed reports whether the process ended by SIGKILL (Kill was called).
func (d *Daemon) killed() bool {
	var ee *exec.ExitError
	if !errors.As(d.err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// Log returns what the daemon logged so far.
func (d *Daemon) Log() string {
	b, _ := os.ReadFile(d.LogPath)
	return string(b)
}

func (d *Daemon) dumpLog() {
	d.t.Helper()
	d.t.Logf("butterd (pid %d) log %s:\n%s", d.Pid, d.LogPath, d.Log())
}

// Call posts one plugin call (path such as "/VolumeDriver.Get") and returns
// the HTTP status and the decoded JSON answer. body is sent as is when it
// is a string or []byte (to send malformed JSON), else as JSON. An answer
// that is not a JSON object fails the test: every answer must be one.
// Call from the test's goroutine.
func (d *Daemon) Call(path string, body any) (int, map[string]any) {
	d.t.Helper()
	var raw []byte
	switch b := body.(type) {
	case string:
		raw = []byte(b)
	case []byte:
		raw = b
	default:
		var err error
		if raw, err = json.Marshal(body); err != nil {
			d.t.Fatalf("plugin call %s: encode body: %v", path, err)
		}
	}
	resp, err := d.client.Post("http://plugin"+path, "application/vnd.docker.plugins.v1.1+json", bytes.NewReader(raw))
	if err != nil {
		d.t.Fatalf("plugin call %s: %v", path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		d.t.Fatalf("plugin call %s: read answer: %v", path, err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil || m == nil {
		d.t.Errorf("plugin call %s answered %d with something that is not a JSON object: %q", path, resp.StatusCode, data)
	}
	return resp.StatusCode, m
}

// unixClient is an HTTP client that dials a unix socket for every request.
func unixClient(socket string, timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", socket)
			},
			DisableKeepAlives: true,
		},
	}
}

func socketAnswers(path string) bool {
	c, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// cleanEnv is the environment without variables that start with any of
// prefixes.
func cleanEnv(prefixes ...string) []string {
	var env []string
next:
	for _, kv := range os.Environ() {
		for _, p := range prefixes {
			if strings.HasPrefix(kv, p) {
				continue next
			}
		}
		env = append(env, kv)
	}
	return env
}
