package tests

import (
	"debug/elf"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"butterd/tests/testenv"
)

// The files both packages ship, as the .deb names them; the .rpm puts the
// units under /usr/lib/systemd/system, zsh's completion under
// site-functions and the copyright under /usr/share/licenses.
var packageFiles = map[string]string{ // path: mode
	"/usr/bin/butterd":                                              "-rwxr-xr-x",
	"/usr/bin/butterctl":                                            "-rwxr-xr-x",
	"/lib/systemd/system/butterd.service":                           "-rw-r--r--",
	"/lib/systemd/system/butterd-pool.service":                      "-rw-r--r--",
	"/lib/systemd/system/butterd.socket":                            "-rw-r--r--",
	"/lib/systemd/system/butterd-ssh.socket":                        "-rw-r--r--",
	"/lib/systemd/system/butterd-schedules.target":                  "-rw-r--r--",
	"/usr/share/dbus-1/system.d/io.butterd.volumes1.conf":           "-rw-r--r--",
	"/usr/share/dbus-1/system-services/io.butterd.volumes1.service": "-rw-r--r--",
	"/usr/lib/sysusers.d/butterd.conf":                              "-rw-r--r--",
	"/etc/butterd/butterd.conf":                                     "-rw-r--r--",
	"/usr/share/man/man8/butterd.8.gz":                              "-rw-r--r--",
	"/usr/share/man/man8/butterctl.8.gz":                            "-rw-r--r--",
	"/usr/share/bash-completion/completions/butterctl":              "-rw-r--r--",
	"/usr/share/zsh/vendor-completions/_butterctl":                  "-rw-r--r--",
	"/usr/share/fish/vendor_completions.d/butterctl.fish":           "-rw-r--r--",
	"/usr/share/doc/butterd/copyright":                              "-rw-r--r--",
	"/usr/share/doc/butterd/changelog.Debian.gz":                    "-rw-r--r--",
	"/usr/share/lintian/overrides/butterd":                          "-rw-r--r--",
}

// rpmPath is where the .rpm puts a file of the .deb ("" when it has none).
func rpmPath(p string) string {
	switch {
	case strings.HasPrefix(p, "/lib/systemd/"):
		return "/usr" + p
	case p == "/usr/share/zsh/vendor-completions/_butterctl":
		return "/usr/share/zsh/site-functions/_butterctl"
	case p == "/usr/share/doc/butterd/copyright":
		return "/usr/share/licenses/butterd/copyright"
	case strings.HasPrefix(p, "/usr/share/doc/") || strings.HasPrefix(p, "/usr/share/lintian/"):
		return ""
	}
	return p
}

var pkgBuild struct {
	once     sync.Once
	deb, rpm string
	err      string
}

// buildPackages runs make deb rpm once per test binary and returns the
// packages' paths.
func buildPackages(t *testing.T) (deb, rpm string) {
	t.Helper()
	testenv.Command(t, "make")
	root := testenv.ModuleRoot(t)
	pkgBuild.once.Do(func() {
		cmd := exec.Command("make", "-s", "deb", "rpm")
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			pkgBuild.err = fmt.Sprintf("make deb rpm: %v\n%s", err, out)
			return
		}
		for _, l := range strings.Split(string(out), "\n") {
			switch l = strings.TrimSpace(l); {
			case strings.HasSuffix(l, ".deb"):
				pkgBuild.deb = filepath.Join(root, l)
			case strings.HasSuffix(l, ".rpm"):
				pkgBuild.rpm = filepath.Join(root, l)
			}
		}
		if pkgBuild.deb == "" || pkgBuild.rpm == "" {
			pkgBuild.err = fmt.Sprintf("make deb rpm named no .deb and .rpm:\n%s", out)
		}
	})
	if pkgBuild.err != "" {
		t.Fatal(pkgBuild.err)
	}
	return pkgBuild.deb, pkgBuild.rpm
}

