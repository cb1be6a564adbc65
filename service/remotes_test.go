package service

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"butterd/service/remote"
)

// A send to a peer's host:port is recorded under the peer's name, also
// when the peer has no address of its own (its name is where it is); and
// removing the peer drops what was recorded under its host:port before it
// was a peer, so nothing stays protected for it.
func TestRemotesHostPortOfPeerWithoutAddress(t *testing.T) {
	s := &Store{cfg: Config{Now: time.Now}, log: slog.New(slog.DiscardHandler), stateDir: t.TempDir()}
	if err := os.MkdirAll(s.sshDir(), 0o700); err != nil {
		t.Fatal(err)
	}
	s.peers = remote.OpenPeers(filepath.Join(s.sshDir(), peersFile))
	if err := s.loadShared(); err != nil {
		t.Fatal(err)
	}
	// Sends made before the peer was added.
	for _, host := range []string{"hostb:1122", "hostc:1122"} {
		if err := s.recordSent(host, "v1", "v1@2024-05-01T10:00:00.000000", "2f1a0c4e-0000-4000-8000-000000000001", nil); err != nil {
			t.Fatal(err)
		}
	}
	key, err := remote.LoadOrCreateKey(filepath.Join(t.TempDir(), "key"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AddRemote(Remote{Name: "hostb", PublicKey: remote.AuthorizedKey(key.PublicKey()), Push: true}); err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"hostb", "hostb:1122"} {
		if addr, peer, err := s.resolveHost(host); err != nil || addr != "hostb:1122" || peer != "hostb" {
			t.Errorf("resolveHost(%q) = %q, %q, %v: want hostb:1122 recorded as peer hostb", host, addr, peer, err)
		}
	}
	if addr, peer, err := s.resolveHost("hostc"); err != nil || addr != "hostc:1122" || peer != "hostc:1122" {
		t.Errorf("resolveHost(hostc), no peer's = %q, %q, %v: want hostc:1122 both", addr, peer, err)
	}

	if _, err := s.RemoveRemote("hostb"); err != nil {
		t.Fatal(err)
	}
	if r, ok := s.shared.sent("hostb:1122", "v1"); ok {
		t.Errorf("after removing peer hostb, a record under its host:port stays: %+v", r)
	}
	if _, ok := s.shared.sent("hostc:1122", "v1"); !ok {
		t.Error("removing peer hostb dropped the record of another host")
	}
}
