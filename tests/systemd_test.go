package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"butterd/tests/testenv"
)

// The packaged units under a real systemd (booted with systemd-nspawn):
// butterd.socket activates butterd on the first plugin call, butterd exits
// by itself when idle, bus activation starts it again for a D-Bus call, and
// the mount references survive both activations.
func TestSystemdActivation(t *testing.T) {
	testenv.Root(t)
	busctl := testenv.Command(t, "busctl")
	bin := testenv.BuildButterd(t)
	data := testenv.Btrfs(t)
	// The default data root: butterd.service sees no /tmp of the host.
	m := testenv.BootSystemd(t,
		testenv.Bind{Src: bin, Dst: "/usr/bin/butterd", ReadOnly: true},
		testenv.Bind{Src: data, Dst: "/var/lib/butterd"},
	)

	// Install as a package would, plus a drop-in with the test's settings.
	installUnits(t, m)
	const idle = 2 * time.Second
	m.WriteFile("/etc/systemd/system/butterd.service.d/test.conf", []byte(fmt.Sprintf(
		"[Service]\nEnvironment=BUTTERD_EXIT_IDLE=%ds BUTTERD_LOG_LEVEL=debug\n", int(idle/time.Second))), 0o644)

	if out, err := m.Run("systemd-analyze", "verify", "--man=no",
		"/etc/systemd/system/butterd.service", "/etc/systemd/system/butterd-pool.service", "/etc/systemd/system/butterd.socket"); err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("systemd-analyze verify of the packaged units: %v\n%s", err, out)
	}
	m.MustRun("busctl", "call", "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "ReloadConfig")
	m.MustRun("systemctl", "daemon-reload")
	m.MustRun("systemctl", "start", "butterd.socket")

	if st := unitState(t, m, "butterd.socket"); st["ActiveState"] != "active" || st["SubState"] != "listening" {
		t.Fatalf("butterd.socket after start: %v", st)
	}
	if st := unitState(t, m, "butterd.service"); st["ActiveState"] != "inactive" || st["InvocationID"] != "" {
		t.Fatalf("butterd.service runs before any request: %v", st)
	}

	// 1. A plugin call through the socket systemd holds starts butterd.
	sock := m.Path(testenv.PluginSocket)
	if r := systemdPluginCall(t, sock, "/VolumeDriver.Create", map[string]any{"Name": "sysd-vol"}); r["Err"] != nil {
		t.Fatalf("Create: %v", r)
	}
	r := systemdPluginCall(t, sock, "/VolumeDriver.Mount", map[string]any{"Name": "sysd-vol", "ID": "ctr-1"})
	if mp, _ := r["Mountpoint"].(string); r["Err"] != nil || mp != "/var/lib/butterd/volumes/sysd-vol" {
		t.Fatalf("Mount: %v", r)
	}
	lastRequest := time.Now()
	first := waitActivated(t, m, "")
	t.Logf("socket activation: invocation %s, main pid %s", first["InvocationID"], first["MainPID"])

	// 2. Idle: butterd exits by itself, successfully; the socket stays.
	waitIdleExit(t, m, lastRequest, idle)

	// 3. A D-Bus call starts it again by bus activation and finds the
	// mount reference.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// managerCall calls a Manager method with busctl from the host, on the
	// container's system bus.
	managerCall := func(method string, args ...string) ([]byte, error) {
		cmd := exec.CommandContext(ctx, busctl, append([]string{"--address=" + m.BusAddress(), "--timeout=20", "--json=short",
			"call", "io.butterd.volumes1", "/io/butterd/volumes1", "io.butterd.volumes1.Manager", method}, args...)...)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "SYSTEMD_PAGER="}
		return cmd.CombinedOutput()
	}
	out, err := managerCall("ListVolumes")
	if err != nil {
		t.Fatalf("busctl ListVolumes (bus activation): %v\n%s", err, out)
	}
	lastRequest = time.Now()
	var reply struct {
		Type string
		Data [][][]any
	}
	if err := json.Unmarshal(out, &reply); err != nil || reply.Type != "a(sostu)" || len(reply.Data) != 1 {
		t.Fatalf("ListVolumes answered %q (%v)", out, err)
	}
	rows := reply.Data[0]
	if len(rows) != 1 || len(rows[0]) != 5 || rows[0][0] != "sysd-vol" || rows[0][4] != float64(1) {
		t.Errorf("ListVolumes after bus activation = %v, want sysd-vol with 1 mount", rows)
	}
	// A snapshot, to find in the journal by its name.
	out, err = managerCall("CreateSnapshot", "s", "sysd-vol")
	var snapReply struct{ Data []any }
	if err != nil || json.Unmarshal(out, &snapReply) != nil || len(snapReply.Data) != 2 {
		t.Fatalf("busctl CreateSnapshot sysd-vol: %v\n%s", err, out)
	}
	snapName, _ := snapReply.Data[0].(string)
	// A purge job (keeping the new snapshot), to find in the journal by its
	// id.
	out, err = managerCall("Purge", "sstt", "sysd-vol", "1d", "0", "0")
	var purgeReply struct{ Data []any }
	if err != nil || json.Unmarshal(out, &purgeReply) != nil || len(purgeReply.Data) != 5 {
		t.Fatalf("busctl Purge sysd-vol 1d: %v\n%s", err, out)
	}
	purgeJob, _ := purgeReply.Data[0].(float64)
	lastRequest = time.Now()
	second := waitActivated(t, m, first["InvocationID"])
	t.Logf("bus activation: invocation %s, main pid %s", second["InvocationID"], second["MainPID"])

	// The reference also holds for the plugin: Remove is refused.
	r = systemdPluginCall(t, sock, "/VolumeDriver.Remove", map[string]any{"Name": "sysd-vol"})
	lastRequest = time.Now()
	if e, _ := r["Err"].(string); !strings.Contains(e, "in use") {
		t.Errorf("Remove of the mounted volume after re-activation: %v, want refused as in use", r)
	}
	if st := unitState(t, m, "butterd.service"); st["InvocationID"] != second["InvocationID"] {
		t.Errorf("the plugin call after bus activation went to another butterd: %v, want invocation %s", st, second["InvocationID"])
	}

	// 4. And it idles out again.
	waitIdleExit(t, m, lastRequest, idle)

	journal := m.MustRun("journalctl", "--no-pager", "-o", "cat", "-u", "butterd.service")
	if n := strings.Count(journal, "butterd serving the Docker volume plugin"); n != 2 {
		t.Errorf("journal of butterd.service shows %d starts serving, want 2:\n%s", n, journal)
	}
	if n := strings.Count(journal, "idle: exiting"); n != 2 {
		t.Errorf("journal of butterd.service shows %d idle exits, want 2:\n%s", n, journal)
	}
	if !strings.Contains(journal, "serving management on the system bus") {
		t.Errorf("journal of butterd.service: butterd did not serve on the system bus:\n%s", journal)
	}
	// Attributes are journal fields: everything about a volume is found by
	// its name.
	byVolume := m.MustRun("journalctl", "--no-pager", "-o", "cat", "-u", "butterd.service", "VOLUME=sysd-vol")
	if !strings.Contains(byVolume, "volume created") {
		t.Errorf("journalctl VOLUME=%s does not show the volume's creation:\n%s", "sysd-vol", byVolume)
	}
	bySnapshot := m.MustRun("journalctl", "--no-pager", "-o", "cat", "-u", "butterd.service", "SNAPSHOT="+snapName)
	if !strings.Contains(bySnapshot, "snapshot created") {
		t.Errorf("journalctl SNAPSHOT=%s does not show the snapshot's creation:\n%s", snapName, bySnapshot)
	}
	// A job's story by its id: its start, its own lines and its end with
	// the result, each with the volume it works on.
	checkJobJournal(t, m, uint32(purgeJob), "sysd-vol", "done", "purged")
	// What systemctl status shows of butterd: its STATUS= line (kept after
	// it exits) and the watchdog of the packaged unit.
	props := m.MustRun("systemctl", "show", "-p", "StatusText,WatchdogUSec", "butterd.service")
	if !strings.Contains(props, "StatusText=serving 1 volumes, ") || !strings.Contains(props, "WatchdogUSec=30s") {
		t.Errorf("systemctl show butterd.service: %q, want StatusText=serving 1 volumes, ... and WatchdogUSec=30s", props)
	}
}