func mustCmd(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// The .deb holds the files with their modes, the conffile, the maintainer
// scripts, a cgo butterd and a static butterctl; the .rpm the same files
// and scriptlets and its glibc requirement; lintian finds no error.
func TestPackageContents(t *testing.T) {
	dpkgDeb := testenv.Command(t, "dpkg-deb")
	rpmTool := testenv.Command(t, "rpm")
	deb, rpm := buildPackages(t)

	// dpkg-deb -c: mode owner/group size date time ./path
	listed := map[string]string{}
	for _, l := range strings.Split(mustCmd(t, dpkgDeb, "-c", deb), "\n") {
		f := strings.Fields(l)
		if len(f) >= 6 && !strings.HasPrefix(f[0], "d") {
			listed[strings.TrimPrefix(f[5], ".")] = f[0] + " " + f[1]
		}
	}
	for p, mode := range packageFiles {
		if got := listed[p]; got != mode+" root/root" {
			t.Errorf("dpkg-deb -c: %s is %q, want %q", p, got, mode+" root/root")
		}
	}
	for p := range listed {
		if _, ok := packageFiles[p]; !ok {
			t.Errorf("dpkg-deb -c: unexpected file %s", p)
		}
	}

	info := mustCmd(t, dpkgDeb, "-I", deb)
	for _, want := range []string{"Package: butterd", "Depends: libc6 (>= 2.34), btrfs-progs, dbus", " preinst", " postinst", " prerm", " postrm", " conffiles"} {
		if !strings.Contains(info, want) {
			t.Errorf("dpkg-deb -I lacks %q:\n%s", want, info)
		}
	}
	if c := mustCmd(t, dpkgDeb, "-I", deb, "conffiles"); strings.TrimSpace(c) != "/etc/butterd/butterd.conf" {
		t.Errorf("conffiles = %q, want /etc/butterd/butterd.conf", c)
	}
	scripts := map[string][]string{
		"preinst":  {"getent group butterd", "systemd-sysusers"},
		"postinst": {"deb-systemd-helper enable", "butterd.socket butterd-schedules.target", "daemon-reload", "deb-systemd-invoke restart butterd.service"},
		"prerm":    {"deb-systemd-invoke stop butterd-schedules.target butterd.service", "butterd.socket butterd-ssh.socket"},
		"postrm":   {"deb-systemd-helper disable", "rm -rf /etc/butterd", "daemon-reload"},
	}
	for name, wants := range scripts {
		s := mustCmd(t, dpkgDeb, "-I", deb, name)
		for _, w := range wants {
			if !strings.Contains(s, w) {
				t.Errorf("%s lacks %q:\n%s", name, w, s)
			}
		}
		if strings.Contains(s, "rm -rf /var/lib") {
			t.Errorf("%s removes the data root:\n%s", name, s)
		}
	}

	// butterd is the cgo build (dynamically linked), butterctl static.
	dir := t.TempDir()
	mustCmd(t, dpkgDeb, "-x", deb, dir)
	for bin, wantDynamic := range map[string]bool{"butterd": true, "butterctl": false} {
		f, err := elf.Open(filepath.Join(dir, "usr/bin", bin))
		if err != nil {
			t.Fatal(err)
		}
		dynamic := false
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				dynamic = true
			}
		}
		f.Close()
		if dynamic != wantDynamic {
			t.Errorf("/usr/bin/%s dynamically linked: %v, want %v", bin, dynamic, wantDynamic)
		}
	}

	// The rpm: the same files, the four scriptlets, glibc >= 2.34.
	var want []string
	for p := range packageFiles {
		if r := rpmPath(p); r != "" {
			want = append(want, r)
		}
	}
	sort.Strings(want)
	got := strings.Fields(mustCmd(t, rpmTool, "-qpl", rpm))
	sort.Strings(got)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("rpm -qpl:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	rs := mustCmd(t, rpmTool, "-qp", "--scripts", rpm)
	for _, w := range []string{"preinstall scriptlet", "postinstall scriptlet", "preuninstall scriptlet", "postuninstall scriptlet",
		"getent group butterd", "enable butterd.socket butterd-schedules.target", "disable butterd.service butterd.socket butterd-ssh.socket",
		"try-restart butterd.service", "daemon-reload"} {
		if !strings.Contains(rs, w) {
			t.Errorf("rpm -qp --scripts lacks %q:\n%s", w, rs)
		}
	}
	if req := mustCmd(t, rpmTool, "-qpR", rpm); !strings.Contains(req, "glibc >= 2.34") {
		t.Errorf("rpm -qpR does not require glibc >= 2.34:\n%s", req)
	}
	if c := strings.TrimSpace(mustCmd(t, rpmTool, "-qpc", rpm)); c != "/etc/butterd/butterd.conf" {
		t.Errorf("rpm -qpc = %q, want /etc/butterd/butterd.conf", c)
	}
	if i := mustCmd(t, rpmTool, "-qpi", rpm); !strings.Contains(i, "Supported distributions:") {
		t.Errorf("rpm -qpi names no supported distributions:\n%s", i)
	}

	// lintian: warnings are logged, errors fail.
	lintian := testenv.Command(t, "lintian")
	out, _ := exec.Command(lintian, "--tag-display-limit", "0", deb).CombinedOutput()
	for _, l := range strings.Split(string(out), "\n") {
		switch {
		case strings.HasPrefix(l, "E: "):
			t.Errorf("lintian: %s", l)
		case strings.HasPrefix(l, "W: "):
			t.Logf("lintian: %s", l)
		}
	}
}

