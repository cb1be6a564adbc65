package tests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

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