var journalAttr = regexp.MustCompile(` [a-z_]+="`)

// checkJobJournal checks what `journalctl JOB=ID` shows of butterd's job
// id on volume: a start line, the lines named in also, and an end line
// with RESULT=result, all with VOLUME=volume.
func checkJobJournal(t *testing.T, m *testenv.Machine, id uint32, volume, result string, also ...string) {
	t.Helper()
	out := m.MustRun("journalctl", "--no-pager", "-o", "json", "-u", "butterd.service", fmt.Sprintf("JOB=%d", id))
	if strings.TrimSpace(out) == "" {
		t.Fatalf("journalctl JOB=%d shows nothing of job %d", id, id)
	}
	var seen []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("journalctl -o json JOB=%d printed %q: %v", id, line, err)
		}
		// The message, then its attributes as key="value".
		msg, _ := rec["MESSAGE"].(string)
		if at := journalAttr.FindStringIndex(msg); at != nil {
			msg = msg[:at[0]]
		}
		seen = append(seen, msg)
		if rec["VOLUME"] != volume {
			t.Errorf("journal line %q of job %d: VOLUME=%v, want %s", msg, id, rec["VOLUME"], volume)
		}
		if msg == "job "+result && rec["RESULT"] != result {
			t.Errorf("journal line %q of job %d: RESULT=%v, want %s", msg, id, rec["RESULT"], result)
		}
	}
	want := append(append([]string{"job started"}, also...), "job "+result)
	for _, w := range want {
		if !slices.Contains(seen, w) {
			t.Errorf("journalctl JOB=%d shows %q, want the lines %q", id, seen, want)
			break
		}
	}
	if seen[len(seen)-1] != "job "+result {
		t.Errorf("journalctl JOB=%d shows %q, want \"job %s\" last", id, seen, result)
	}
}

