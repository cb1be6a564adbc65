package tests

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"butterd/service/remote"
	"butterd/tests/testenv"
)

// Under a real systemd, the replication endpoint is butterd-ssh.socket,
// disabled until the first peer is added: adding it enables and starts the
// socket, butterd restarts when idle, and systemd hands it the socket,
// where butterd's own SSH server answers. Removing the last peer stops and
// disables the socket (a connection in flight is still served); adding a
// peer again turns it on again.
func TestSystemdSSHSocketFollowsPeers(t *testing.T) {
	testenv.Root(t)
	busctl := testenv.Command(t, "busctl")
	testenv.Command(t, "bash")
	bin := testenv.BuildButterd(t)
	data := testenv.Btrfs(t)
	// The default data root: butterd.service sees no /tmp of the host.
	m := testenv.BootSystemd(t,
		testenv.Bind{Src: bin, Dst: "/usr/bin/butterd", ReadOnly: true},
		testenv.Bind{Src: data, Dst: "/var/lib/butterd"},
	)
	installUnits(t, m, "butterd-ssh.socket")
	m.WriteFile("/etc/systemd/system/butterd.service.d/test.conf", []byte("[Service]\nEnvironment=BUTTERD_LOG_LEVEL=debug BUTTERD_SSH_PORT=2122\n"), 0o644)
	if out, err := m.Run("systemd-analyze", "verify", "--man=no", "/etc/systemd/system/butterd-ssh.socket"); err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("systemd-analyze verify butterd-ssh.socket: %v\n%s", err, out)
	}
	m.MustRun("busctl", "call", "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "ReloadConfig")
	m.MustRun("systemctl", "daemon-reload")
	m.MustRun("systemctl", "start", "butterd.socket")
	if out, _ := m.Run("systemctl", "is-enabled", "butterd-ssh.socket"); strings.TrimSpace(out) != "disabled" {
		t.Fatalf("butterd-ssh.socket before any peer: %q, want disabled", out)
	}

	// The first peer, added over D-Bus (bus activation starts butterd).
	key, err := remote.LoadOrCreateKey(filepath.Join(t.TempDir(), "client_key"))
	must(t, err)
	addPeer := func() {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, busctl, "--address="+m.BusAddress(), "--timeout=20",
			"call", "io.butterd.volumes1", "/io/butterd/volumes1", "io.butterd.volumes1.Manager",
			"AddRemote", "sssast", "hosta", "", remote.AuthorizedKey(key.PublicKey()), "0", "1")
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "SYSTEMD_PAGER="}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("busctl AddRemote: %v\n%s", err, out)
		}
	}
	addPeer()
	first := waitActivated(t, m, "")
	second := sshSocketHandedOver(t, m, first)
	journal := m.MustRun("journalctl", "--no-pager", "-o", "cat", "-u", "butterd.service")
	for _, want := range []string{"restarting, for systemd to hand over butterd-ssh.socket", "serving the replication endpoint"} {
		if !strings.Contains(journal, want) {
			t.Errorf("butterd.service's journal lacks %q:\n%s", want, journal)
		}
	}

	// The last peer is removed while a client is connected: the reply says
	// the endpoint stopped, the socket is stopped and disabled, nothing
	// listens on the port any more, and the client connected before still
	// gets its answer (butterd's key exchange) from the same butterd.
	out := m.MustRun("timeout", "20", "bash", "-c", `exec 3<>/dev/tcp/127.0.0.1/2122 || exit 1
head -c 17 <&3 | head -c 15; echo
busctl call io.butterd.volumes1 /io/butterd/volumes1 io.butterd.volumes1.Manager RemoveRemote s hosta || exit 1
printf 'SSH-2.0-probe\r\n' >&3
head -c 5 <&3 | wc -c`)
	if out != "SSH-2.0-butterd\nb true\n5\n" {
		t.Fatalf("banner, RemoveRemote's reply and bytes read after it on a connection made before: %q, want %q; journal:\n%s",
			out, "SSH-2.0-butterd\nb true\n5\n", unitJournal(m))
	}
	if st := unitState(t, m, "butterd-ssh.socket"); st["ActiveState"] != "inactive" {
		t.Errorf("butterd-ssh.socket after the last peer was removed: %v, want inactive", st)
	}
	if out, _ := m.Run("systemctl", "is-enabled", "butterd-ssh.socket"); strings.TrimSpace(out) != "disabled" {
		t.Errorf("butterd-ssh.socket after the last peer was removed: %q, want disabled", out)
	}
	if out, err := m.Run("timeout", "20", "bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/2122"); err == nil {
		t.Errorf("port 2122 still accepts connections after the last peer was removed: %s", out)
	}
	if st := unitState(t, m, "butterd.service"); st["InvocationID"] != second["InvocationID"] || st["ActiveState"] != "active" {
		t.Errorf("butterd.service after the last peer was removed: %v, want still invocation %s", st, second["InvocationID"])
	}
	if journal := m.MustRun("journalctl", "--no-pager", "-o", "cat", "-u", "butterd.service"); !strings.Contains(journal, "replication endpoint stopped: no peer is left") {
		t.Errorf("butterd.service's journal does not say the endpoint stopped:\n%s", journal)
	}

	// A peer again: the socket is enabled, handed over and listens again.
	addPeer()
	second = sshSocketHandedOver(t, m, second)

	// Disabled by hand, the socket is no longer passed: butterd says how
	// to turn it on again, and binds nothing of its own.
	m.MustRun("systemctl", "disable", "--now", "butterd-ssh.socket")
	m.MustRun("systemctl", "restart", "butterd.service")
	waitActivated(t, m, second["InvocationID"])
	journal = m.MustRun("journalctl", "--no-pager", "-o", "cat", "-u", "butterd.service")
	if !strings.Contains(journal, "systemd passed no replication socket") {
		t.Errorf("butterd.service's journal does not say the socket is off:\n%s", journal)
	}
}

