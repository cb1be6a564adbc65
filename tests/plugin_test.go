package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"butterd/service"
	"butterd/service/plugin"
	"butterd/tests/testenv"
)

// startPlugin runs butterd on a fresh BTRFS with a private socket.
func startPlugin(t *testing.T) (*testenv.Daemon, string) {
	t.Helper()
	root := filepath.Join(testenv.Btrfs(t), "root")
	sock := filepath.Join(t.TempDir(), "btrfs.sock")
	return testenv.StartButterd(t, root, sock), root
}

// Bad input gets a JSON Err naming the problem, and changes nothing.
func TestPluginBadInput(t *testing.T) {
	d, root := startPlugin(t)
	if st, m := d.Call("/VolumeDriver.Create", map[string]any{"Name": "keep"}); st != 200 || m["Err"] != nil {
		t.Fatalf("create keep: %d %v", st, m)
	}
	long := strings.Repeat("a", 300)
	cases := []struct {
		name, path string
		body       any
		status     int
		want       string
	}{
		{"dotdot", "/VolumeDriver.Create", map[string]any{"Name": "../x"}, 400, "must start with a letter"},
		{"slash", "/VolumeDriver.Create", map[string]any{"Name": "a/b"}, 400, "invalid character '/'"},
		{"at", "/VolumeDriver.Create", map[string]any{"Name": "x@y"}, 400, "invalid character '@'"},
		{"empty", "/VolumeDriver.Create", map[string]any{"Name": ""}, 400, "no volume Name"},
		{"long", "/VolumeDriver.Create", map[string]any{"Name": long}, 400, "at most 96"},
		{"nul", "/VolumeDriver.Create", map[string]any{"Name": "ab\x00c"}, 400, "invalid character"},
		{"nonascii", "/VolumeDriver.Create", map[string]any{"Name": "café"}, 400, "invalid character"},
		{"unknown option", "/VolumeDriver.Create", map[string]any{"Name": "ok1", "Opts": map[string]string{"size": "1G"}}, 400, "allowed options are copyonwrite, finalsnapshot, from"},
		{"bad bool", "/VolumeDriver.Create", map[string]any{"Name": "ok2", "Opts": map[string]string{"copyonwrite": "nope"}}, 400, "true or false"},
		{"same option twice", "/VolumeDriver.Create", map[string]any{"Name": "ok6", "Opts": map[string]string{"copyonwrite": "true", "CopyOnWrite": "false"}}, 400, `options "CopyOnWrite" and "copyonwrite" name the same option`},
		{"from missing", "/VolumeDriver.Create", map[string]any{"Name": "ok3", "Opts": map[string]string{"from": "ghost"}}, 404, `no such volume "ghost"`},
		{"from path", "/VolumeDriver.Create", map[string]any{"Name": "ok4", "Opts": map[string]string{"from": "../../etc"}}, 400, "from="},
		{"malformed", "/VolumeDriver.Create", `{"Name": "ok5"`, 400, "malformed JSON"},
		{"not an object", "/VolumeDriver.Mount", `["keep"]`, 400, "malformed JSON"},
		{"two values", "/VolumeDriver.Remove", `{"Name":"keep"}{"Name":"keep"}`, 400, "more than one value"},
		{"wrong type", "/VolumeDriver.Remove", `{"Name": 7}`, 400, "malformed JSON"},
		{"unknown path", "/VolumeDriver.Snapshot", map[string]any{"Name": "keep"}, 404, "unknown plugin call"},
		{"get missing", "/VolumeDriver.Get", map[string]any{"Name": "ghost"}, 404, `no such volume "ghost"`},
		{"path missing", "/VolumeDriver.Path", map[string]any{"Name": "ghost"}, 404, `no such volume "ghost"`},
		{"mount missing", "/VolumeDriver.Mount", map[string]any{"Name": "ghost", "ID": "x"}, 404, `no such volume "ghost"`},
		{"remove missing", "/VolumeDriver.Remove", map[string]any{"Name": "ghost"}, 404, `no such volume "ghost"`},
		{"mount without id", "/VolumeDriver.Mount", map[string]any{"Name": "keep"}, 400, "without a mount id"},
		{"remove traversal", "/VolumeDriver.Remove", map[string]any{"Name": "../volumes/keep"}, 400, "must start with a letter"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st, m := d.Call(c.path, c.body)
			errText, _ := m["Err"].(string)
			if st != c.status || !strings.Contains(errText, c.want) {
				t.Fatalf("%s: got %d %q, want %d and an Err containing %q", c.path, st, errText, c.status, c.want)
			}
		})
	}
	// Nothing changed: only "keep" exists, nothing was snapshotted.
	entries, _ := os.ReadDir(filepath.Join(root, "volumes"))
	if len(entries) != 1 || entries[0].Name() != "keep" {
		t.Fatalf("volumes after bad input: %v", entries)
	}
	if snaps, _ := os.ReadDir(filepath.Join(root, "snapshots")); len(snaps) != 0 {
		t.Fatalf("snapshots after bad input: %v", snaps)
	}
}

