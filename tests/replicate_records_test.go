package tests

import (
	"context"
	"crypto/rand"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"butterd/service"
	"butterd/service/remote"
	"butterd/tests/testenv"
)

// What each side of a replication records (DESIGN.md "Retention"): purge
// keeps the newest snapshot shared with each peer, even while the peer is
// offline, and a receiver keeps the newest snapshot received from each
// source; when the shared parent is gone a send falls back to a full
// stream and says so. The hosts use their stores' own keys, peers and
// known hosts, as butterd does.

// clock is a store's clock that a test moves.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// storeHost is a store on its own BTRFS with its endpoint, once served.
type storeHost struct {
	s    *service.Store
	root string
	addr string
	stop func() // stops the endpoint
}

func newStoreHost(t *testing.T, cfg service.Config) *storeHost {
	t.Helper()
	root := filepath.Join(testenv.Btrfs(t), "data root")
	return &storeHost{s: openStoreAt(t, root, cfg), root: root}
}

// serve runs h's endpoint on 127.0.0.1 with the store's host key and peers.
func (h *storeHost) serve(t *testing.T) {
	t.Helper()
	hostKey, err := h.s.HostKey()
	must(t, err)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	srv := &remote.Server{HostKey: hostKey, Peers: h.s.Peers(), Handler: h.s.RemoteHandler()}
	done := make(chan struct{})
	go func() { srv.Serve(ctx, l); close(done) }()
	var once sync.Once
	h.stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(h.stop)
	h.addr = l.Addr().String()
}

// pair makes to accept from's client key as peer name (push and pull) and
// from know to as peer toName at its address, trusting its host key.
func pair(t *testing.T, from, to *storeHost, name, toName string) {
	t.Helper()
	fromKey, _, err := from.s.OwnKeys()
	must(t, err)
	toKey, toHost, err := to.s.OwnKeys()
	must(t, err)
	must(t, to.s.AddRemote(service.Remote{Name: name, PublicKey: fromKey, Push: true, Pull: true}))
	must(t, from.s.AddRemote(service.Remote{Name: toName, PublicKey: toKey, Address: to.addr}))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	key, err := from.s.TrustRemoteHost(ctx, toName, toHost, false)
	must(t, err)
	if !strings.HasPrefix(key, "ssh-ed25519 ") {
		t.Errorf("TrustRemoteHost returned %q, want the key trusted", key)
	}
}

// send sends snapshot from from to the peer as a job and returns the job.
func sendJob(t *testing.T, from *storeHost, peer, snapshot string, o service.SendJobOptions) service.Job {
	t.Helper()
	j, err := from.s.SendSnapshot(peer, snapshot, o)
	must(t, err)
	if j.Kind != "send" || j.Target != snapshot {
		t.Errorf("send job %+v, want kind send on %s", j, snapshot)
	}
	return waitJob(t, from.s, j.ID)
}

func keptFor(plan service.PurgePlan, name string) (string, bool) {
	for _, e := range plan.Keep {
		if e.Name == name {
			return e.Reason, true
		}
	}
	return "", false
}