// sshSocketHandedOver checks, once a peer was added while butterd.service
// ran as invocation prev, that butterd-ssh.socket is enabled, that butterd
// had systemd restart it when idle (systemd starts the socket first and
// hands it over), and that butterd answers on the socket, at SSH_PORT 2122
// (butterd's drop-in). It returns the state of the new invocation.
func sshSocketHandedOver(t *testing.T, m *testenv.Machine, prev map[string]string) map[string]string {
	t.Helper()
	if out, _ := m.Run("systemctl", "is-enabled", "butterd-ssh.socket"); strings.TrimSpace(out) != "enabled" {
		t.Errorf("butterd-ssh.socket after a peer was added: %q, want enabled", out)
	}
	next := waitActivated(t, m, prev["InvocationID"])
	if st := unitState(t, m, "butterd-ssh.socket"); st["ActiveState"] != "active" || st["SubState"] != "running" && st["SubState"] != "listening" {
		t.Fatalf("butterd-ssh.socket after the restart: %v; journal:\n%s", st, unitJournal(m))
	}
	if listen := m.MustRun("systemctl", "show", "-p", "Listen", "--value", "butterd-ssh.socket"); strings.TrimSpace(listen) != "[::]:2122 (Stream)" {
		t.Fatalf("butterd-ssh.socket listens on %q with SSH_PORT=2122, want [::]:2122", listen)
	}
	banner, err := m.Run("timeout", "20", "bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/2122 && head -c 15 <&3")
	if err != nil || banner != "SSH-2.0-butterd" {
		t.Fatalf("connection to butterd-ssh.socket: %q (%v), want butterd's SSH banner; journal:\n%s", banner, err, unitJournal(m))
	}
	if st := unitState(t, m, "butterd.service"); st["InvocationID"] != next["InvocationID"] || st["ActiveState"] != "active" {
		t.Errorf("butterd.service after the connection: %v, want still invocation %s", st, next["InvocationID"])
	}
	return next
}