func TestPluginProtocol(t *testing.T) {
	d, root := startPlugin(t)
	if st, m := d.Call("/Plugin.Activate", nil); st != 200 || m["Implements"] == nil {
		t.Fatalf("activate: %d %v", st, m)
	}
	if st, m := d.Call("/VolumeDriver.Capabilities", nil); st != 200 || m["Capabilities"].(map[string]any)["Scope"] != "local" {
		t.Fatalf("capabilities: %d %v", st, m)
	}
	for i := 0; i < 2; i++ { // create is idempotent
		if st, m := d.Call("/VolumeDriver.Create", map[string]any{"Name": "web"}); st != 200 || m["Err"] != nil {
			t.Fatalf("create #%d: %d %v", i+1, st, m)
		}
	}
	want := filepath.Join(root, "volumes", "web")
	if _, m := d.Call("/VolumeDriver.Path", map[string]any{"Name": "web"}); m["Mountpoint"] != want {
		t.Fatalf("path: %v", m)
	}
	if _, m := d.Call("/VolumeDriver.Mount", map[string]any{"Name": "web", "ID": "c1"}); m["Mountpoint"] != want {
		t.Fatalf("mount: %v", m)
	}
	_, m := d.Call("/VolumeDriver.Get", map[string]any{"Name": "web"})
	vol, _ := m["Volume"].(map[string]any)
	if vol["Name"] != "web" || vol["Mountpoint"] != want || vol["CreatedAt"] == nil {
		t.Fatalf("get: %v", m)
	}
	if st, m := d.Call("/VolumeDriver.Remove", map[string]any{"Name": "web"}); st != 409 || !strings.Contains(m["Err"].(string), "in use (1 mount)") {
		t.Fatalf("remove while mounted: %d %v", st, m)
	}
	if st, _ := d.Call("/VolumeDriver.Unmount", map[string]any{"Name": "web", "ID": "never-mounted"}); st != 200 {
		t.Fatalf("unmount of an unknown id: %d", st)
	}
	d.Call("/VolumeDriver.Unmount", map[string]any{"Name": "web", "ID": "c1"})
	_, m = d.Call("/VolumeDriver.List", nil)
	if vols, _ := m["Volumes"].([]any); len(vols) != 1 {
		t.Fatalf("list: %v", m)
	}
	if st, m := d.Call("/VolumeDriver.Remove", map[string]any{"Name": "web"}); st != 200 || m["Err"] != nil {
		t.Fatalf("remove: %d %v", st, m)
	}
	snaps, _ := os.ReadDir(filepath.Join(root, "snapshots"))
	if len(snaps) != 1 || !strings.HasPrefix(snaps[0].Name(), "web@") {
		t.Fatalf("final snapshot: %v", snaps)
	}
}

// heldPlugin serves the plugin protocol of an in-process store whose
// volume "v1" (mounted by "m0") a restore holds until release is called.
// Calls reaching the handler are reported on started, and on finished
// once answered.
type heldPlugin struct {
	s                 *service.Store
	sock              string
	started, finished chan string
	release           func()
}

