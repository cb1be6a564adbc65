package testenv

import (
	"context"
	"encoding/xml"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// NoBusAddress is the system bus address butterd gets when a test gives it
// no bus: a socket that does not exist, so that butterd never reaches the
// machine's real system bus.
const NoBusAddress = "unix:path=/nonexistent/butterd-test-bus"

// Bus is a private dbus-daemon started by a test: a system bus (type
// system, EXTERNAL authentication, the stock default-deny policy) whose
// system.d holds the project's own policy file.
type Bus struct {
	Address string // unix:path=DIR/sock
	Socket  string
	Dir     string // bus.conf, system.d/, the socket and the daemon's log
	Pid     int

	t      testing.TB
	config string
	log    string
}

// The part of Debian's /usr/share/dbus-1/system.conf that sets the policy:
// anyone may connect, nobody may own a name or call a method unless a file
// of system.d punches a hole, and root may monitor the bus.
const stockSystemPolicy = `  <policy context="default">
    <!-- All users can connect to system bus -->
    <allow user="*"/>

    <!-- Holes must be punched in service configuration files for
         name ownership and sending method calls -->
    <deny own="*"/>
    <deny send_type="method_call"/>

    <!-- Signals and reply messages (method returns, errors) are allowed
         by default -->
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>

    <!-- All messages may be received by default -->
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>

    <!-- Allow anyone to talk to the message bus -->
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus" />
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Properties"/>
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Containers1"/>
    <!-- But disallow some specific bus services -->
    <deny send_destination="org.freedesktop.DBus"
          send_interface="org.freedesktop.DBus"
          send_member="UpdateActivationEnvironment"/>
    <deny send_destination="org.freedesktop.DBus"
          send_interface="org.freedesktop.DBus.Debug.Stats"/>
    <deny send_destination="org.freedesktop.DBus"
          send_interface="org.freedesktop.systemd1.Activator"/>
  </policy>

  <!-- Only systemd, which runs as root, may report activation failures. -->
  <policy user="root">
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.systemd1.Activator"/>
  </policy>

  <!-- root may monitor the system bus. -->
  <policy user="root">
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Monitoring"/>
  </policy>
`

// policyFile is the project's D-Bus policy, relative to the module root.
const policyFile = "packaging/dbus/io.butterd.volumes1.conf"

// StartBus starts a private system bus for the test. Its system.d holds a
// copy of the project's real policy file and then each of extraPolicies (a
// whole policy file's text, e.g. a looser test policy), included in that
// order so that an extra policy's rules come last. Cleanup stops the
// daemon by its pid and removes its directory.
func StartBus(t testing.TB, extraPolicies ...string) *Bus {
	t.Helper()
	daemon := Command(t, "dbus-daemon")
	policy, err := os.ReadFile(filepath.Join(ModuleRoot(t), policyFile))
	if err != nil {
		t.Fatalf("the project's D-Bus policy: %v", err)
	}
	// A short path (unix socket paths are limited to 107 bytes) that other
	// users may traverse: tests call the bus as uid 65534 too.
	dir, err := os.MkdirTemp("", "butterd-bus-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		os.RemoveAll(dir)
		t.Fatal(err)
	}
	b := &Bus{
		Dir:    dir,
		Socket: filepath.Join(dir, "sock"),
		t:      t,
		config: filepath.Join(dir, "bus.conf"),
		log:    filepath.Join(dir, "bus.log"),
	}
	b.Address = "unix:path=" + escapeAddressValue(b.Socket)
	t.Cleanup(b.stop)

	sysd := filepath.Join(dir, "system.d")
	files := map[string][]byte{filepath.Join(sysd, filepath.Base(policyFile)): policy}
	for i, p := range extraPolicies {
		// includedir reads the files sorted by name: "zz-" comes after the
		// project's file.
		files[filepath.Join(sysd, fmt.Sprintf("zz-test-%02d.conf", i))] = []byte(p)
	}
	files[b.config] = []byte(busConfig(xmlText(b.Address), xmlText(sysd)))
	if err := os.Mkdir(sysd, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range files {
		if err := os.WriteFile(name, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	logf, err := os.Create(b.log)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// With --fork, dbus-daemon prints the address and the pid, then the
	// first process exits once the bus listens.
	cmd := exec.CommandContext(ctx, daemon, "--config-file="+b.config, "--fork",
		"--print-address=1", "--print-pid=1", "--nosyslog")
	cmd.Env = cleanEnv("DBUS_", "NOTIFY_SOCKET", "LISTEN_")
	cmd.Stderr = logf
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("dbus-daemon --config-file=%s: %v; output %q; log:\n%s", b.config, err, out, b.Log())
	}
	fields := strings.Fields(string(out))
	if len(fields) != 2 || !strings.HasPrefix(fields[0], b.Address+",") {
		t.Fatalf("dbus-daemon printed %q, want its address (%s,guid=...) and its pid", out, b.Address)
	}
	if b.Pid, err = strconv.Atoi(fields[1]); err != nil || b.Pid <= 1 {
		t.Fatalf("dbus-daemon printed pid %q", fields[1])
	}
	if _, err := os.Stat(b.Socket); err != nil {
		t.Fatalf("dbus-daemon (pid %d) runs but its socket is missing: %v", b.Pid, err)
	}
	return b
}

// Env is the environment entry that points D-Bus clients (godbus, busctl,
// butterd) at this bus.
func (b *Bus) Env() []string {
	return []string{"DBUS_SYSTEM_BUS_ADDRESS=" + b.Address}
}

// Log returns what the daemon logged so far (warnings about the config,
// such as a policy naming a group that does not exist).
func (b *Bus) Log() string {
	data, _ := os.ReadFile(b.log)
	return string(data)
}

func (b *Bus) stop() {
	t := b.t
	if b.Pid > 0 && b.isOurs() {
		if t.Failed() {
			t.Logf("dbus-daemon (pid %d) at %s, config %s; log:\n%s", b.Pid, b.Address, b.config, b.Log())
		}
		syscall.Kill(b.Pid, syscall.SIGTERM)
		// It is not our child (it forked away): poll until it is gone or
		// a zombie that init reaps.
		deadline := time.Now().Add(10 * time.Second)
		for b.isOurs() {
			if time.Now().After(deadline) {
				t.Errorf("dbus-daemon (pid %d) ignored SIGTERM for 10 s: killed", b.Pid)
				syscall.Kill(b.Pid, syscall.SIGKILL)
				deadline = time.Now().Add(time.Hour)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if err := os.RemoveAll(b.Dir); err != nil {
		t.Errorf("remove %s: %v", b.Dir, err)
	}
}

// isOurs reports whether b.Pid is still a live dbus-daemon running our
// config (not a zombie, not a reused pid).
func (b *Bus) isOurs() bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", b.Pid))
	if err != nil {
		return false
	}
	// pid (comm) STATE ...: comm may hold spaces and parentheses.
	if i := strings.LastIndexByte(string(stat), ')'); i < 0 || i+2 >= len(stat) || stat[i+2] == 'Z' || stat[i+2] == 'X' {
		return false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", b.Pid))
	return err == nil && strings.Contains(string(cmdline), "--config-file="+b.config+"\x00")
}

func busConfig(address, includeDir string) string {
	return `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<!-- A private system bus for one test: no service directories, no
     activation helper, no user switch. -->
<busconfig>
  <type>system</type>
  <listen>` + address + `</listen>
  <auth>EXTERNAL</auth>

` + stockSystemPolicy + `
  <includedir>` + includeDir + `</includedir>
</busconfig>
`
}

func xmlText(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}

// escapeAddressValue escapes a value of a D-Bus address: bytes outside
// [-0-9A-Za-z_/.\*] become %XX.
func escapeAddressValue(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-_/.\\*", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02x", c)
	}
	return b.String()
}