// The .deb installed with dpkg -i under a real systemd (systemd-nspawn):
// the socket listens, a plugin request starts butterd, bus calls and
// butterctl work, a schedule becomes a timer; dpkg -r stops and disables
// everything and keeps the data; dpkg -P removes /etc/butterd only.
func TestPackageInstallSystemd(t *testing.T) {
	testenv.Root(t)
	deb, _ := buildPackages(t)
	m, data, debPaths := bootForPackage(t, "", deb)
	debPath := debPaths[0]

	out := m.MustRun("dpkg", "-i", debPath)
	t.Logf("dpkg -i:\n%s", out)

	if out, err := m.Run("systemd-analyze", "verify", "--man=no", "/lib/systemd/system/butterd.service",
		"/lib/systemd/system/butterd.socket", "/lib/systemd/system/butterd-ssh.socket",
		"/lib/systemd/system/butterd-schedules.target"); err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("systemd-analyze verify of the installed units: %v\n%s", err, out)
	}
	for unit, want := range map[string]string{"butterd.socket": "enabled", "butterd-schedules.target": "enabled", "butterd-ssh.socket": "disabled"} {
		if got, _ := m.Run("systemctl", "is-enabled", unit); strings.TrimSpace(got) != want {
			t.Errorf("after dpkg -i: %s is %q, want %s", unit, strings.TrimSpace(got), want)
		}
	}
	if st := unitState(t, m, "butterd.socket"); st["ActiveState"] != "active" || st["SubState"] != "listening" {
		t.Fatalf("butterd.socket after dpkg -i: %v", st)
	}
	if st := unitState(t, m, "butterd-schedules.target"); st["ActiveState"] != "active" {
		t.Errorf("butterd-schedules.target after dpkg -i: %v", st)
	}
	if st := unitState(t, m, "butterd.service"); st["ActiveState"] != "inactive" || st["InvocationID"] != "" {
		t.Errorf("butterd.service runs before any request: %v", st)
	}
	m.MustRun("getent", "group", "butterd")
	sock := m.Path(testenv.PluginSocket)
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("plugin socket %s: %v, mode %v, want 0600", testenv.PluginSocket, err, fi.Mode().Perm())
	}

	// The first plugin request starts butterd through the socket.
	if r := systemdPluginCall(t, sock, "/VolumeDriver.Create", map[string]any{"Name": "pkg-vol"}); r["Err"] != nil {
		t.Fatalf("Create: %v", r)
	}
	waitActivated(t, m, "")
	if out := m.MustRun("busctl", "call", "io.butterd.volumes1", "/io/butterd/volumes1",
		"io.butterd.volumes1.Manager", "ListVolumes"); !strings.Contains(out, `"pkg-vol"`) {
		t.Errorf("busctl ListVolumes: %s", out)
	}
	if out := m.MustRun("butterctl", "volume", "ls"); !strings.Contains(out, "pkg-vol") {
		t.Errorf("butterctl volume ls: %s", out)
	}
	snap := strings.TrimSpace(m.MustRun("butterctl", "snapshot", "pkg-vol"))
	if !strings.HasPrefix(snap, "pkg-vol@") {
		t.Fatalf("butterctl snapshot printed %q", snap)
	}
	m.MustRun("butterctl", "schedule", "--every", "1h", "snapshot", "pkg-vol")
	if timers := m.MustRun("systemctl", "list-timers", "--no-pager", "butterd-sched-*"); !strings.Contains(timers, "butterd-sched-") {
		t.Errorf("systemctl list-timers shows no schedule timer:\n%s", timers)
	}

	// dpkg -r: nothing of butterd runs or is enabled; the data stays.
	t.Logf("dpkg -r:\n%s", m.MustRun("dpkg", "-r", "butterd"))
	active := m.MustRun("systemctl", "list-units", "--no-legend", "--plain", "--all", "--state=active,activating,reloading", "butterd*")
	if strings.TrimSpace(active) != "" {
		t.Errorf("after dpkg -r, butterd units still run:\n%s", active)
	}
	if timers := m.MustRun("systemctl", "list-timers", "--no-pager", "--no-legend"); strings.Contains(timers, "butterd") {
		t.Errorf("after dpkg -r, a butterd timer is still listed:\n%s", timers)
	}
	if _, err := os.Stat(m.Path("/lib/systemd/system/timers.target.wants/butterd-schedules.target")); err == nil {
		t.Errorf("after dpkg -r, butterd-schedules.target is still wanted by timers.target")
	}
	for _, unit := range []string{"sockets.target.wants/butterd.socket", "timers.target.wants/butterd-schedules.target"} {
		if _, err := os.Lstat(m.Path("/etc/systemd/system/" + unit)); err == nil {
			t.Errorf("after dpkg -r, /etc/systemd/system/%s is still there", unit)
		}
	}
	for _, p := range []string{"volumes/pkg-vol", "snapshots/" + snap} {
		if _, err := os.Stat(filepath.Join(data, p)); err != nil {
			t.Errorf("after dpkg -r: %v", err)
		}
	}
	if _, err := os.Stat(m.Path("/etc/butterd/butterd.conf")); err != nil {
		t.Errorf("dpkg -r removed the configuration: %v", err)
	}

	// dpkg -P: the configuration goes, the data stays.
	m.MustRun("dpkg", "-P", "butterd")
	if _, err := os.Stat(m.Path("/etc/butterd")); !os.IsNotExist(err) {
		t.Errorf("after dpkg -P, /etc/butterd: %v, want gone", err)
	}
	for _, p := range []string{"volumes/pkg-vol", "snapshots/" + snap} {
		if _, err := os.Stat(filepath.Join(data, p)); err != nil {
			t.Errorf("after dpkg -P: %v", err)
		}
	}
}