// systemdQuote quotes one Environment= assignment for a unit file.
func systemdQuote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, `%`, `%%`, `$`, `$$`).Replace(s) + `"`
}

// unitState is a few properties of a unit.
func unitState(t *testing.T, m *testenv.Machine, unit string) map[string]string {
	t.Helper()
	out := m.MustRun("systemctl", "show", "-p", "ActiveState,SubState,Result,ExecMainCode,ExecMainStatus,InvocationID,MainPID", unit)
	st := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			st[k] = v
		}
	}
	return st
}

// waitActivated waits until butterd.service was started anew (an
// invocation other than prev) and is active, and returns its state.
func waitActivated(t *testing.T, m *testenv.Machine, prev string) map[string]string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := unitState(t, m, "butterd.service")
		if id := st["InvocationID"]; id != "" && id != prev {
			switch st["ActiveState"] {
			case "active":
				return st
			case "activating":
			default:
				// It can only have idled out already on a very slow machine.
				t.Fatalf("butterd.service was started but is %v; journal:\n%s", st, unitJournal(m))
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("butterd.service was not activated within 10 s: %v; journal:\n%s", st, unitJournal(m))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitIdleExit waits until butterd.service exits by itself after idle and
// checks that it exited successfully, not before idle had passed, and left
// butterd.socket listening.
func waitIdleExit(t *testing.T, m *testenv.Machine, lastRequest time.Time, idle time.Duration) {
	t.Helper()
	limit := idle + 15*time.Second
	for {
		st := unitState(t, m, "butterd.service")
		if st["ActiveState"] == "inactive" || st["ActiveState"] == "failed" {
			after := time.Since(lastRequest)
			if st["Result"] != "success" || st["ExecMainCode"] != "1" || st["ExecMainStatus"] != "0" {
				t.Errorf("butterd.service after idle: %v, want Result=success, exited with status 0; journal:\n%s", st, unitJournal(m))
			}
			// butterd counts idle from its last touch, a moment before the
			// answer arrived here.
			if after < idle-200*time.Millisecond {
				t.Errorf("butterd.service stopped %v after the last request, before the idle time %v", after, idle)
			}
			t.Logf("butterd.service exited %v after the last request (idle %v)", after.Round(10*time.Millisecond), idle)
			break
		}
		if time.Since(lastRequest) > limit {
			t.Fatalf("butterd.service still %v %v after the last request (idle %v); journal:\n%s", st["ActiveState"], limit, idle, unitJournal(m))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st := unitState(t, m, "butterd.socket"); st["ActiveState"] != "active" || st["SubState"] != "listening" {
		t.Errorf("butterd.socket after butterd's idle exit: %v, want active (listening)", st)
	}
}

func unitJournal(m *testenv.Machine) string {
	out, _ := m.Run("journalctl", "--no-pager", "-u", "butterd.service", "-u", "butterd.socket")
	return out
}

// systemdPluginCall posts one plugin call on a unix socket and decodes the
// JSON answer.
func systemdPluginCall(t *testing.T, sock, path string, body any) map[string]any {
	t.Helper()
	c := &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", sock)
			},
			DisableKeepAlives: true,
		},
	}
	raw, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Post("http://plugin"+path, "application/vnd.docker.plugins.v1.1+json", bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("plugin call %s on %s: %v", path, sock, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("plugin call %s: %v", path, err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil || m == nil {
		t.Fatalf("plugin call %s answered %d with %q, not a JSON object", path, resp.StatusCode, data)
	}
	return m
}

// installUnits writes butterd's packaged units (and extra ones of
// packaging/systemd) and D-Bus files into machine m, as the package
// installs them.
func installUnits(t *testing.T, m *testenv.Machine, extra ...string) {
	t.Helper()
	root := filepath.Join(testenv.ModuleRoot(t), "packaging")
	files := map[string]string{
		"dbus/io.butterd.volumes1.conf":    "/usr/share/dbus-1/system.d/io.butterd.volumes1.conf",
		"dbus/io.butterd.volumes1.service": "/usr/share/dbus-1/system-services/io.butterd.volumes1.service",
	}
	for _, u := range append([]string{"butterd.service", "butterd-pool.service", "butterd.socket"}, extra...) {
		files["systemd/"+u] = "/etc/systemd/system/" + u
	}
	for src, dst := range files {
		b, err := os.ReadFile(filepath.Join(root, src))
		if err != nil {
			t.Fatal(err)
		}
		m.WriteFile(dst, b, 0o644)
	}
}
