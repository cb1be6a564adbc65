package tests

import (
	"debug/elf"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"butterd/service/remote"
	"butterd/tests/testenv"
	"butterd/units"
)

// sshDropIn is the drop-in of butterd-ssh.socket that butterd writes for
// SSH_ADDRESS/SSH_PORT, and that purging the package removes.
const sshDropIn = "/etc/systemd/system/butterd-ssh.socket.d/50-butterd-listen.conf"

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
	"/etc/butterd/butterd.conf":                                     "-rw-r-----", // WEBHOOK_URL may hold a token
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

// A build of both packages by make, done once per test binary.
type pkgBuild struct {
	once     sync.Once
	deb, rpm string
	err      string
}

var (
	defaultBuild pkgBuild // the Makefile's VERSION
	newerBuild   pkgBuild // upgradeVersion
)

// upgradeVersion is the VERSION of the newer build an upgrade installs
// over the default one.
const upgradeVersion = "0.1.1"

// buildPackages runs make deb rpm once per test binary and returns the
// packages' paths.
func buildPackages(t *testing.T) (deb, rpm string) {
	t.Helper()
	return defaultBuild.make(t, "")
}

// buildNewer runs make deb rpm VERSION=upgradeVersion once per test binary
// (after buildPackages: bin/ keeps both builds, named by their versions)
// and returns the packages' paths.
func buildNewer(t *testing.T) (deb, rpm string) {
	t.Helper()
	buildPackages(t)
	return newerBuild.make(t, upgradeVersion)
}