// bootForPackage boots a systemd container for installing the packages
// debs (their paths inside are returned) with a btrfs filesystem bound as
// the default data root /var/lib/butterd (data is its path on the host),
// and writes butterd.service's drop-in with the environment assignments
// extraEnv before any package starts butterd.
func bootForPackage(t *testing.T, extraEnv string, debs ...string) (m *testenv.Machine, data string, debPaths []string) {
	t.Helper()
	debDir, debPaths := copyDebs(t, debs...)
	data = testenv.Btrfs(t)
	m = testenv.BootSystemd(t, testenv.Bind{Src: debDir, ReadOnly: true}, testenv.Bind{Src: data, Dst: "/var/lib/butterd"})
	prepareForPackage(m, extraEnv)
	return m, data, debPaths
}

// copyDebs copies the packages debs into a directory of their own, to be
// bound in a container (which sees the host's /tmp as a tmpfs), and
// returns it and their paths.
func copyDebs(t *testing.T, debs ...string) (dir string, paths []string) {
	t.Helper()
	dir = t.TempDir()
	for _, deb := range debs {
		p := filepath.Join(dir, filepath.Base(deb))
		b, err := os.ReadFile(deb)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	return dir, paths
}

// prepareForPackage writes butterd.service's drop-in and lets packages
// start services in the container.
func prepareForPackage(m *testenv.Machine, extraEnv string) {
	writeTestDropIn(m, extraEnv)
	// A host image built by docker build carries a policy-rc.d that forbids
	// starting services (the package honours it, as Debian's do); a real
	// host has none. Removed in the container's overlay only.
	m.MustRun("rm", "-f", "/usr/sbin/policy-rc.d")
}

// writeTestDropIn writes butterd.service's drop-in with debug logging and
// extraEnv (more Environment= assignments).
func writeTestDropIn(m *testenv.Machine, extraEnv string) {
	env := "BUTTERD_LOG_LEVEL=debug"
	if extraEnv != "" {
		env += " " + extraEnv
	}
	m.WriteFile("/etc/systemd/system/butterd.service.d/test.conf", []byte("[Service]\nEnvironment="+env+"\n"), 0o644)
}

// upgradeVersion is the VERSION of the newer build an upgrade installs
// over buildPackages' (the Makefile's default).
const upgradeVersion = "0.1.1"

var newerBuild struct {
	once     sync.Once
	deb, err string
}

// buildNewerDeb runs make deb VERSION=upgradeVersion once per test binary
// (after buildPackages: bin/ keeps both .debs, named by their versions)
// and returns its path.
func buildNewerDeb(t *testing.T) string {
	t.Helper()
	buildPackages(t)
	root := testenv.ModuleRoot(t)
	newerBuild.once.Do(func() {
		cmd := exec.Command("make", "-s", "deb", "VERSION="+upgradeVersion)
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			newerBuild.err = fmt.Sprintf("make deb VERSION=%s: %v\n%s", upgradeVersion, err, out)
			return
		}
		for _, l := range strings.Split(string(out), "\n") {
			if l = strings.TrimSpace(l); strings.HasSuffix(l, ".deb") {
				newerBuild.deb = filepath.Join(root, l)
			}
		}
		if !strings.Contains(filepath.Base(newerBuild.deb), "_"+upgradeVersion+"-") {
			newerBuild.err = fmt.Sprintf("make deb VERSION=%s named no .deb of that version:\n%s", upgradeVersion, out)
		}
	})
	if newerBuild.err != "" {
		t.Fatal(newerBuild.err)
	}
	return newerBuild.deb
}

