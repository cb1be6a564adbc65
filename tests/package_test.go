package tests

import (
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"butterd/tests/testenv"
)

// The files both packages ship, as the .deb names them; the .rpm puts the
// units under /usr/lib/systemd/system, zsh's completion under
// site-functions and the copyright under /usr/share/licenses.
var packageFiles = map[string]string{ // path: mode
	"/usr/bin/butterd":                                              "-rwxr-xr-x",
	"/usr/bin/butterctl":                                            "-rwxr-xr-x",
	"/lib/systemd/system/butterd.service":                           "-rw-r--r--",
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
	// The container sees the host's /tmp as a tmpfs: bind what it needs.
	debDir := t.TempDir()
	debPath := filepath.Join(debDir, filepath.Base(deb))
	b, err := os.ReadFile(deb)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(debPath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	data := testenv.Btrfs(t)
	m := testenv.BootSystemd(t, testenv.Bind{Src: debDir, ReadOnly: true}, testenv.Bind{Src: data})

	// The test's data root, in place before the package starts anything.
	m.WriteFile("/etc/systemd/system/butterd.service.d/test.conf", []byte(fmt.Sprintf(
		"[Service]\nEnvironment=%s BUTTERD_LOG_LEVEL=debug\n", systemdQuote("BUTTERD_DATA_ROOT="+data))), 0o644)

	// A host image built by docker build carries a policy-rc.d that forbids
	// starting services (the package honours it, as Debian's do); a real
	// host has none. Removed in the container's overlay only.
	m.MustRun("rm", "-f", "/usr/sbin/policy-rc.d")

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