func startHeldPlugin(t *testing.T, busyWait time.Duration) *heldPlugin {
	t.Helper()
	root := filepath.Join(testenv.Btrfs(t), "data root")
	held, release := make(chan struct{}), make(chan struct{})
	s := openStoreAt(t, root, service.Config{BusyWait: busyWait, AfterStep: func(op, step string) error {
		if op == "restore" && step == "safety-created" {
			close(held)
			<-release
		}
		return nil
	}})
	p := &heldPlugin{s: s, sock: filepath.Join(t.TempDir(), "btrfs.sock"),
		started: make(chan string, 10), finished: make(chan string, 10)}
	if _, _, err := s.CreateVolume("v1", service.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateSnapshot("v1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Mount("v1", "m0"); err != nil {
		t.Fatal(err)
	}
	h := plugin.New(s, slog.New(slog.DiscardHandler))
	l, err := net.Listen("unix", p.sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.started <- r.URL.Path
		h.ServeHTTP(w, r)
		p.finished <- r.URL.Path
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })

	restored := make(chan error, 1)
	go func() {
		_, err := s.Restore("v1", "", true)
		restored <- err
	}()
	<-held
	var once sync.Once
	p.release = func() {
		once.Do(func() {
			close(release)
			if err := <-restored; err != nil {
				t.Errorf("restore holding the volume: %v", err)
			}
		})
	}
	t.Cleanup(p.release)
	return p
}

// call posts a plugin call and returns the status and Err of its answer.
func (p *heldPlugin) call(t *testing.T, path, body string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: time.Minute, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", p.sock)
		}}}
	resp, err := c.Post("http://plugin"+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("plugin call %s: %v", path, err)
	}
	defer resp.Body.Close()
	var m struct{ Err string }
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatalf("plugin call %s: answer: %v", path, err)
	}
	<-p.started
	<-p.finished
	return resp.StatusCode, m.Err
}

// A Mount whose client (Docker, giving up after its timeout) went away
// while a long operation held the volume takes no reference: Docker never
// sends Unmount for a mount that failed on its side.
func TestPluginMountAbandonedWhileVolumeHeld(t *testing.T) {
	p := startHeldPlugin(t, time.Hour)
	conn, err := net.Dial("unix", p.sock)
	if err != nil {
		t.Fatal(err)
	}
	body := `{"Name":"v1","ID":"abandoned"}`
	fmt.Fprintf(conn, "POST /VolumeDriver.Mount HTTP/1.1\r\nHost: plugin\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	<-p.started
	conn.Close()
	select {
	case <-p.finished:
	case <-time.After(time.Minute):
		t.Fatal("the mount still waits for the volume after its client went away")
	}
	p.release()
	if ids := p.s.MountIDs("v1"); len(ids) != 1 || ids[0] != "m0" {
		t.Fatalf("mount ids of v1 after an abandoned mount: %v, want only m0", ids)
	}
	// The volume is not left locked: the next mount is done at once.
	if st, errText := p.call(t, "/VolumeDriver.Mount", `{"Name":"v1","ID":"m1"}`); st != 200 {
		t.Fatalf("mount after the restore ended: %d %s", st, errText)
	}
	if ids := p.s.MountIDs("v1"); len(ids) != 2 {
		t.Fatalf("mount ids of v1: %v, want m0 and m1", ids)
	}
}

// While another operation holds a volume, Create, Remove and Mount answer
// busy after a short wait and change nothing; Unmount is done at once.
func TestPluginBusyVolume(t *testing.T) {
	p := startHeldPlugin(t, 100*time.Millisecond)
	for _, c := range []struct{ path, body string }{
		{"/VolumeDriver.Mount", `{"Name":"v1","ID":"m1"}`},
		{"/VolumeDriver.Remove", `{"Name":"v1"}`},
		{"/VolumeDriver.Create", `{"Name":"v1"}`},
	} {
		st, errText := p.call(t, c.path, c.body)
		if st != 409 || !strings.Contains(errText, `volume "v1" is busy: another operation on it`) || !strings.Contains(errText, "try again") {
			t.Errorf("%s while a restore holds the volume: %d %q, want 409 busy", c.path, st, errText)
		}
	}
	if st, errText := p.call(t, "/VolumeDriver.Unmount", `{"Name":"v1","ID":"m0"}`); st != 200 {
		t.Fatalf("unmount while a restore holds the volume: %d %s", st, errText)
	}
	p.release()
	if ids := p.s.MountIDs("v1"); len(ids) != 0 {
		t.Fatalf("mount ids of v1: %v, want none", ids)
	}
	if _, err := p.s.GetVolume("v1"); err != nil {
		t.Fatalf("v1 after a busy remove: %v", err)
	}
	if snaps := snapshotNames(t, p.s, "v1"); len(snaps) != 2 { // the first, the restore's safety snapshot
		t.Fatalf("snapshots of v1: %v, want the first and the restore's safety snapshot only", snaps)
	}
}