func TestReplicationRecordsProtectAndFallBack(t *testing.T) {
	ca := &clock{t: time.Now().Add(-10 * 24 * time.Hour)}
	a := newStoreHost(t, service.Config{Now: ca.now})
	b := newStoreHost(t, service.Config{})
	b.serve(t)
	pair(t, a, b, "hosta", "hostb")

	v, _, err := a.s.CreateVolume("v1", service.CreateOptions{})
	must(t, err)
	data := make([]byte, 1<<20)
	rand.Read(data)
	must(t, os.WriteFile(filepath.Join(v.Path, "data"), data, 0o600))
	s1, err := a.s.CreateSnapshot("v1")
	must(t, err)

	// A full send, then an incremental one, compressed, each a job whose
	// summary says what it did.
	j := sendJob(t, a, "hostb", s1.Name, service.SendJobOptions{})
	if j.State != service.JobDone || !strings.HasPrefix(j.Summary, `full: hostb holds no snapshot of volume "v1"`) || j.BytesDone < 1<<20 {
		t.Fatalf("first send job: %+v", j)
	}
	ca.add(time.Hour)
	writeFile(t, filepath.Join(v.Path, "more"), "second\n")
	s2, err := a.s.CreateSnapshot("v1")
	must(t, err)
	j = sendJob(t, a, "hostb", s2.Name, service.SendJobOptions{Compress: true, BandwidthLimit: 64 << 20})
	if j.State != service.JobDone || j.Summary != `incremental against "`+s1.Name+`", the newest snapshot hostb also holds (as "`+s1.Name+`")` {
		t.Fatalf("second send job: %+v", j)
	}
	if j.BytesDone == 0 || j.BytesDone > 64<<10 {
		t.Errorf("incremental stream of %d bytes: want a small one", j.BytesDone)
	}
	sameFiles(t, filepath.Join(a.root, "snapshots", s2.Name), filepath.Join(b.root, "snapshots", s2.Name), "data", "more")
	j = sendJob(t, a, "hostb", s2.Name, service.SendJobOptions{})
	if j.State != service.JobDone || !strings.HasPrefix(j.Summary, "no-op: hostb already holds") {
		t.Errorf("third send job: %+v", j)
	}
	ca.add(time.Hour)
	s3, err := a.s.CreateSnapshot("v1")
	must(t, err)

	reps, err := a.s.ListReplicas("v1")
	must(t, err)
	want := []service.Replica{{Snapshot: s1.Name, Peer: "hostb"}, {Snapshot: s2.Name, Peer: "hostb", Newest: true}}
	if len(reps) != 2 || reps[0].Snapshot != want[0].Snapshot || reps[0].Newest || reps[1].Snapshot != want[1].Snapshot || !reps[1].Newest || reps[1].Received {
		t.Errorf("A's replicas %+v, want %+v", reps, want)
	}

	// B goes offline; days later A's purge keeps s2, the next incremental
	// parent, and says why.
	b.stop()
	ca.add(3 * 24 * time.Hour)
	plan, err := a.s.PlanPurge("v1", "1d", ca.now())
	must(t, err)
	if got := planNames(plan.Delete); !slices.Equal(got, []string{s1.Name}) {
		t.Errorf("A's purge deletes %v, want only %s", got, s1.Name)
	}
	if why, ok := keptFor(plan, s2.Name); !ok || why != "newest snapshot shared with hostb (its next incremental parent)" {
		t.Errorf("A's purge keeps %s for %q (kept %v)", s2.Name, why, ok)
	}
	j, _, err = a.s.Purge("v1", "1d")
	must(t, err)
	if j = waitJob(t, a.s, j.ID); j.State != service.JobDone {
		t.Fatalf("purge on A: %+v", j)
	}
	if got := snapshotNames(t, a.s, "v1"); !slices.Equal(got, []string{s2.Name, s3.Name}) {
		t.Errorf("A's snapshots after purge: %v", got)
	}

	// B keeps the newest snapshot it received from A, though a newer one
	// of its own exists.
	bv, _, err := b.s.CreateVolume("v1", service.CreateOptions{})
	must(t, err)
	writeFile(t, filepath.Join(bv.Path, "b"), "b\n")
	_, err = b.s.CreateSnapshot("v1")
	must(t, err)
	plan, err = b.s.PlanPurge("v1", "1d", time.Now())
	must(t, err)
	if got := planNames(plan.Delete); !slices.Equal(got, []string{s1.Name}) {
		t.Errorf("B's purge deletes %v, want only %s", got, s1.Name)
	}
	if why, ok := keptFor(plan, s2.Name); !ok || why != "newest snapshot received from hosta" {
		t.Errorf("B's purge keeps %s for %q (kept %v)", s2.Name, why, ok)
	}
	if reps, err := b.s.ListReplicas("v1"); err != nil || len(reps) != 1 || reps[0].Snapshot != s2.Name || !reps[0].Received || reps[0].Peer != "hosta" {
		t.Errorf("B's replicas %+v, %v: want %s received from hosta", reps, err, s2.Name)
	}

	// B loses s2 and s1: the next send from A is full, and says why.
	must(t, b.s.RemoveSnapshot(s2.Name))
	must(t, b.s.RemoveSnapshot(s1.Name))
	b.serve(t)
	if _, err := a.s.RemoveRemote("hostb"); err != nil {
		t.Fatal(err)
	}
	toKey, _, err := b.s.OwnKeys()
	must(t, err)
	must(t, a.s.AddRemote(service.Remote{Name: "hostb", PublicKey: toKey, Address: b.addr}))
	// A's records went with the peer: a plain full send.
	if reps, _ := a.s.ListReplicas("v1"); len(reps) != 0 {
		t.Errorf("A's replicas after the peer was removed: %+v", reps)
	}
	_, hostFP, _ := b.s.OwnKeys()
	ctx := replCtx(t)
	if _, err := a.s.TrustRemoteHost(ctx, "hostb", hostFP, false); err != nil {
		t.Fatal(err)
	}
	j = sendJob(t, a, "hostb", s2.Name, service.SendJobOptions{})
	if j.State != service.JobDone || !strings.HasPrefix(j.Summary, "full: ") {
		t.Fatalf("send after the records were dropped: %+v", j)
	}
	must(t, b.s.RemoveSnapshot(s2.Name))
	j = sendJob(t, a, "hostb", s3.Name, service.SendJobOptions{})
	wantSummary := `the shared parent is gone: full send ("` + s2.Name + `", the newest snapshot shared with hostb, is no longer on hostb)`
	if j.State != service.JobDone || j.Summary != wantSummary {
		t.Errorf("send after the parent went on B: %+v, want summary %q", j, wantSummary)
	}
	sameFiles(t, filepath.Join(a.root, "snapshots", s3.Name), filepath.Join(b.root, "snapshots", s3.Name), "data", "more")
}

// A send to a host that is down fails the job with a message naming the
// host, and keeps nothing; an unknown host or snapshot is refused at once.
func TestSendJobFailures(t *testing.T) {
	a, b := newStoreHost(t, service.Config{}), newStoreHost(t, service.Config{})
	b.serve(t)
	pair(t, a, b, "hosta", "hostb")
	_, _, err := a.s.CreateVolume("v1", service.CreateOptions{})
	must(t, err)
	s1, err := a.s.CreateSnapshot("v1")
	must(t, err)
	b.stop()
	j := sendJob(t, a, "hostb", s1.Name, service.SendJobOptions{})
	if j.State != service.JobFailed || !strings.Contains(j.Error, "send of \""+s1.Name+"\" to hostb ("+b.addr+") failed") ||
		!strings.Contains(j.Error, "send again once hostb is reachable") {
		t.Errorf("send to a host that is down: %+v", j)
	}
	for host, msg := range map[string]string{
		"no_such host":  `"no_such host" is neither a peer`,
		"10.0.0.1:x":    `"10.0.0.1:x" is neither a peer`,
		"user@10.0.0.1": `is neither a peer`,
	} {
		if _, err := a.s.SendSnapshot(host, s1.Name, service.SendJobOptions{}); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("SendSnapshot(%q) = %v, want %q", host, err, msg)
		}
	}
	if _, err := a.s.SendSnapshot("hostb", "v1@nope", service.SendJobOptions{}); err == nil {
		t.Error("SendSnapshot of a missing snapshot was accepted")
	}
}