// make runs make deb rpm [VERSION=version] once and returns the packages
// it names.
func (b *pkgBuild) make(t *testing.T, version string) (deb, rpm string) {
	t.Helper()
	testenv.Command(t, "make")
	root := testenv.ModuleRoot(t)
	b.once.Do(func() {
		args := []string{"-s", "deb", "rpm"}
		if version != "" {
			args = append(args, "VERSION="+version)
		}
		cmd := exec.Command("make", args...)
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			b.err = fmt.Sprintf("make %s: %v\n%s", strings.Join(args, " "), err, out)
			return
		}
		for _, l := range strings.Split(string(out), "\n") {
			switch l = strings.TrimSpace(l); {
			case strings.HasSuffix(l, ".deb"):
				b.deb = filepath.Join(root, l)
			case strings.HasSuffix(l, ".rpm"):
				b.rpm = filepath.Join(root, l)
			}
		}
		if b.deb == "" || b.rpm == "" || version != "" && (!strings.Contains(filepath.Base(b.deb), "_"+version+"-") || !strings.Contains(filepath.Base(b.rpm), "-"+version+"-")) {
			b.err = fmt.Sprintf("make %s named no .deb and .rpm of that version:\n%s", strings.Join(args, " "), out)
		}
	})
	if b.err != "" {
		t.Fatal(b.err)
	}
	return b.deb, b.rpm
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
		"prerm":    {"deb-systemd-invoke stop butterd-schedules.target 'butterd-sched-*.timer' 'butterd-sched-*.service'", "butterd.socket butterd-ssh.socket"},
		"postrm":   {"deb-systemd-helper disable", "rm -rf /etc/butterd", "rm -f " + sshDropIn, "daemon-reload"},
	}
	debScripts := map[string]string{}
	for name, wants := range scripts {
		s := mustCmd(t, dpkgDeb, "-I", deb, name)
		debScripts[name] = s
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

	// The rpm: the deb's files (with rpmPath's naming differences), modes
	// and owners; scriptlets that act on the same units in the same ways as
	// the deb's maintainer scripts; glibc >= 2.34; the distributions.
	var want, wantNames []string
	for p, mode := range listed {
		if r := rpmPath(p); r != "" {
			want = append(want, mode+" "+r)
			wantNames = append(wantNames, r)
		}
	}
	sort.Strings(want)
	sort.Strings(wantNames)
	got := strings.Fields(mustCmd(t, rpmTool, "-qpl", rpm))
	sort.Strings(got)
	if strings.Join(got, "\n") != strings.Join(wantNames, "\n") {
		t.Errorf("rpm -qpl:\n%s\nwant (dpkg-deb -c):\n%s", strings.Join(got, "\n"), strings.Join(wantNames, "\n"))
	}
	got = strings.Split(strings.TrimSpace(mustCmd(t, rpmTool, "-qp", "--qf", "[%{FILEMODES:perms} %{FILEUSERNAME}/%{FILEGROUPNAME} %{FILENAMES}\\n]", rpm)), "\n")
	sort.Strings(got)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("rpm files with modes and owners:\n%s\nwant (dpkg-deb -c):\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	rpmScripts := rpmScriptlets(mustCmd(t, rpmTool, "-qp", "--scripts", rpm))
	var debAll, rpmAll string
	for deb, rpm := range map[string]string{"preinst": "preinstall", "postinst": "postinstall", "prerm": "preuninstall", "postrm": "postuninstall"} {
		if strings.TrimSpace(rpmScripts[rpm]) == "" {
			t.Errorf("the rpm has no %s scriptlet for the deb's %s", rpm, deb)
		}
		debAll += debScripts[deb]
		rpmAll += rpmScripts[rpm]
	}
	if !strings.Contains(rpmScripts["postuninstall"], "rm -f "+sshDropIn) {
		t.Errorf("the rpm's %%postun does not remove %s:\n%s", sshDropIn, rpmScripts["postuninstall"])
	}
	if d, r := scriptFacts(debAll), scriptFacts(rpmAll); strings.Join(d, ", ") != strings.Join(r, ", ") {
		t.Errorf("the maintainer scripts and the rpm's scriptlets differ:\ndeb: %s\nrpm: %s", strings.Join(d, ", "), strings.Join(r, ", "))
	} else {
		t.Logf("both packages' scripts: %s", strings.Join(d, ", "))
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

// rpmScriptlets splits the output of rpm -qp --scripts by scriptlet:
// preinstall, postinstall, preuninstall, postuninstall.
func rpmScriptlets(out string) map[string]string {
	scriptlets := map[string]string{}
	name := ""
	for _, l := range strings.SplitAfter(out, "\n") {
		if n, _, ok := strings.Cut(l, " scriptlet (using "); ok && !strings.HasPrefix(l, " ") && !strings.HasPrefix(l, "#") {
			name = n
			continue
		}
		scriptlets[name] += l
	}
	return scriptlets
}

// scriptFacts is what maintainer scripts do, as a sorted list: the units
// they name and their actions. Differences by design, not listed: the deb
// removes /etc/butterd on purge (rpm removes its unchanged config files
// itself), and the deb restarts butterd in postinst, the rpm in the old
// package's %postun.
func scriptFacts(script string) []string {
	facts := map[string]bool{}
	for _, u := range regexp.MustCompile(`butterd[a-z-]*\.(?:service|socket|target)`).FindAllString(script, -1) {
		facts["unit "+u] = true
	}
	for action, re := range map[string]string{
		"add group butterd": `getent group butterd`, "sysusers": `systemd-sysusers`,
		"enable": `\benable\b`, "disable": `\bdisable\b`, "start": `\bstart\b`, "stop": `\bstop\b`,
		"restart": `\b(?:try-)?restart\b`, "daemon-reload": `\bdaemon-reload\b`, "reload the bus policy": `\bReloadConfig\b`,
	} {
		if regexp.MustCompile(re).MatchString(script) {
			facts[action] = true
		}
	}
	var out []string
	for f := range facts {
		out = append(out, f)
	}
	sort.Strings(out)
	return out
}

// The .deb installed with dpkg -i under a real systemd (systemd-nspawn):
// the socket listens, a plugin request starts butterd, bus calls and
// butterctl work, a schedule becomes a timer, a replication peer makes
// butterd write its drop-in of butterd-ssh.socket; dpkg -r stops and
// disables everything, stops a schedule's service still running and keeps
// the data; dpkg -i again enables what was enabled before the removal;
// dpkg -P removes /etc/butterd and that drop-in only.
func TestPackageInstallSystemd(t *testing.T) {
	testenv.Root(t)
	deb, _ := buildPackages(t)
	m, data, debPaths := bootForPackage(t, "BUTTERD_SSH_PORT=2122", deb)
	debPath := debPaths[0]

	out := m.MustRun("dpkg", "-i", debPath)
	t.Logf("dpkg -i:\n%s", out)

	if out, err := m.Run("systemd-analyze", "verify", "--man=no", "/lib/systemd/system/butterd.service",
		"/lib/systemd/system/butterd.socket", "/lib/systemd/system/butterd-ssh.socket",
		"/lib/systemd/system/butterd-schedules.target"); err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("systemd-analyze verify of the installed units: %v\n%s", err, out)
	}
	checkFreshInstall(t, m, "dpkg -i")
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

	// A peer, with SSH_PORT not the socket's own: butterd writes the drop-in
	// that moves butterd-ssh.socket there. Removing the last peer stops the
	// socket and keeps the drop-in.
	key, err := remote.LoadOrCreateKey(filepath.Join(t.TempDir(), "client_key"))
	must(t, err)
	m.MustRun("butterctl", "remote", "add", "hosta", "--key", remote.AuthorizedKey(key.PublicKey()))
	if b, err := os.ReadFile(m.Path(sshDropIn)); err != nil || !strings.Contains(string(b), "ListenStream=2122") {
		t.Errorf("after a peer was added with SSH_PORT=2122, %s: %q, %v", sshDropIn, b, err)
	}
	if out := m.MustRun("butterctl", "remote", "rm", "hosta"); !strings.Contains(out, "replication endpoint stopped: no peer is left") {
		t.Errorf("butterctl remote rm of the last peer printed %q", out)
	}

	// A scheduled job that takes long: its service still runs when the
	// package is removed.
	schedService := holdScheduleService(t, m, "pkg-vol")

	// dpkg -r: nothing of butterd runs or is enabled; the data stays.
	t.Logf("dpkg -r:\n%s", m.MustRun("dpkg", "-r", "butterd"))
	checkStopped(t, m, schedService, "dpkg -r")
	m.MustRun("rm", "-r", "/etc/systemd/system/"+schedService+".d")
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

	if _, err := os.Stat(m.Path(sshDropIn)); err != nil {
		t.Errorf("dpkg -r removed butterd's drop-in: %v", err)
	}

	checkReinstall(t, m, "dpkg -r", "dpkg -i", "pkg-vol",
		func() { m.MustRun("dpkg", "-r", "butterd") },
		func() { m.MustRun("dpkg", "-i", debPath) })

	// dpkg -P: the configuration and butterd's drop-in go, the data stays.
	m.MustRun("dpkg", "-P", "butterd")
	for _, p := range []string{"/etc/butterd", filepath.Dir(sshDropIn)} {
		if _, err := os.Stat(m.Path(p)); !os.IsNotExist(err) {
			t.Errorf("after dpkg -P, %s: %v, want gone", p, err)
		}
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

// The installed package's life after dpkg -i, as an operator sees it: with
// EXIT_IDLE set by a drop-in, butterd exits by itself when idle and a
// plugin call (socket) or a busctl call (bus activation) starts it again
// with its mount references; an upgrade to a newer build restarts butterd
// and keeps volumes, snapshots and schedules; apt-get remove leaves no
// butterd unit or schedule timer running and keeps the data.
func TestPackageUpgradeSystemd(t *testing.T) {
	testenv.Root(t)
	oldDeb, _ := buildPackages(t)
	newDeb, _ := buildNewer(t)
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

	// The drop-in butterd writes for SSH_ADDRESS/SSH_PORT is the
	// operator's setting: an upgrade keeps it.
	m.WriteFile(sshDropIn, []byte("[Socket]\nListenStream=\nListenStream=2122\n"), 0o644)
	out := m.MustRun("dpkg", "-i", newPath)
	t.Logf("dpkg -i (upgrade):\n%s", out)
	if v := strings.TrimSpace(m.MustRun("dpkg-query", "-W", "butterd")); v != "butterd\t"+upgradeVersion+"-1" {
		t.Errorf("dpkg-query -W after the upgrade: %q, want butterd\\t%s-1", v, upgradeVersion)
	}
	after := waitActivated(t, m, before["InvocationID"])
	if after["MainPID"] == before["MainPID"] {
		t.Errorf("butterd's MainPID %s did not change with the upgrade", after["MainPID"])
	}
	if _, err := os.Stat(m.Path(sshDropIn)); err != nil {
		t.Errorf("the upgrade removed butterd's drop-in: %v", err)
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

// The .rpm installed with rpm under a real systemd: its scriptlets do
// what the .deb's maintainer scripts do. This Debian's rpm installs it
// with --nodeps (its dependencies are Debian packages here) and
// --force-debian. rpm -i enables and starts the plugin socket and the
// schedules' target, and a plugin request starts butterd; rpm -U of a
// newer build restarts butterd, which keeps volumes, snapshots and
// schedules; rpm -e stops and disables everything, leaves no timer,
// removes butterd's drop-in of butterd-ssh.socket (not the admin's) and
// keeps the data.
func TestPackageRPMSystemd(t *testing.T) {
	testenv.Root(t)
	testenv.Command(t, "rpm")
	_, oldRPM := buildPackages(t)
	_, newRPM := buildNewer(t)
	m, data, paths := bootForPackage(t, "", oldRPM, newRPM)
	rpmInstall := func(args ...string) string {
		return m.MustRun(append([]string{"rpm", "--nodeps", "--force-debian"}, args...)...)
	}

	t.Logf("rpm -i:\n%s", rpmInstall("-i", paths[0]))
	if v := strings.TrimSpace(m.MustRun("rpm", "-q", "butterd")); v != "butterd-0.1.0-1.x86_64" {
		t.Fatalf("rpm -q butterd: %q", v)
	}
	checkFreshInstall(t, m, "rpm -i")

	sock := m.Path(testenv.PluginSocket)
	if r := systemdPluginCall(t, sock, "/VolumeDriver.Create", map[string]any{"Name": "rpm-vol"}); r["Err"] != nil {
		t.Fatalf("Create: %v", r)
	}
	before := waitActivated(t, m, "")
	snap := strings.TrimSpace(m.MustRun("butterctl", "snapshot", "rpm-vol"))
	if !strings.HasPrefix(snap, "rpm-vol@") {
		t.Fatalf("butterctl snapshot printed %q", snap)
	}
	m.MustRun("butterctl", "schedule", "--every", "1h", "snapshot", "rpm-vol")
	timer := scheduleTimer(t, m, "rpm-vol")

	// butterd's drop-in of butterd-ssh.socket (as a peer with another
	// SSH_PORT makes it) beside one of the admin's in the same directory.
	adminDropIn := filepath.Join(filepath.Dir(sshDropIn), "10-admin.conf")
	m.WriteFile(sshDropIn, []byte("[Socket]\nListenStream=\nListenStream=2122\n"), 0o644)
	m.WriteFile(adminDropIn, []byte("[Socket]\nBacklog=64\n"), 0o644)

	// rpm -U: the old package's %postun restarts butterd.
	t.Logf("rpm -U:\n%s", rpmInstall("-U", paths[1]))
	if v := strings.TrimSpace(m.MustRun("rpm", "-q", "butterd")); v != "butterd-"+upgradeVersion+"-1.x86_64" {
		t.Errorf("rpm -q butterd after the upgrade: %q", v)
	}
	after := waitActivated(t, m, before["InvocationID"])
	if after["MainPID"] == before["MainPID"] {
		t.Errorf("butterd's MainPID %s did not change with the upgrade", after["MainPID"])
	}
	if v := m.MustRun("butterd", "version"); !strings.Contains(v, upgradeVersion) {
		t.Errorf("butterd version after the upgrade: %q", v)
	}
	if out := m.MustRun("butterctl", "snapshots", "rpm-vol"); !strings.Contains(out, snap) {
		t.Errorf("after the upgrade, butterctl snapshots rpm-vol lacks %s:\n%s", snap, out)
	}
	if timers := m.MustRun("systemctl", "list-timers", "--no-pager", "butterd-sched-*"); !strings.Contains(timers, timer) {
		t.Errorf("after the upgrade, systemctl list-timers lacks %s:\n%s", timer, timers)
	}

	// rpm -e: nothing of butterd runs, is enabled or fires; the data stays.
	schedService := holdScheduleService(t, m, "rpm-vol")
	t.Logf("rpm -e:\n%s", m.MustRun("rpm", "-e", "butterd"))
	checkStopped(t, m, schedService, "rpm -e")
	m.MustRun("rm", "-r", "/etc/systemd/system/"+schedService+".d")
	active := m.MustRun("systemctl", "list-units", "--no-legend", "--plain", "--all", "--state=active,activating,reloading", "butterd*")
	if strings.TrimSpace(active) != "" {
		t.Errorf("after rpm -e, butterd units still run:\n%s", active)
	}
	if timers := m.MustRun("systemctl", "list-timers", "--no-pager", "--no-legend", "--all"); strings.Contains(timers, "butterd") {
		t.Errorf("after rpm -e, a butterd timer is still listed:\n%s", timers)
	}
	for _, unit := range []string{"sockets.target.wants/butterd.socket", "timers.target.wants/butterd-schedules.target"} {
		if _, err := os.Lstat(m.Path("/etc/systemd/system/" + unit)); err == nil {
			t.Errorf("after rpm -e, /etc/systemd/system/%s is still there", unit)
		}
	}
	if _, err := os.Stat(m.Path("/usr/bin/butterd")); !os.IsNotExist(err) {
		t.Errorf("after rpm -e, /usr/bin/butterd: %v", err)
	}
	if _, err := os.Stat(m.Path(sshDropIn)); !os.IsNotExist(err) {
		t.Errorf("after rpm -e, %s: %v, want gone", sshDropIn, err)
	}
	if _, err := os.Stat(m.Path(adminDropIn)); err != nil {
		t.Errorf("rpm -e removed the admin's drop-in: %v", err)
	}
	for _, p := range []string{"volumes/rpm-vol", "snapshots/" + snap} {
		if _, err := os.Stat(filepath.Join(data, p)); err != nil {
			t.Errorf("after rpm -e: %v", err)
		}
	}

	checkReinstall(t, m, "rpm -e", "rpm -i", "rpm-vol",
		func() { m.MustRun("rpm", "-e", "butterd") },
		func() { rpmInstall("-i", paths[1]) })
}

// checkFreshInstall checks what a first install leaves, as how ("dpkg -i",
// "rpm -i") did it: the socket and the schedules target enabled and
// running, the SSH socket disabled until a peer exists, the pool unit
// static, butterd itself not started before a request, its group and the
// config file's mode.
func checkFreshInstall(t *testing.T, m *testenv.Machine, how string) {
	t.Helper()
	for unit, want := range map[string]string{"butterd.socket": "enabled", "butterd-schedules.target": "enabled", "butterd-ssh.socket": "disabled", "butterd-pool.service": "static"} {
		if got, _ := m.Run("systemctl", "is-enabled", unit); strings.TrimSpace(got) != want {
			t.Errorf("after %s: %s is %q, want %s", how, unit, strings.TrimSpace(got), want)
		}
	}
	if st := unitState(t, m, "butterd.socket"); st["ActiveState"] != "active" || st["SubState"] != "listening" {
		t.Fatalf("butterd.socket after %s: %v", how, st)
	}
	if st := unitState(t, m, "butterd-schedules.target"); st["ActiveState"] != "active" {
		t.Errorf("butterd-schedules.target after %s: %v", how, st)
	}
	if st := unitState(t, m, "butterd.service"); st["ActiveState"] != "inactive" || st["InvocationID"] != "" {
		t.Errorf("butterd.service runs before any request: %v", st)
	}
	m.MustRun("getent", "group", "butterd")
	checkConfigMode(t, m, how)
}

// checkConfigMode checks that /etc/butterd/butterd.conf, which may hold
// WEBHOOK_URL's token, is readable by root only, after how (the install).
func checkConfigMode(t *testing.T, m *testenv.Machine, how string) {
	t.Helper()
	if got := strings.TrimSpace(m.MustRun("stat", "-c", "%a %U:%G", "/etc/butterd/butterd.conf")); got != "640 root:root" {
		t.Errorf("after %s, /etc/butterd/butterd.conf is %q, want 640 root:root", how, got)
	}
}

// holdScheduleService starts the service of volume's snapshot schedule as
// a timer would, made to run until stopped (a drop-in holds it before
// butterctl), and returns its name.
func holdScheduleService(t *testing.T, m *testenv.Machine, volume string) string {
	t.Helper()
	_, service := units.Names(units.Schedule{Action: units.ActionSnapshot, Volume: volume})
	m.WriteFile("/etc/systemd/system/"+service+".d/hold.conf", []byte("[Service]\nExecStartPre=/bin/sleep infinity\n"), 0o644)
	m.MustRun("systemctl", "daemon-reload")
	m.MustRun("systemctl", "start", "--no-block", service)
	if !eventually(10*time.Second, func() bool { return unitState(t, m, service)["ActiveState"] == "activating" }) {
		t.Fatalf("the schedule's service %s does not run: %v", service, unitState(t, m, service))
	}
	return service
}

// checkStopped checks that unit, which ran, was stopped by the removal.
func checkStopped(t *testing.T, m *testenv.Machine, unit, removal string) {
	t.Helper()
	if st := unitState(t, m, unit); st["ActiveState"] != "inactive" && st["ActiveState"] != "failed" {
		t.Errorf("after %s, %s still runs: %v", removal, unit, st)
	}
}

// checkReinstall installs the removed package again (install), as an
// operator does after removing it (remove): what was enabled before the
// removal is enabled again: butterd.socket and butterd-schedules.target
// start, at the next boot too (sockets.target and timers.target start
// them), and the plugin socket answers with volume. Then the admin disables
// butterd-schedules.target, which stays disabled and stopped through
// another removal and install.
func checkReinstall(t *testing.T, m *testenv.Machine, removal, how, volume string, remove, install func()) {
	t.Helper()
	isEnabled := func(unit string) string {
		out, _ := m.Run("systemctl", "is-enabled", unit)
		return strings.TrimSpace(out)
	}
	enabled := []string{"butterd.socket", "butterd-schedules.target"}
	install()
	for _, unit := range enabled {
		if got := isEnabled(unit); got != "enabled" {
			t.Errorf("after %s and %s: %s is %q, want enabled as before", removal, how, unit, got)
		}
	}
	checkConfigMode(t, m, removal+" and "+how)
	// As at boot: what is enabled starts with the targets that want it.
	m.MustRun(append([]string{"systemctl", "stop"}, enabled...)...)
	m.MustRun("systemctl", "start", "sockets.target", "timers.target")
	if st := unitState(t, m, "butterd.socket"); st["ActiveState"] != "active" || st["SubState"] != "listening" {
		t.Errorf("after %s and %s, butterd.socket at boot: %v, want listening", removal, how, st)
	}
	if st := unitState(t, m, "butterd-schedules.target"); st["ActiveState"] != "active" {
		t.Errorf("after %s and %s, butterd-schedules.target at boot: %v, want active", removal, how, st)
	}
	r := systemdPluginCall(t, m.Path(testenv.PluginSocket), "/VolumeDriver.List", map[string]any{})
	if !strings.Contains(fmt.Sprint(r["Volumes"]), volume) {
		t.Errorf("after %s and %s, the plugin's List answered %v, want %s", removal, how, r, volume)
	}

	// The admin pauses every schedule for good.
	m.MustRun("systemctl", "disable", "--now", "butterd-schedules.target")
	remove()
	install()
	if got := isEnabled("butterd-schedules.target"); got != "disabled" {
		t.Errorf("disabled by the admin, then %s and %s: butterd-schedules.target is %q, want disabled", removal, how, got)
	}
	if st := unitState(t, m, "butterd-schedules.target"); st["ActiveState"] != "inactive" {
		t.Errorf("disabled by the admin, then %s and %s: butterd-schedules.target is %v, want inactive", removal, how, st)
	}
	if got := isEnabled("butterd.socket"); got != "enabled" {
		t.Errorf("after %s and %s again: butterd.socket is %q, want enabled", removal, how, got)
	}
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
	// Two volume policies in the packaged config file, before butterd
	// first starts and reads it.
	conf, err := os.ReadFile(m.Path("/etc/butterd/butterd.conf"))
	if err != nil {
		t.Fatal(err)
	}
	m.WriteFile("/etc/butterd/butterd.conf", append(conf, "\n[policy hourly]\nsnapshot = 1h\npurge = 1d:1w\n\n[policy db]\ncopyonwrite = false\n"...), 0o644)
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

	checkPolicyThroughDocker(t, m, docker)

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

// checkPolicyThroughDocker checks the config file's [policy hourly]
// (snapshot = 1h, purge = 1d:1w) and [policy db] as an operator uses them:
// docker volume create -o policy=hourly makes the schedules' timers, which
// systemd runs; docker volume rm removes them and butterd's log names them;
// an unknown policy is refused with the known ones and changes nothing.
func checkPolicyThroughDocker(t *testing.T, m *testenv.Machine, docker func(...string) string) {
	t.Helper()
	snapTimer, _ := units.Names(units.Schedule{Action: units.ActionSnapshot, Volume: "pv"})
	purgeTimer, _ := units.Names(units.Schedule{Action: units.ActionPurge, Volume: "pv"})
	// timers are the schedule timers systemd has loaded, active or not.
	timers := func() []string {
		var names []string
		for _, f := range strings.Fields(m.MustRun("systemctl", "list-timers", "--all", "--no-pager", "--no-legend", units.Prefix+"*")) {
			if strings.HasPrefix(f, units.Prefix) && strings.HasSuffix(f, ".timer") {
				names = append(names, f)
			}
		}
		sort.Strings(names)
		return names
	}

	docker("volume", "create", "-d", "btrfs", "-o", "policy=hourly", "pv")
	active := m.MustRun("systemctl", "list-timers", "--no-pager", "--no-legend", units.Prefix+"*")
	for _, timer := range []string{snapTimer, purgeTimer} {
		if !strings.Contains(active, timer) {
			t.Errorf("after docker volume create -o policy=hourly pv, systemctl list-timers lacks %s:\n%s", timer, active)
		}
	}

	// An unknown policy: refused, naming the known ones; no volume, no
	// timer.
	before := timers()
	out, err := m.Run("/usr/bin/docker", "volume", "create", "-d", "btrfs", "-o", "policy=nightly", "nv")
	if want := `unknown policy "nightly": known policies are db, hourly`; err == nil || !strings.Contains(out, want) {
		t.Errorf("docker volume create -o policy=nightly: %v %q, want refused with %q", err, out, want)
	}
	if vols := docker("volume", "ls", "-q"); slices.Contains(strings.Fields(vols), "nv") {
		t.Errorf("after the refused create, docker volume ls shows nv:\n%s", vols)
	}
	if _, err := os.Stat(m.Path(poolRoot + "/volumes/nv")); !os.IsNotExist(err) {
		t.Errorf("after the refused create, %s/volumes/nv: %v, want none", poolRoot, err)
	}
	if after := timers(); !slices.Equal(after, before) {
		t.Errorf("the refused create changed the schedule timers: %q, were %q", after, before)
	}

	// docker volume rm takes the schedules with the volume.
	docker("volume", "rm", "pv")
	left := timers()
	for _, timer := range []string{snapTimer, purgeTimer} {
		if slices.Contains(left, timer) {
			t.Errorf("after docker volume rm pv, systemctl list-timers --all still lists %s: %q", timer, left)
		}
		if _, err := os.Stat(m.Path("/etc/systemd/system/" + timer)); !os.IsNotExist(err) {
			t.Errorf("after docker volume rm pv, /etc/systemd/system/%s: %v, want gone", timer, err)
		}
	}
	removed := m.MustRun("journalctl", "--no-pager", "-o", "cat", "-u", "butterd.service", "VOLUME=pv")
	for _, line := range strings.Split(removed, "\n") {
		if strings.HasPrefix(line, "volume removed") {
			if !strings.Contains(line, snapTimer) || !strings.Contains(line, purgeTimer) {
				t.Errorf("butterd's log of the removal does not name the timers %s and %s: %q", snapTimer, purgeTimer, line)
			}
			return
		}
	}
	t.Errorf("journalctl VOLUME=pv has no \"volume removed\" line:\n%s", removed)
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
