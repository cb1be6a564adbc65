package tests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"butterd/tests/testenv"
)

// Who may change volumes when butterd runs in the packaged unit's sandbox
// (ProtectProc=invisible, no CAP_SYS_PTRACE): root; a user that an admin
// puts in group butterd after butterd started (the group made then too);
// not a user outside the group, whom the bus stops and, under a policy
// that lets everyone through, butterd itself refuses.
func TestSystemdGroupMember(t *testing.T) {
	testenv.Root(t)
	bin := testenv.BuildButterd(t)
	ctl := testenv.BuildButterctl(t)
	data := testenv.Btrfs(t)
	m := testenv.BootSystemd(t,
		testenv.Bind{Src: bin, Dst: "/usr/bin/butterd", ReadOnly: true},
		testenv.Bind{Src: ctl, Dst: "/usr/bin/butterctl", ReadOnly: true},
		testenv.Bind{Src: data, Dst: "/var/lib/butterd"},
	)
	// The machine boots the host's root: its /etc/group may already
	// hold the group.
	if _, err := m.Run("getent", "group", "butterd"); err == nil {
		m.MustRun("groupdel", "butterd")
	}
	installUnits(t, m)
	writeTestDropIn(m, "")
	reloadBus := func() {
		m.MustRun("busctl", "call", "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "ReloadConfig")
	}
	reloadBus()
	m.MustRun("systemctl", "daemon-reload")
	m.MustRun("systemctl", "start", "butterd.service")
	if out := m.MustRun("butterctl", "volume", "create", "by-root"); strings.TrimSpace(out) != "by-root" {
		t.Fatalf("butterctl volume create as root printed %q", out)
	}

	// The admin adds the group and its member while butterd runs, then
	// reloads the bus so that its policy knows the group.
	m.MustRun("groupadd", "--system", "butterd")
	m.MustRun("useradd", "--no-create-home", "--groups", "butterd", "alice")
	m.MustRun("useradd", "--no-create-home", "bob")
	reloadBus()
	as := func(user string, args ...string) (string, error) {
		return m.Run(append([]string{"runuser", "-u", user, "--"}, args...)...)
	}
	createVolume := []string{"busctl", "call", "io.butterd.volumes1", "/io/butterd/volumes1",
		"io.butterd.volumes1.Manager", "CreateVolume", "sa{ss}"}

	if out, err := as("alice", append(createVolume, "by-alice", "0")...); err != nil {
		t.Errorf("CreateVolume as alice (group butterd): %v\n%s", err, out)
	}
	if out, err := as("alice", "butterctl", "snapshot", "by-alice"); err != nil || !strings.HasPrefix(out, "by-alice@") {
		t.Errorf("butterctl snapshot as alice (group butterd): %v\n%s", err, out)
	}
	out, err := as("bob", append(createVolume, "by-bob", "0")...)
	if err == nil || strings.TrimSpace(out) != "Call failed: Access denied" {
		t.Errorf("CreateVolume as bob (no group): %v %q, want the bus's Access denied", err, out)
	}

	// With a policy that lets everyone send, butterd refuses bob itself
	// and still lets alice through.
	m.WriteFile("/etc/dbus-1/system.d/zz-butterd-open.conf", []byte(permissivePolicy), 0o644)
	reloadBus()
	bobUID := strings.TrimSpace(m.MustRun("id", "-u", "bob"))
	out, err = as("bob", append(createVolume, "by-bob", "0")...)
	want := `Call failed: CreateVolume changes volumes: only root and members of group "butterd" may call it (caller uid ` + bobUID + `)`
	if err == nil || strings.TrimSpace(out) != want {
		t.Errorf("CreateVolume as bob under an open policy: %v %q, want %q", err, out, want)
	}
	if out, err := as("alice", append(createVolume, "by-alice-2", "0")...); err != nil {
		t.Errorf("CreateVolume as alice under an open policy: %v\n%s", err, out)
	}

	// A butterd started after the group exists.
	m.MustRun("systemctl", "restart", "butterd.service")
	if out, err := as("alice", append(createVolume, "by-alice-3", "0")...); err != nil {
		t.Errorf("CreateVolume as alice after a restart: %v\n%s", err, out)
	}

	for _, v := range []string{"by-root", "by-alice", "by-alice-2", "by-alice-3"} {
		if _, err := os.Stat(filepath.Join(data, "volumes", v)); err != nil {
			t.Errorf("volume %s: %v", v, err)
		}
	}
	if _, err := os.Stat(filepath.Join(data, "volumes", "by-bob")); err == nil {
		t.Error("volume by-bob exists")
	}
	if t.Failed() {
		t.Logf("journal of butterd.service:\n%s", m.MustRun("journalctl", "--no-pager", "-o", "cat", "-u", "butterd.service"))
	}
}
