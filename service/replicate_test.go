package service

import (
	"errors"
	"strings"
	"testing"
	"time"

	"butterd/btrfs"
	"butterd/service/remote"
)

// shared matches snapshots both hosts hold; a sync's parent must moreover
// be named, in the host's stream, by a UUID our copy answers to (the host
// chooses that UUID): syncShared.
func TestReplicateShared(t *testing.T) {
	const u1, u2, u3, u4 = "11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222", "33333333-3333-3333-3333-333333333333", "44444444-4444-4444-4444-444444444444"
	for _, c := range []struct {
		what       string
		local      btrfs.Info
		remote     remote.SnapshotRef
		want, sync bool
	}{
		{"the remote received ours", btrfs.Info{UUID: u1}, remote.SnapshotRef{UUID: u2, ReceivedUUID: u1}, true, true},
		{"we received the remote's (failback)", btrfs.Info{UUID: u1, ReceivedUUID: u2}, remote.SnapshotRef{UUID: u2}, true, true},
		{"both received the same", btrfs.Info{UUID: u1, ReceivedUUID: u3}, remote.SnapshotRef{UUID: u2, ReceivedUUID: u3}, true, true},
		{"our received UUID is the remote's UUID, its stream names another", btrfs.Info{UUID: u1, ReceivedUUID: u2}, remote.SnapshotRef{UUID: u2, ReceivedUUID: u4}, true, false},
		{"unrelated", btrfs.Info{UUID: u1}, remote.SnapshotRef{UUID: u2}, false, false},
		{"same UUID is no match without a receive", btrfs.Info{UUID: u1}, remote.SnapshotRef{UUID: u2, ReceivedUUID: u3}, false, false},
	} {
		if _, got := shared(c.local, []remote.SnapshotRef{c.remote}); got != c.want {
			t.Errorf("%s: shared = %v, want %v", c.what, got, c.want)
		}
		if got := syncShared(c.local, c.remote); got != c.sync {
			t.Errorf("%s: syncShared = %v, want %v", c.what, got, c.sync)
		}
	}
	if got := streamUUID(btrfs.Info{UUID: u1, ReceivedUUID: u2}); got != u2 {
		t.Errorf("streamUUID of a received snapshot = %s, want its received UUID", got)
	}
	if got := streamUUID(btrfs.Info{UUID: u1}); got != u1 {
		t.Errorf("streamUUID = %s, want the UUID", got)
	}
}

func TestReplicateCheckReceiveHeader(t *testing.T) {
	const p = "11111111-1111-1111-1111-111111111111"
	name := "v1@2024-05-01T10:00:00.000000"
	ok := remote.ReceiveRequest{Volume: "v1", Name: name, ParentUUID: p}
	now := time.Date(2024, 5, 1, 12, 0, 0, 0, time.Local)
	if err := checkReceiveHeader(ok, btrfs.StreamHeader{Name: name, ParentUUID: p}, now); err != nil {
		t.Errorf("agreed stream refused: %v", err)
	}
	// A sender's clock a few hours ahead (or in another time zone) is fine.
	soon := "v1@2024-05-02T08:00:00.000000"
	if err := checkReceiveHeader(remote.ReceiveRequest{Volume: "v1", Name: soon}, btrfs.StreamHeader{Name: soon}, now); err != nil {
		t.Errorf("name dated 20h ahead refused: %v", err)
	}
	future := "v1@2099-05-01T10:00:00.000000"
	err := checkReceiveHeader(remote.ReceiveRequest{Volume: "v1", Name: future}, btrfs.StreamHeader{Name: future}, now)
	want := `snapshot name "v1@2099-05-01T10:00:00.000000" is dated 75 years ahead of this host's clock (at most 2 days allowed): check the sending host's clock`
	if !errors.Is(err, remote.ErrBadRequest) || !strings.Contains(err.Error(), want) {
		t.Errorf("future-dated name: %v, want a bad request saying %q", err, want)
	}
	for _, c := range []struct {
		what string
		req  remote.ReceiveRequest
		hdr  btrfs.StreamHeader
	}{
		{"other name", ok, btrfs.StreamHeader{Name: "v1@2024-05-01T10:00:00.000001", ParentUUID: p}},
		{"other volume", remote.ReceiveRequest{Volume: "v2", Name: name, ParentUUID: p}, btrfs.StreamHeader{Name: name, ParentUUID: p}},
		{"other parent", ok, btrfs.StreamHeader{Name: name, ParentUUID: "22222222-2222-2222-2222-222222222222"}},
		{"full for incremental", ok, btrfs.StreamHeader{Name: name}},
		{"incremental for full", remote.ReceiveRequest{Volume: "v1", Name: name}, btrfs.StreamHeader{Name: name, ParentUUID: p}},
	} {
		if err := checkReceiveHeader(c.req, c.hdr, now); !errors.Is(err, remote.ErrBadRequest) {
			t.Errorf("%s: %v, want a bad request", c.what, err)
		}
	}
}

func TestReplicateRemoteErrKinds(t *testing.T) {
	err := toRemoteErr(noSuchSnapshot("v1@x"))
	if !errors.Is(err, remote.ErrNotFound) || !errors.Is(err, ErrNoSuchSnapshot) || err.Error() != `no such snapshot "v1@x"` {
		t.Errorf("toRemoteErr(no such snapshot) = %v", err)
	}
	if err := toRemoteErr(errorf(ErrExists, "x")); !errors.Is(err, remote.ErrExists) {
		t.Errorf("exists: %v", err)
	}
	plain := errors.New("disk on fire")
	if toRemoteErr(plain) != plain || toRemoteErr(nil) != nil {
		t.Error("other errors must pass unchanged")
	}
}
