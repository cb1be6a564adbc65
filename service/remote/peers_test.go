package remote

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

func testKey(t *testing.T, name string) ssh.PublicKey {
	t.Helper()
	k, err := LoadOrCreateKey(filepath.Join(t.TempDir(), name))
	if err != nil {
		t.Fatal(err)
	}
	return k.PublicKey()
}

func TestPeers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "peers.json")
	ps := OpenPeers(path)
	if l, err := ps.List(); err != nil || len(l) != 0 {
		t.Fatalf("List of a missing file = %v, %v", l, err)
	}
	ka, kb := testKey(t, "a"), testKey(t, "b")
	if err := ps.Add(Peer{Name: "host-b", PublicKey: kb, Push: true, Volumes: []string{"v1"}}); err != nil {
		t.Fatal(err)
	}
	if err := ps.Add(Peer{Name: "host-a", PublicKey: ka, Pull: true}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		p    Peer
		kind error
		msg  string
	}{
		{Peer{Name: "host-a", PublicKey: testKey(t, "c")}, ErrExists, `peer "host-a" already exists`},
		{Peer{Name: "host-c", PublicKey: ka}, ErrExists, `already peer "host-a"'s`},
		{Peer{Name: "h", PublicKey: ka}, ErrInvalidName, "too short"},
		{Peer{Name: "../etc", PublicKey: ka}, ErrInvalidName, "must start with a letter or digit"},
		{Peer{Name: "a b", PublicKey: ka}, ErrInvalidName, "invalid character ' '"},
		{Peer{Name: "host-c"}, ErrBadRequest, "no public key"},
		{Peer{Name: "host-c", PublicKey: testKey(t, "d"), Volumes: []string{"v@1"}}, ErrInvalidName, "invalid character '@'"},
	} {
		if err := ps.Add(tc.p); !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("Add(%q) = %v: want %v saying %q", tc.p.Name, err, tc.kind, tc.msg)
		}
	}

	l, err := ps.List()
	if err != nil || len(l) != 2 || l[0].Name != "host-a" || l[1].Name != "host-b" {
		t.Fatalf("List = %+v, %v: want host-a, host-b", l, err)
	}
	b := l[1]
	if !b.Push || b.Pull || !b.MayUse("v1") || b.MayUse("v2") || !l[0].MayUse("v2") {
		t.Errorf("host-b's rights came back as %+v", b)
	}
	if p, ok, err := ps.byKey(kb); err != nil || !ok || p.Name != "host-b" {
		t.Errorf("byKey = %+v, %v, %v", p, ok, err)
	}

	b.Volumes = nil
	b.Pull = true
	if err := ps.Update(b); err != nil {
		t.Fatal(err)
	}
	if p, err := ps.Get("host-b"); err != nil || !p.Pull || len(p.Volumes) != 0 {
		t.Errorf("after Update: %+v, %v", p, err)
	}
	if err := ps.Update(Peer{Name: "nobody", PublicKey: testKey(t, "e")}); !errors.Is(err, ErrNotFound) {
		t.Errorf("Update of an unknown peer = %v: want ErrNotFound", err)
	}
	if err := ps.Remove("host-a"); err != nil {
		t.Fatal(err)
	}
	if err := ps.Remove("host-a"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Remove = %v: want ErrNotFound", err)
	}
	if _, ok, _ := ps.byKey(ka); ok {
		t.Error("a removed peer's key is still accepted")
	}

	data, _ := os.ReadFile(path)
	if !strings.Contains(string(data), `"public_key": "ssh-ed25519 AAAA`) {
		t.Errorf("the file should hold authorized key lines:\n%s", data)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("peers file mode %v: want 0600", st.Mode().Perm())
	}
}

func TestPeersBadFileRefusesEveryone(t *testing.T) {
	path := filepath.Join(t.TempDir(), "peers.json")
	os.WriteFile(path, []byte(`{"peers":[{"name":"x/y","public_key":"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDn2Nw1Eac6B0x6J7qqKFGc9QWUIUfXl8bm+rX6x0ag0"}]}`), 0o600)
	ps := OpenPeers(path)
	if _, _, err := ps.byKey(testKey(t, "a")); err == nil {
		t.Error("a peers file with a bad name was read")
	}
	if err := ps.Add(Peer{Name: "ok", PublicKey: testKey(t, "b")}); err == nil {
		t.Error("Add rewrote a peers file it could not read")
	}
}

func TestParsePublicKey(t *testing.T) {
	line := AuthorizedKey(testKey(t, "a"))
	if _, err := ParsePublicKey(line + " butterd@hosta"); err != nil {
		t.Error(err)
	}
	for _, bad := range []string{"", "hello", `command="sh" ` + line, line + "\n" + line} {
		if _, err := ParsePublicKey(bad); !errors.Is(err, ErrBadRequest) {
			t.Errorf("ParsePublicKey(%.30q) = %v: want ErrBadRequest", bad, err)
		}
	}
}