// The installed package's life after dpkg -i, as an operator sees it: with
// EXIT_IDLE set by a drop-in, butterd exits by itself when idle and a
// plugin call (socket) or a busctl call (bus activation) starts it again
// with its mount references; an upgrade to a newer build restarts butterd
// and keeps volumes, snapshots and schedules; apt-get remove leaves no
// butterd unit or schedule timer running and keeps the data.
func TestPackageUpgradeSystemd(t *testing.T) {
	testenv.Root(t)
	oldDeb, _ := buildPackages(t)
	newDeb := buildNewerDeb(t)
	const idle = 2 * time.Second
	exitIdle := fmt.Sprintf("BUTTERD_EXIT_IDLE=%ds", int(idle/time.Second))
	m, data, debs := bootForPackage(t, exitIdle, oldDeb, newDeb)
	oldPath, newPath := debs[0], debs[1]

	// Install: apt-get install of the local file (it needs no network when
	// the dependencies are there), else dpkg -i.
	if out, err := m.Run("env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", oldPath); err != nil {
		t.Logf("apt-get install %s failed (%v), installing with dpkg -i:\n%s", oldPath, err, out)
		m.MustRun("dpkg", "-i", oldPath)
	} else {
		t.Logf("apt-get install:\n%s", out)
	}
	oldVersion := strings.TrimSpace(m.MustRun("dpkg-query", "-W", "-f", "${Version}", "butterd"))
	if !strings.HasPrefix(oldVersion, "0.1.0-") {
		t.Fatalf("installed version %q, want 0.1.0-*", oldVersion)
	}
	if st := unitState(t, m, "butterd.socket"); st["ActiveState"] != "active" || st["SubState"] != "listening" {
		t.Fatalf("butterd.socket after install: %v", st)
	}

	// 1. Idle exit and re-activation, keeping the mount reference.
	sock := m.Path(testenv.PluginSocket)
	if r := systemdPluginCall(t, sock, "/VolumeDriver.Create", map[string]any{"Name": "up-vol"}); r["Err"] != nil {
		t.Fatalf("Create: %v", r)
	}
	if r := systemdPluginCall(t, sock, "/VolumeDriver.Mount", map[string]any{"Name": "up-vol", "ID": "ctr-1"}); r["Err"] != nil {
		t.Fatalf("Mount: %v", r)
	}
	lastRequest := time.Now()
	first := waitActivated(t, m, "")
	waitIdleExit(t, m, lastRequest, idle)

	// By the socket: a plugin call starts butterd again.
	r := systemdPluginCall(t, sock, "/VolumeDriver.Get", map[string]any{"Name": "up-vol"})
	if r["Err"] != nil && r["Err"] != "" {
		t.Fatalf("Get after the idle exit: %v", r)
	}
	second := waitActivated(t, m, first["InvocationID"])
	if n := volumeMounts(t, m, "up-vol"); n != 1 {
		t.Errorf("after re-activation by the socket, up-vol has %d mounts, want 1", n)
	}
	lastRequest = time.Now()
	waitIdleExit(t, m, lastRequest, idle)

	// By the bus: busctl starts butterd again, which answers with the mount.
	if n := volumeMounts(t, m, "up-vol"); n != 1 {
		t.Errorf("after re-activation by the bus, up-vol has %d mounts, want 1", n)
	}
	third := waitActivated(t, m, second["InvocationID"])
	t.Logf("invocations: socket %s, socket again %s, bus %s", first["InvocationID"], second["InvocationID"], third["InvocationID"])

	// 2. Upgrade. A snapshot and a schedule made with the old package; then
	// butterd stays up (no idle exit) so that the upgrade has it to restart.
	snap := strings.TrimSpace(m.MustRun("butterctl", "snapshot", "up-vol"))
	if !strings.HasPrefix(snap, "up-vol@") {
		t.Fatalf("butterctl snapshot printed %q", snap)
	}
	m.MustRun("butterctl", "schedule", "--every", "1h", "snapshot", "up-vol")
	timer := scheduleTimer(t, m, "up-vol")
	t.Logf("schedule timer %s", timer)
	writeTestDropIn(m, "")
	m.MustRun("systemctl", "daemon-reload")
	m.MustRun("systemctl", "restart", "butterd.service")
	before := waitActivated(t, m, third["InvocationID"])

	out := m.MustRun("dpkg", "-i", newPath)
	t.Logf("dpkg -i (upgrade):\n%s", out)
	if v := strings.TrimSpace(m.MustRun("dpkg-query", "-W", "butterd")); v != "butterd\t"+upgradeVersion+"-1" {
		t.Errorf("dpkg-query -W after the upgrade: %q, want butterd\\t%s-1", v, upgradeVersion)
	}
	after := waitActivated(t, m, before["InvocationID"])
	if after["MainPID"] == before["MainPID"] {
		t.Errorf("butterd's MainPID %s did not change with the upgrade", after["MainPID"])
	}
	if v := m.MustRun("butterd", "version"); !strings.Contains(v, upgradeVersion) {
		t.Errorf("butterd version after the upgrade: %q", v)
	}
	if out := m.MustRun("butterctl", "volume", "ls"); !strings.Contains(out, "up-vol") {
		t.Errorf("after the upgrade, butterctl volume ls: %s", out)
	}
	if n := volumeMounts(t, m, "up-vol"); n != 1 {
		t.Errorf("after the upgrade, up-vol has %d mounts, want 1", n)
	}
	if out := m.MustRun("butterctl", "snapshots", "up-vol"); !strings.Contains(out, snap) {
		t.Errorf("after the upgrade, butterctl snapshots up-vol lacks %s:\n%s", snap, out)
	}
	if got := scheduleTimer(t, m, "up-vol"); got != timer {
		t.Errorf("after the upgrade, ListSchedules has timer %q for up-vol, want %q", got, timer)
	}
	if timers := m.MustRun("systemctl", "list-timers", "--no-pager", "butterd-sched-*"); !strings.Contains(timers, timer) {
		t.Errorf("after the upgrade, systemctl list-timers lacks %s:\n%s", timer, timers)
	}

	// 3. apt-get remove: nothing of butterd runs, no schedule timer; the
	// data and the configuration stay.
	out, err := m.Run("env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "remove", "-y", "butterd")
	if err != nil {
		t.Fatalf("apt-get remove butterd: %v\n%s", err, out)
	}
	t.Logf("apt-get remove:\n%s", out)
	if st, _ := m.Run("dpkg-query", "-W", "-f", "${Status}", "butterd"); strings.Contains(st, "installed") && !strings.Contains(st, "config-files") {
		t.Errorf("after apt-get remove, butterd's status is %q", st)
	}
	active := m.MustRun("systemctl", "list-units", "--no-legend", "--plain", "--all", "--state=active,activating,reloading", "butterd*")
	if strings.TrimSpace(active) != "" {
		t.Errorf("after apt-get remove, butterd units still run:\n%s", active)
	}
	if timers := m.MustRun("systemctl", "list-timers", "--no-pager", "--no-legend", "--all"); strings.Contains(timers, "butterd") {
		t.Errorf("after apt-get remove, a butterd timer is still listed:\n%s", timers)
	}
	for _, p := range []string{"volumes/up-vol", "snapshots/" + snap} {
		if _, err := os.Stat(filepath.Join(data, p)); err != nil {
			t.Errorf("after apt-get remove: %v", err)
		}
	}
	if _, err := os.Stat(m.Path("/etc/butterd/butterd.conf")); err != nil {
		t.Errorf("apt-get remove removed the configuration: %v", err)
	}
}

// volumeMounts is the mount count of volume in ListVolumes, called with
// busctl inside the container (which bus-activates butterd if needed).
func volumeMounts(t *testing.T, m *testenv.Machine, volume string) int {
	t.Helper()
	out := m.MustRun("busctl", "--timeout=20", "--json=short", "call", "io.butterd.volumes1", "/io/butterd/volumes1",
		"io.butterd.volumes1.Manager", "ListVolumes")
	var reply struct {
		Type string
		Data [][][]any
	}
	if err := json.Unmarshal([]byte(out), &reply); err != nil || reply.Type != "a(sostu)" || len(reply.Data) != 1 {
		t.Fatalf("ListVolumes answered %q (%v)", out, err)
	}
	for _, row := range reply.Data[0] {
		if len(row) == 5 && row[0] == volume {
			n, _ := row[4].(float64)
			return int(n)
		}
	}
	t.Fatalf("ListVolumes has no %s: %s", volume, out)
	return 0
}

// scheduleTimer is the timer unit of volume's snapshot schedule in
// ListSchedules, called with busctl inside the container.
func scheduleTimer(t *testing.T, m *testenv.Machine, volume string) string {
	t.Helper()
	out := m.MustRun("busctl", "--timeout=20", "--json=short", "call", "io.butterd.volumes1", "/io/butterd/volumes1",
		"io.butterd.volumes1.Manager", "ListSchedules")
	var reply struct {
		Type string
		Data []json.RawMessage
	}
	if err := json.Unmarshal([]byte(out), &reply); err != nil || len(reply.Data) != 2 {
		t.Fatalf("ListSchedules answered %q (%v)", out, err)
	}
	var rows [][]any
	if err := json.Unmarshal(reply.Data[0], &rows); err != nil {
		t.Fatalf("ListSchedules rows %s: %v", reply.Data[0], err)
	}
	for _, row := range rows {
		if len(row) >= 7 && row[0] == "snapshot" && row[1] == volume {
			if unit, _ := row[6].(string); strings.HasPrefix(unit, "butterd-sched-") && strings.HasSuffix(unit, ".timer") {
				return unit
			}
			t.Fatalf("ListSchedules: the schedule of %s names timer %v: %s", volume, row[6], out)
		}
	}
	t.Fatalf("ListSchedules has no snapshot schedule of %s: %s", volume, out)
	return ""
}

// The hardened butterd.service with Docker, as an operator runs them: the
// .deb installed under a real systemd whose data root /var/lib/butterd is
// not on BTRFS, with Docker's own units running in the same container.
// butterd-pool.service mounts the pool image in the host's mount namespace
// before butterd starts in its private, read-only one; a file a Docker
// container writes in a btrfs volume is in the subvolume as the host sees
// it, as butterd sees it, and in the snapshot butterd takes; a mount made
// on the host while butterd runs shows in butterd's namespace; the README
// reports the exposure systemd-analyze security gives.
func TestPackageDockerHardened(t *testing.T) {
	testenv.Root(t)
	deb, _ := buildPackages(t)
	debDir, debPaths := copyDebs(t, deb)
	// Registered before the container: checked after it powered off.
	loopsBefore := loopsBackedBy(poolImage)
	t.Cleanup(func() { checkNoLoop(t, poolImage, loopsBefore) })
	m := testenv.BootSystemdWith(t, testenv.MachineOptions{
		Binds:       []testenv.Bind{{Src: debDir, ReadOnly: true}},
		LoopDevices: true,
		Docker:      true,
	})
	prepareForPackage(m, "")
	// Docker, butterd and the pool mount go before the container does.
	t.Cleanup(func() {
		m.Run("systemctl", "stop", "docker.service", "docker.socket", "containerd.service", "butterd.service")
		if out, err := m.Run("umount", poolRoot); err != nil {
			t.Errorf("umount %s in the container: %v\n%s", poolRoot, err, out)
		}
	})
	if fstype := strings.TrimSpace(m.MustRun("stat", "-f", "-c", "%T", "/var/lib")); fstype == "btrfs" {
		t.Fatalf("/var/lib in the container is on %s: the pool would not be needed", fstype)
	}

	m.MustRun("dpkg", "-i", debPaths[0])
	m.ImportBusybox()
	docker := func(args ...string) string {
		return strings.TrimSpace(m.MustRun(append([]string{"/usr/bin/docker"}, args...)...))
	}

	// The first plugin call starts butterd, and butterd-pool.service first.
	docker("volume", "create", "-d", "btrfs", "hv")
	st := waitActivated(t, m, "")
	if pool := unitState(t, m, "butterd-pool.service"); pool["ActiveState"] != "active" || pool["Result"] != "success" {
		t.Fatalf("butterd-pool.service: %v", pool)
	}
	poolLog := m.MustRun("journalctl", "--no-pager", "-o", "cat", "-u", "butterd-pool.service")
	if !strings.Contains(poolLog, "created pool image") || !strings.Contains(poolLog, "mounted butterd's pool image") {
		t.Errorf("butterd-pool.service's journal does not say it made and mounted the pool:\n%s", poolLog)
	}
	// The pool is mounted in the container's host namespace (PID 1's,
	// dockerd's).
	if got := strings.Fields(m.MustRun("findmnt", "-n", "-o", "FSTYPE,SOURCE", "--mountpoint", poolRoot)); len(got) != 2 || got[0] != "btrfs" || !strings.HasPrefix(got[1], "/dev/loop") {
		t.Fatalf("findmnt %s in the host namespace: %q, want btrfs on a loop device", poolRoot, got)
	}
	dockerd := unitState(t, m, "docker.service")["MainPID"]
	butterd := st["MainPID"]
	ns := func(pid string) string { return strings.TrimSpace(m.MustRun("readlink", "/proc/"+pid+"/ns/mnt")) }
	if ns(butterd) == ns("1") {
		t.Errorf("butterd runs in the host's mount namespace %s", ns("1"))
	}
	if ns(dockerd) != ns("1") {
		t.Errorf("dockerd runs in mount namespace %s, not the host's %s", ns(dockerd), ns("1"))
	}
	// In butterd's namespace: / is read-only, the pool and the unit
	// directory are writable.
	for mp, want := range map[string]string{"/": "ro", poolRoot: "rw", "/etc/systemd/system": "rw"} {
		// The last of the mounts on mp is the one butterd sees.
		lines := strings.Split(strings.TrimSpace(m.MustRun("findmnt", "--task", butterd, "-n", "-o", "FSTYPE,OPTIONS", "--mountpoint", mp)), "\n")
		out := strings.Fields(lines[len(lines)-1])
		if len(out) != 2 || !strings.HasPrefix(out[1], want+",") || mp == poolRoot && out[0] != "btrfs" {
			t.Errorf("findmnt --task %s %s: %q, want %s", butterd, mp, lines, want)
		}
	}

	// A container writes in the volume: a file and a setgid directory.
	const content = "written in a container"
	docker("run", "--rm", "--network", "none", "-v", "hv:/data", testenv.Image, "sh", "-c",
		"echo '"+content+"' >/data/f && mkdir /data/shared && chmod 2775 /data/shared")
	file := poolRoot + "/volumes/hv/f"
	if got := strings.TrimSpace(m.MustRun("cat", file)); got != content {
		t.Errorf("in the host namespace, %s holds %q, want %q", file, got, content)
	}
	if got := strings.TrimSpace(m.MustRun("nsenter", "-t", butterd, "-m", "cat", file)); got != content {
		t.Errorf("in butterd's namespace, %s holds %q, want %q", file, got, content)
	}
	snap := strings.TrimSpace(m.MustRun("butterctl", "snapshot", "hv"))
	if got := strings.TrimSpace(m.MustRun("cat", poolRoot+"/snapshots/"+snap+"/f")); got != content {
		t.Errorf("butterd's snapshot %s holds %q in f, want %q", snap, got, content)
	}
	if got := docker("run", "--rm", "--network", "none", "-v", "hv:/data", testenv.Image, "cat", "/data/f"); got != content {
		t.Errorf("a second container reads %q, want %q", got, content)
	}
	// btrfs receive works in butterd's namespace, with its capabilities
	// and syscall filter: the snapshot exported, removed and imported
	// again is whole, modes included.
	m.MustRun("butterctl", "export", snap, "/var/tmp/hv.stream")
	m.MustRun("butterctl", "rm", snap)
	// The job's progress goes to stderr, the name last to stdout.
	imported := strings.Split(strings.TrimSpace(m.MustRun("butterctl", "import", "/var/tmp/hv.stream")), "\n")
	if got := imported[len(imported)-1]; got != snap {
		t.Errorf("butterctl import printed %q, want %s last", imported, snap)
	}
	if got := m.MustRun("stat", "-c", "%a %s", poolRoot+"/snapshots/"+snap+"/shared", poolRoot+"/snapshots/"+snap+"/f"); got != fmt.Sprintf("2775 %d\n644 %d\n", 0, len(content)+1) {
		t.Errorf("the imported snapshot's shared and f: %q, want modes 2775 and 644, f of %d bytes", got, len(content)+1)
	}

	// A mount made on the host while butterd runs propagates into its
	// namespace (as the pool would if butterd-pool.service ran later).
	m.MustRun("mkdir", "-p", "/mnt/propagated")
	m.MustRun("mount", "-t", "tmpfs", "probe", "/mnt/propagated")
	out, err := m.Run("findmnt", "--task", butterd, "-n", "-o", "SOURCE", "--mountpoint", "/mnt/propagated")
	if strings.TrimSpace(out) != "probe" {
		t.Errorf("a host mount made while butterd runs is not in its namespace: %v %q", err, out)
	}
	m.MustRun("umount", "/mnt/propagated")

	// butterd pool again, by hand or by the unit, changes nothing.
	if out := m.MustRun("butterd", "pool"); !strings.Contains(out, "data root is on BTRFS") {
		t.Errorf("butterd pool on the mounted pool says:\n%s", out)
	}
	m.MustRun("systemctl", "restart", "butterd-pool.service")
	if n := strings.Count(m.MustRun("losetup", "-n", "-O", "NAME", "-j", poolImage), "/dev/loop"); n != 1 {
		t.Errorf("after butterd-pool.service ran again, %s is on %d loop devices, want 1", poolImage, n)
	}

	// The README's figure is what systemd-analyze says.
	sec, _ := m.Run("systemd-analyze", "security", "--no-pager", "butterd.service")
	got := regexp.MustCompile(`Overall exposure level for butterd.service: ([0-9.]+ [A-Z]+)`).FindStringSubmatch(sec)
	if got == nil {
		t.Fatalf("systemd-analyze security butterd.service:\n%s", sec)
	}
	t.Logf("systemd-analyze security butterd.service: %s", got[1])
	readme, err := os.ReadFile(filepath.Join(testenv.ModuleRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	reported := regexp.MustCompile(`rates the packaged service\s+\*\*([0-9.]+ [A-Z]+)\*\*`).FindSubmatch(readme)
	if reported == nil || string(reported[1]) != got[1] {
		t.Errorf("README.md reports the exposure as %q, systemd-analyze says %s", reported, got[1])
	}
}

const (
	poolRoot  = "/var/lib/butterd"
	poolImage = poolRoot + ".img"
)

// loopsBackedBy maps the loop devices backed by a file named image (as
// the process that set them up named it) to their backing file.
func loopsBackedBy(image string) map[string]string {
	loops := map[string]string{}
	out, _ := exec.Command("losetup", "-n", "-O", "NAME,BACK-FILE").Output()
	for _, l := range strings.Split(string(out), "\n") {
		if name, file, ok := strings.Cut(strings.TrimSpace(l), " "); ok && strings.HasPrefix(strings.TrimSpace(file), image) {
			loops[name] = strings.TrimSpace(file)
		}
	}
	return loops
}

// checkNoLoop fails the test when a loop device other than those of
// before is backed by image, and detaches it when its file is deleted (the
// container's, gone with its overlay).
func checkNoLoop(t *testing.T, image string, before map[string]string) {
	for name, file := range loopsBackedBy(image) {
		if _, ok := before[name]; ok {
			continue
		}
		t.Errorf("loop device %s is still backed by %s", name, file)
		if strings.HasSuffix(file, "(deleted)") {
			exec.Command("losetup", "-d", name).Run()
		}
	}
}
