package tests

import (
	"bytes"
	"encoding/json"
	"errors"
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

// These tests run the real butterctl binary against a butterd serving a
// private system bus with the project's policy, on a fresh BTRFS.

// buildButterctl builds ./cmd/butterctl once per test binary.
func buildButterctl(t *testing.T) string { return testenv.BuildButterctl(t) }

// ctlEnv runs butterctl on one bus, as root or as another user.
type ctlEnv struct {
	t   *testing.T
	bin string
	env []string
	as  []string // a command prefix, such as setpriv
}

type ctlResult struct {
	code           int
	stdout, stderr string
}

func newCtl(t *testing.T, bus *testenv.Bus) *ctlEnv {
	t.Helper()
	return &ctlEnv{t: t, bin: buildButterctl(t), env: testenv.ButterdEnv(bus)}
}

// nobody is the same butterctl run as uid and gid 65534 without groups.
func (c *ctlEnv) nobody() *ctlEnv {
	c.t.Helper()
	setpriv := testenv.Command(c.t, "setpriv")
	n := *c
	n.as = []string{setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"}
	return &n
}

// run runs butterctl with args and returns its exit code and output.
func (c *ctlEnv) run(args ...string) ctlResult {
	c.t.Helper()
	argv := append(append(slices.Clone(c.as), c.bin), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = c.env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := ctlResult{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee) && ee.Exited():
		r.code = ee.ExitCode()
	case err != nil:
		c.t.Fatalf("butterctl %s: %v", strings.Join(args, " "), err)
	}
	c.t.Logf("butterctl %s: exit %d, stdout %q, stderr %q", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	return r
}

// ok runs butterctl, requires exit 0 and nothing on stderr, and returns
// stdout.
func (c *ctlEnv) ok(args ...string) string {
	c.t.Helper()
	r := c.run(args...)
	if r.code != 0 || r.stderr != "" {
		c.t.Fatalf("butterctl %s: exit %d, stderr %q", strings.Join(args, " "), r.code, r.stderr)
	}
	return r.stdout
}

// okJSON runs butterctl with --json and decodes stdout into v.
func (c *ctlEnv) okJSON(v any, args ...string) {
	c.t.Helper()
	out := c.ok(append([]string{"--json"}, args...)...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		c.t.Fatalf("butterctl --json %s: %v in %q", strings.Join(args, " "), err, out)
	}
}

// fails runs butterctl and requires exit code code with one line on
// stderr, "butterctl: " and then a text containing want, and nothing on
// stdout.
func (c *ctlEnv) fails(code int, want string, args ...string) ctlResult {
	c.t.Helper()
	r := c.run(args...)
	if r.code != code {
		c.t.Errorf("butterctl %s: exit %d, want %d", strings.Join(args, " "), r.code, code)
	}
	if !strings.HasPrefix(r.stderr, "butterctl: ") || strings.Count(r.stderr, "\n") != 1 ||
		!strings.HasSuffix(r.stderr, "\n") || !strings.Contains(r.stderr, want) {
		c.t.Errorf("butterctl %s: stderr %q, want one line \"butterctl: ...%s...\"", strings.Join(args, " "), r.stderr, want)
	}
	if r.stdout != "" {
		c.t.Errorf("butterctl %s: stdout %q, want nothing", strings.Join(args, " "), r.stdout)
	}
	return r
}

// startButterdOnBus runs butterd on a fresh BTRFS, serving a new private
// bus, and returns butterctl for that bus.
func startButterdOnBus(t *testing.T, extraPolicies ...string) (*ctlEnv, *testenv.Daemon) {
	t.Helper()
	testenv.Root(t)
	buildButterctl(t)
	bus := testenv.StartBus(t, extraPolicies...)
	root := filepath.Join(testenv.Btrfs(t), "root")
	sock := filepath.Join(t.TempDir(), "btrfs.sock")
	d := testenv.StartButterdWith(t, root, sock, testenv.ButterdOptions{Bus: bus})
	return newCtl(t, bus), d
}

var snapshotName = regexp.MustCompile(`^([a-zA-Z0-9][a-zA-Z0-9_.-]+)@(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6})$`)

// snapName checks that out is one snapshot name of volume (buttervolume's
// NAME@%Y-%m-%dT%H:%M:%S.%f, local time near now) and returns it.
func snapName(t *testing.T, out, volume string) string {
	t.Helper()
	name, ok := strings.CutSuffix(out, "\n")
	m := snapshotName.FindStringSubmatch(name)
	if !ok || m == nil || m[1] != volume {
		t.Fatalf("output %q is not one snapshot name %s@%%Y-%%m-%%dT%%H:%%M:%%S.%%f", out, volume)
	}
	at, err := time.ParseInLocation("2006-01-02T15:04:05.000000", m[2], time.Local)
	if err != nil || time.Since(at).Abs() > time.Minute {
		t.Fatalf("snapshot %q: time %v is not now (%v)", name, at, err)
	}
	return name
}

// ctlLines splits butterctl's output into its names.
func ctlLines(s string) []string { return strings.Fields(s) }

// The whole buttervolume flow through butterctl: create, snapshot, list,
// restore (twice), clone, rm, ls, inspect, unmount --forget, volume rm.
func TestButterctlFlow(t *testing.T) {
	ctl, _ := startButterdOnBus(t)

	if out := ctl.ok("volume", "create", "v1"); out != "v1\n" {
		t.Fatalf("volume create printed %q, want v1", out)
	}
	var info map[string]any
	ctl.okJSON(&info, "volume", "inspect", "v1")
	mountpoint, _ := info["mountpoint"].(string)
	if info["name"] != "v1" || !filepath.IsAbs(mountpoint) {
		t.Fatalf("volume inspect --json: %v", info)
	}
	data := filepath.Join(mountpoint, "data.txt")
	if err := os.WriteFile(data, []byte("one"), 0o644); err != nil {
		t.Fatal(err)
	}

	snap := snapName(t, ctl.ok("snapshot", "v1"), "v1")
	if got := ctlLines(ctl.ok("snapshots")); !slices.Equal(got, []string{snap}) {
		t.Errorf("snapshots: %q, want %q", got, snap)
	}
	if got := ctlLines(ctl.ok("snapshots", "v1")); !slices.Equal(got, []string{snap}) {
		t.Errorf("snapshots v1: %q, want %q", got, snap)
	}

	if err := os.WriteFile(data, []byte("two"), 0o644); err != nil {
		t.Fatal(err)
	}
	safety := snapName(t, ctl.ok("restore", "v1"), "v1")
	if safety == snap {
		t.Fatalf("restore printed the restored snapshot %q, want the safety snapshot", snap)
	}
	if got := readFile(t, data); got != "one" {
		t.Errorf("after restore v1, data.txt holds %q, want one", got)
	}
	if got := ctlLines(ctl.ok("snapshots", "v1")); !slices.Contains(got, safety) || !slices.Contains(got, snap) || len(got) != 2 {
		t.Errorf("snapshots v1 after restore: %q, want %q and %q", got, snap, safety)
	}

	// Restoring VOL again takes its latest snapshot that is not a safety
	// snapshot: the same one.
	var restored struct {
		Snapshot string `json:"snapshot"`
		Volume   string `json:"volume"`
		Safety   string `json:"safety_snapshot"`
	}
	ctl.okJSON(&restored, "restore", "v1")
	if restored.Snapshot != snap || restored.Volume != "v1" || restored.Safety == "" || restored.Safety == safety {
		t.Errorf("second restore v1: %+v, want snapshot %q and a new safety snapshot", restored, snap)
	}
	if got := readFile(t, data); got != "one" {
		t.Errorf("after the second restore, data.txt holds %q", got)
	}

	// Restoring into a new volume prints nothing.
	if out := ctl.ok("restore", snap, "v3"); out != "" {
		t.Errorf("restore into a new volume printed %q, want nothing", out)
	}

	if out := ctl.ok("clone", "v1", "v2"); out != "v2\n" {
		t.Errorf("clone printed %q, want v2", out)
	}
	var v2 map[string]any
	ctl.okJSON(&v2, "volume", "inspect", "v2")
	if got := readFile(t, filepath.Join(v2["mountpoint"].(string), "data.txt")); got != "one" {
		t.Errorf("clone v2 holds %q", got)
	}

	if out := ctl.ok("rm", safety); out != "" {
		t.Errorf("rm printed %q, want nothing", out)
	}
	if got := ctlLines(ctl.ok("snapshots", "v1")); slices.Contains(got, safety) {
		t.Errorf("snapshots after rm %s: %q", safety, got)
	}

	// volume ls: the table, -q and --json.
	table := strings.Split(strings.TrimSuffix(ctl.ok("volume", "ls"), "\n"), "\n")
	if len(table) != 4 || !slices.Equal(strings.Fields(table[0]), []string{"NAME", "MOUNTS", "CREATED", "MOUNTPOINT"}) {
		t.Fatalf("volume ls:\n%s", strings.Join(table, "\n"))
	}
	for i, name := range []string{"v1", "v2", "v3"} {
		f := strings.Fields(table[i+1])
		if len(f) < 5 || f[0] != name || f[1] != "0" || !strings.HasSuffix(table[i+1], "/volumes/"+name) {
			t.Errorf("volume ls row %q, want %s, 0 mounts, its time and mount point", table[i+1], name)
		}
	}
	if got := ctlLines(ctl.ok("volume", "ls", "-q")); !slices.Equal(got, []string{"v1", "v2", "v3"}) {
		t.Errorf("volume ls -q: %q", got)
	}
	var vols []struct {
		Name       string    `json:"name"`
		Mounts     int       `json:"mounts"`
		Created    time.Time `json:"created"`
		Mountpoint string    `json:"mountpoint"`
	}
	ctl.okJSON(&vols, "volume", "ls")
	if len(vols) != 3 || vols[0].Name != "v1" || vols[0].Mountpoint != mountpoint || time.Since(vols[0].Created).Abs() > time.Minute {
		t.Errorf("volume ls --json: %+v", vols)
	}

	// volume inspect: text and --json.
	text := ctl.ok("volume", "inspect", "v1")
	for _, want := range []string{"Name:", "v1\n", "Mountpoint:", mountpoint + "\n", "Created:", "Mounts:", "UUID:", "ReadOnly:"} {
		if !strings.Contains(text, want) {
			t.Errorf("volume inspect v1 lacks %q:\n%s", want, text)
		}
	}
	ctl.okJSON(&info, "volume", "inspect", "v1")
	if info["mounts"] != 0.0 || info["read_only"] != false || info["uuid"] == "" || info["created"] == nil {
		t.Errorf("volume inspect --json: %v", info)
	}

	if out := ctl.ok("volume", "unmount", "--forget", "v1"); out != "0\n" {
		t.Errorf("volume unmount --forget printed %q, want 0", out)
	}

	// volume rm prints the final snapshot, which stays listed.
	final := snapName(t, ctl.ok("volume", "rm", "v2"), "v2")
	if got := ctlLines(ctl.ok("snapshots", "v2")); !slices.Equal(got, []string{final}) {
		t.Errorf("snapshots v2 after volume rm: %q, want %q", got, final)
	}
	if out := ctl.ok("volume", "rm", "--no-final-snapshot", "v3"); out != "" {
		t.Errorf("volume rm --no-final-snapshot printed %q", out)
	}
	if got := ctlLines(ctl.ok("volume", "ls", "-q")); !slices.Equal(got, []string{"v1"}) {
		t.Errorf("volume ls -q after rm: %q", got)
	}
}

// Failures: one line on stderr with butterd's message, and the exit code
// of its kind.
func TestButterctlErrors(t *testing.T) {
	ctl, _ := startButterdOnBus(t)
	ctl.ok("volume", "create", "v1")

	// buttervolume's verbs exit 1 where the volume or snapshot is missing,
	// as buttervolume did; the other verbs 3.
	ctl.fails(1, `no such volume "nosuch"`, "snapshot", "nosuch")
	ctl.fails(1, "no such snapshot", "rm", "v1@2000-01-01T00:00:00.000000")
	ctl.fails(1, `volume "nosuch" has no snapshot to restore`, "restore", "nosuch")
	ctl.fails(1, `no such volume "nosuch"`, "clone", "nosuch", "v9")
	ctl.fails(1, `no such snapshot "v1@x"`, "send", "hostb", "v1@x")
	ctl.fails(3, `no such volume "nosuch"`, "volume", "inspect", "nosuch")
	ctl.fails(3, `no such volume "nosuch"`, "volume", "rm", "nosuch")
	ctl.fails(3, "no such snapshot", "pin", "v1@2000-01-01T00:00:00.000000")

	// snapshots of a name that is neither a volume nor has snapshots: not
	// an empty list but an error naming it. v1 has no snapshot yet: nothing.
	ctl.fails(1, `no volume "nosuch" and no snapshot of it`, "snapshots", "nosuch")
	if out := ctl.ok("snapshots", "v1"); out != "" {
		t.Errorf("snapshots v1: %q, want nothing", out)
	}

	// Every refusal of bad input is exit 2: the command line, and a name or
	// an option butterd refuses, with butterd's message.
	ctl.fails(2, `volume name "bad@name" includes invalid character '@'`, "volume", "create", "bad@name")
	ctl.fails(2, `volume name "x" is too short`, "snapshot", "x")
	ctl.fails(2, "missing VOL", "snapshot")
	ctl.fails(2, `option "colour" is not KEY=VALUE`, "volume", "create", "-o", "colour", "v2")
	ctl.fails(2, "allowed options are", "volume", "create", "-o", "colour=blue", "v2")
	ctl.fails(2, `purge pattern "1x"`, "purge", "1x", "v1")
	if got := ctlLines(ctl.ok("volume", "ls", "-q")); !slices.Equal(got, []string{"v1"}) {
		t.Errorf("volumes after refused creates: %q", got)
	}

	// Options for a volume that exists are refused, not dropped; without
	// options a repeated create is the existing volume.
	snap := snapName(t, ctl.ok("snapshot", "v1"), "v1")
	ctl.fails(1, `volume "v1" exists: option from=`+snap+` was not applied; remove it first or use restore`, "volume", "create", "-o", "from="+snap, "v1")
	if out := ctl.ok("volume", "create", "v1"); out != "v1\n" {
		t.Errorf("repeated volume create printed %q", out)
	}

	// As uid 65534: changes are denied by the bus policy, reads work.
	nobody := ctl.nobody()
	nobody.fails(4, "access denied", "snapshot", "v1")
	nobody.fails(4, "access denied", "volume", "create", "v9")
	if got := ctlLines(nobody.ok("volume", "ls", "-q")); !slices.Equal(got, []string{"v1"}) {
		t.Errorf("volume ls as uid 65534: %q", got)
	}
	nobody.ok("snapshots")
	nobody.ok("volume", "inspect", "v1")
	nobody.ok("jobs")
	if got := ctlLines(ctl.ok("snapshots", "v1")); !slices.Equal(got, []string{snap}) {
		t.Errorf("a denied snapshot was taken: %q, want only %s", got, snap)
	}
}

// With a policy that lets everyone call butterd, butterd itself refuses
// changes from others: exit 4 with butterd's message.
func TestButterctlDeniedByButterd(t *testing.T) {
	const loose = `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <policy context="default">
    <allow send_destination="io.butterd.volumes1"/>
  </policy>
</busconfig>
`
	ctl, _ := startButterdOnBus(t, loose)
	ctl.ok("volume", "create", "v1")
	ctl.nobody().fails(4, `CreateSnapshot changes volumes: only root and members of group "butterd" may call it`, "snapshot", "v1")
	ctl.nobody().ok("volume", "ls")
}

// Without butterd on the bus, or without a bus: exit 5, saying so.
func TestButterctlUnreachable(t *testing.T) {
	testenv.Root(t)
	bus := testenv.StartBus(t)
	ctl := newCtl(t, bus)
	ctl.fails(5, "butterd is not running", "volume", "ls")
	ctl.fails(5, "butterd is not running", "snapshot", "v1")
	ctl.nobody().fails(5, "butterd is not running", "snapshots")
	// Usage errors need no bus.
	ctl.fails(2, "missing VOL", "snapshot")

	nobus := newCtl(t, nil)
	nobus.fails(5, "butterd is not reachable: cannot reach the system bus at "+testenv.NoBusAddress, "volume", "ls")
	if out := nobus.ok("help"); !strings.Contains(out, "Exit codes:") {
		t.Errorf("help without a bus:\n%s", out)
	}
}

// scheduled prints buttervolume's lines ("snapshot 60 v1", "(paused)"
// after a paused one) wherever its output goes, a table with -l; a
// schedule of a volume that does not exist is not found, exit 1 as
// buttervolume's verbs exit. butterd runs here with a real systemd in
// nspawn, whose /etc/systemd/system is butterd's unit directory.
func TestButterctlScheduled(t *testing.T) {
	testenv.Root(t)
	buildButterctl(t)
	unitDir := filepath.Join(t.TempDir(), "system")
	if out, err := exec.Command("cp", "-a", "/etc/systemd/system", unitDir).CombinedOutput(); err != nil {
		t.Fatalf("copy /etc/systemd/system: %v: %s", err, out)
	}
	m := testenv.BootSystemd(t, testenv.Bind{Src: unitDir, Dst: "/etc/systemd/system"})
	bus := testenv.StartBus(t)
	root := filepath.Join(testenv.Btrfs(t), "root")
	sock := filepath.Join(t.TempDir(), "btrfs.sock")
	testenv.StartButterdWith(t, root, sock, testenv.ButterdOptions{Bus: bus,
		Args: []string{"--unit-dir", unitDir, "--systemd-bus", m.BusAddress()}})
	ctl := newCtl(t, bus)

	ctl.ok("volume", "create", "v1")
	ctl.ok("volume", "create", "a2")
	ctl.ok("schedule", "snapshot", "60", "v1")
	ctl.ok("schedule", "purge:1h:1d", "90s", "v1")
	ctl.ok("schedule", "--on-calendar", "Mon *-*-* 03:00", "snapshot", "a2")
	if out := ctl.ok("schedule", "purge", "pause", "v1"); out != "" {
		t.Errorf("schedule purge pause printed %q", out)
	}
	const want = `snapshot "Mon *-*-* 03:00" a2
purge:1h:1d 1min30s v1 (paused)
snapshot 60 v1
`
	for _, args := range [][]string{{"scheduled"}, {"scheduled", "list"}} {
		if out := ctl.ok(args...); out != want {
			t.Errorf("%s:\n%s\nwant\n%s", strings.Join(args, " "), out, want)
		}
	}
	table := strings.Split(strings.TrimSuffix(ctl.ok("scheduled", "-l"), "\n"), "\n")
	if len(table) != 4 || !slices.Equal(strings.Fields(table[0]), []string{"ACTION", "TIMER", "VOLUME", "STATE", "LAST", "RUN", "RESULT", "NEXT", "RUN"}) ||
		!strings.HasPrefix(table[1], "snapshot ") || !strings.Contains(table[2], " v1 ") || !strings.Contains(table[2], " paused ") ||
		!strings.Contains(table[3], " active ") {
		t.Errorf("scheduled -l:\n%s", strings.Join(table, "\n"))
	}
	var got struct {
		AllPaused bool `json:"all_paused"`
		Schedules []struct {
			Action, Volume, Timer string
			Paused                bool
		} `json:"schedules"`
	}
	ctl.okJSON(&got, "scheduled")
	if got.AllPaused || len(got.Schedules) != 3 || got.Schedules[1].Timer != "1min30s" || !got.Schedules[1].Paused {
		t.Errorf("scheduled --json: %+v", got)
	}

	ctl.fails(1, `no such volume "nosuch"`, "schedule", "snapshot", "60", "nosuch")
	ctl.fails(2, "purge pattern", "schedule", "purge:1x", "60", "v1")
}
