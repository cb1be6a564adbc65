package tests

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"butterd/service/remote"
)

// Without systemd, butterd's replication endpoint lives as long as a peer
// does: removing a peer that is not the last changes nothing; removing the
// last one closes the port at once, says so, and lets a transfer in flight
// finish; adding a peer again opens the port again.
func TestReplicateEndpointFollowsPeers(t *testing.T) {
	a, b := startSendHost(t), startSendHost(t)
	clientA, _ := a.keys(t)
	clientB, hostB := b.keys(t)
	stranger, err := remote.LoadOrCreateKey(filepath.Join(t.TempDir(), "key"))
	must(t, err)
	b.ctl.ok("remote", "add", "other", "--key", remote.AuthorizedKey(stranger.PublicKey()))
	b.ctl.ok("remote", "add", "hosta", "--key", clientA, "--push")
	a.ctl.ok("remote", "add", "hostb", "--address", b.addr, "--key", clientB)
	a.ctl.ok("remote", "trust", "hostb", hostB)
	if !b.listens() {
		t.Fatalf("B does not listen on %s with two peers", b.addr)
	}
	if r := b.ctl.run("--json", "remote", "rm", "other"); r.code != 0 || r.stdout != "{\n  \"name\": \"other\",\n  \"endpoint_stopped\": false\n}\n" || r.stderr != "" {
		t.Fatalf("remote rm of a peer that is not the last: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if !b.listens() {
		t.Fatalf("B stopped listening on %s while a peer is left", b.addr)
	}

	// A sends a snapshot slowly; B removes its last peer meanwhile.
	a.ctl.ok("volume", "create", "v1")
	var info map[string]any
	a.ctl.okJSON(&info, "volume", "inspect", "v1")
	vol := info["mountpoint"].(string)
	big := make([]byte, 16<<20)
	rand.Read(big)
	must(t, os.WriteFile(filepath.Join(vol, "big"), big, 0o600))
	s1 := snapName(t, a.ctl.ok("snapshot", "v1"), "v1")
	done := make(chan ctlResult, 1)
	go func() { done <- a.ctl.run("send", "--bwlimit", "2M", "hostb", s1) }()
	receivingIn(t, b.d.DataRoot)
	r := b.ctl.run("remote", "rm", "hosta")
	if r.code != 0 || r.stdout != "" || r.stderr != "replication endpoint stopped: no peer is left ('butterctl remote add' starts it again)\n" {
		t.Fatalf("remote rm of the last peer: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if b.listens() {
		t.Errorf("B still listens on %s after its last peer was removed", b.addr)
	}
	select {
	case r = <-done:
	case <-time.After(2 * time.Minute):
		t.Fatal("the send did not end within 2 minutes")
	}
	if r.code != 0 || !strings.HasPrefix(r.stdout, "full: ") {
		t.Fatalf("the send in flight when B's last peer was removed: exit %d, stdout %q, stderr %q; want it done", r.code, r.stdout, r.stderr)
	}
	sameSums(t, filepath.Join(a.d.DataRoot, "snapshots", s1), b.snapPath(s1))

	// A peer again: B listens and receives again.
	b.ctl.ok("remote", "add", "hosta", "--key", clientA, "--push")
	if !b.listens() {
		t.Fatalf("B does not listen on %s after a peer was added again", b.addr)
	}
	writeFile(t, filepath.Join(vol, "small"), "hello\n")
	s2 := snapName(t, a.ctl.ok("snapshot", "v1"), "v1")
	if got := a.ctl.send("hostb", s2); !strings.HasPrefix(got, "incremental against ") {
		t.Errorf("send after the peer was added again: %q, want incremental", got)
	}
}
