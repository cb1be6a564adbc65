package tests

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"butterd/btrfs"
	"butterd/service"
	"butterd/service/remote"
	"butterd/tests/testenv"
)

// Replication (DESIGN.md "Replication"): SendTo streams a snapshot to
// another butterd over the SSH endpoint, in full the first time, then
// incrementally against the newest snapshot both hold (matched by UUID and
// received UUID, both ways, so failback works); the receiver checks the
// stream's header against what was agreed before writing anything.

// replHost is one host: a store on its own BTRFS, with its keys.
type replHost struct {
	s    *service.Store
	root string
	dir  string // keys, peers, known_hosts
	addr string // its endpoint, once served
}

func newReplHost(t *testing.T) *replHost {
	t.Helper()
	root := filepath.Join(testenv.Btrfs(t), "data root")
	return &replHost{s: openStoreAt(t, root, service.Config{}), root: root, dir: t.TempDir()}
}

func (h *replHost) key(t *testing.T, name string) ssh.Signer {
	t.Helper()
	k, err := remote.LoadOrCreateKey(filepath.Join(h.dir, name))
	must(t, err)
	return k
}

// serve runs h's endpoint on 127.0.0.1, accepting client's key (push and
// pull), and makes client trust h's host key.
func (h *replHost) serve(t *testing.T, client *replHost) {
	t.Helper()
	hostKey := h.key(t, "host_key")
	peers := remote.OpenPeers(filepath.Join(h.dir, "peers.json"))
	must(t, peers.Add(remote.Peer{Name: "peer", PublicKey: client.key(t, "client_key").PublicKey(), Push: true, Pull: true}))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	srv := &remote.Server{HostKey: hostKey, Peers: peers, Handler: h.s.RemoteHandler()}
	done := make(chan struct{})
	go func() { srv.Serve(ctx, l); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	h.addr = l.Addr().String()
	must(t, remote.AddKnownHost(filepath.Join(client.dir, "known_hosts"), h.addr, hostKey.PublicKey(), false))
}

// dial connects h to the endpoint of to.
func (h *replHost) dial(t *testing.T, to *replHost) *remote.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := remote.Dial(ctx, to.addr, "butterd", h.key(t, "client_key"), filepath.Join(h.dir, "known_hosts"), remote.Options{})
	must(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

func (h *replHost) snapPath(name string) string { return filepath.Join(h.root, "snapshots", name) }

func (h *replHost) receivedEmpty(t *testing.T) {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(h.root, "received"))
	must(t, err)
	if len(entries) != 0 {
		t.Errorf("received/ holds %d entries after a refused push, want none", len(entries))
	}
}

// streamFile writes the send stream of a snapshot of h (incremental
// against parent when given) into a file.
func (h *replHost) streamFile(t *testing.T, name, parent string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "stream")
	f, err := os.Create(path)
	must(t, err)
	pp := ""
	if parent != "" {
		pp = h.snapPath(parent)
	}
	must(t, btrfs.Send(h.snapPath(name), pp, f))
	must(t, f.Close())
	return path
}

func replCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestReplicateSendFullIncrementalFailback(t *testing.T) {
	a, b := newReplHost(t), newReplHost(t)
	b.serve(t, a)
	ctx := replCtx(t)
	toB := a.dial(t, b)

	v, _, err := a.s.CreateVolume("v1", service.CreateOptions{})
	must(t, err)
	big := make([]byte, 4<<20)
	rand.Read(big)
	must(t, os.WriteFile(filepath.Join(v.Path, "big"), big, 0o600))
	writeFile(t, filepath.Join(v.Path, "small"), "hello\n")
	s1, err := a.s.CreateSnapshot("v1")
	must(t, err)

	// First send: full.
	r1, err := a.s.SendTo(ctx, toB, s1.Name)
	must(t, err)
	if r1.Incremental || r1.AlreadyThere || r1.Parent != "" {
		t.Fatalf("first send = %+v, want a full stream", r1)
	}
	if r1.Bytes < 4<<20 {
		t.Errorf("full stream of %d bytes, want at least the 4 MiB of data", r1.Bytes)
	}
	a1 := getInfo(t, a.snapPath(s1.Name))
	b1 := getInfo(t, b.snapPath(s1.Name))
	if !b1.ReadOnly || b1.ReceivedUUID != a1.UUID {
		t.Fatalf("B's %s: read-only %v, received UUID %q; want true and A's UUID %s", s1.Name, b1.ReadOnly, b1.ReceivedUUID, a1.UUID)
	}
	if r1.Remote.Name != s1.Name || r1.Remote.ReceivedUUID != a1.UUID {
		t.Errorf("result's remote snapshot %+v, want %s received from %s", r1.Remote, s1.Name, a1.UUID)
	}
	sameFiles(t, a.snapPath(s1.Name), b.snapPath(s1.Name), "big", "small")
	if names := snapshotNames(t, b.s, "v1"); len(names) != 1 || names[0] != s1.Name {
		t.Errorf("B's snapshots of v1: %q, want [%s]", names, s1.Name)
	}

	// Second send: incremental against s1, and small.
	writeFile(t, filepath.Join(v.Path, "new"), "second\n")
	time.Sleep(2 * time.Millisecond)
	s2, err := a.s.CreateSnapshot("v1")
	must(t, err)
	r2, err := a.s.SendTo(ctx, toB, s2.Name)
	must(t, err)
	if !r2.Incremental || r2.Parent != s1.Name || r2.ParentUUID != a1.UUID || r2.RemoteParent != s1.Name {
		t.Fatalf("second send = %+v, want incremental against %s (%s)", r2, s1.Name, a1.UUID)
	}
	if r2.Bytes <= 0 || r2.Bytes > r1.Bytes/20 {
		t.Errorf("incremental stream of %d bytes, full one %d: want far smaller", r2.Bytes, r1.Bytes)
	}
	sameFiles(t, a.snapPath(s2.Name), b.snapPath(s2.Name), "big", "new", "small")
	a2 := getInfo(t, a.snapPath(s2.Name))
	if b2 := getInfo(t, b.snapPath(s2.Name)); !b2.ReadOnly || b2.ReceivedUUID != a2.UUID {
		t.Errorf("B's %s: read-only %v, received UUID %q; want true and %s", s2.Name, b2.ReadOnly, b2.ReceivedUUID, a2.UUID)
	}

	// Again: nothing to do, nothing deleted.
	r3, err := a.s.SendTo(ctx, toB, s2.Name)
	must(t, err)
	if !r3.AlreadyThere || r3.Bytes != 0 || r3.Remote.Name != s2.Name {
		t.Errorf("sending %s again = %+v, want a no-op", s2.Name, r3)
	}
	if names := snapshotNames(t, b.s, "v1"); len(names) != 2 {
		t.Errorf("B's snapshots after the no-op: %q", names)
	}

	// A pull names the parent as the stream does: B's s1 was received,
	// so its stream's parent is A's s1 UUID.
	var pulled bytes.Buffer
	must(t, toB.Pull(ctx, remote.SendRequest{Volume: "v1", Name: s2.Name, ParentUUID: a1.UUID}, &pulled))
	hdr, _, err := btrfs.ReadStreamHeader(bytes.NewReader(pulled.Bytes()))
	must(t, err)
	if hdr.Name != s2.Name || hdr.UUID != a2.UUID || hdr.ParentUUID != a1.UUID {
		t.Errorf("pulled stream header %+v, want %s with UUID %s and parent %s", hdr, s2.Name, a2.UUID, a1.UUID)
	}
	if int64(pulled.Len()) > r1.Bytes/20 {
		t.Errorf("pulled incremental stream of %d bytes: want far smaller than %d", pulled.Len(), r1.Bytes)
	}

	// Failback: B makes the volume from s2, changes it, snapshots it and
	// sends it back to A, incrementally against s2, found by B's received
	// UUID among A's UUIDs.
	a.serve(t, b)
	toA := b.dial(t, a)
	_, err = b.s.Restore(s2.Name, "v1", false)
	must(t, err)
	bv, err := b.s.GetVolume("v1")
	must(t, err)
	writeFile(t, filepath.Join(bv.Path, "from-b"), "written on B\n")
	time.Sleep(2 * time.Millisecond)
	s3, err := b.s.CreateSnapshot("v1")
	must(t, err)
	r4, err := b.s.SendTo(ctx, toA, s3.Name)
	must(t, err)
	if !r4.Incremental || r4.Parent != s2.Name || r4.ParentUUID != a2.UUID {
		t.Fatalf("failback send = %+v, want incremental against %s (A's UUID %s)", r4, s2.Name, a2.UUID)
	}
	if r4.Bytes > r1.Bytes/20 {
		t.Errorf("failback stream of %d bytes, full one %d: want far smaller", r4.Bytes, r1.Bytes)
	}
	sameFiles(t, b.snapPath(s3.Name), a.snapPath(s3.Name), "big", "from-b", "new", "small")
	b3 := getInfo(t, b.snapPath(s3.Name))
	if a3 := getInfo(t, a.snapPath(s3.Name)); !a3.ReadOnly || a3.ReceivedUUID != b3.UUID {
		t.Errorf("A's %s: read-only %v, received UUID %q; want true and B's %s", s3.Name, a3.ReadOnly, a3.ReceivedUUID, b3.UUID)
	}
	// And A holds it now: sending again is a no-op both ways.
	if r, err := b.s.SendTo(ctx, toA, s3.Name); err != nil || !r.AlreadyThere {
		t.Errorf("sending %s back again = %+v, %v; want a no-op", s3.Name, r, err)
	}
	if r, err := a.s.SendTo(ctx, toB, s3.Name); err != nil || !r.AlreadyThere {
		t.Errorf("sending A's received %s to B = %+v, %v; want a no-op", s3.Name, r, err)
	}
	a.receivedEmpty(t)
	b.receivedEmpty(t)
}

func TestReplicateReceiveRefusesOtherStreams(t *testing.T) {
	a, b := newReplHost(t), newReplHost(t)
	b.serve(t, a)
	ctx := replCtx(t)
	toB := a.dial(t, b)

	v, _, err := a.s.CreateVolume("v1", service.CreateOptions{})
	must(t, err)
	data := make([]byte, 1<<20)
	rand.Read(data)
	must(t, os.WriteFile(filepath.Join(v.Path, "data"), data, 0o600))
	s1, err := a.s.CreateSnapshot("v1")
	must(t, err)
	_, err = a.s.SendTo(ctx, toB, s1.Name)
	must(t, err)
	writeFile(t, filepath.Join(v.Path, "more"), "more\n")
	time.Sleep(2 * time.Millisecond)
	s2, err := a.s.CreateSnapshot("v1")
	must(t, err)
	a1 := getInfo(t, a.snapPath(s1.Name))
	before := snapshotNames(t, b.s, "v1")

	push := func(req remote.ReceiveRequest, stream string) error {
		f, err := os.Open(stream)
		must(t, err)
		defer f.Close()
		_, err = toB.Push(ctx, req, f)
		return err
	}
	refused := func(what string, err error) {
		t.Helper()
		if err == nil {
			t.Fatalf("%s: accepted", what)
		}
		if !errors.Is(err, remote.ErrBadRequest) || !remote.IsPermanent(err) {
			t.Errorf("%s: %v, want a permanent bad request", what, err)
		}
		b.receivedEmpty(t)
		if names := snapshotNames(t, b.s, "v1"); len(names) != len(before) {
			t.Errorf("%s: B's snapshots are %q, were %q", what, names, before)
		}
	}

	incr := a.streamFile(t, s2.Name, s1.Name)
	other := service.SnapshotName("v1", time.Now().Add(time.Hour))
	refused("a stream named otherwise than the request",
		push(remote.ReceiveRequest{Volume: "v1", Name: other, ParentUUID: a1.UUID}, incr))
	refused("a parent other than the agreed one",
		push(remote.ReceiveRequest{Volume: "v1", Name: s2.Name, ParentUUID: getInfo(t, a.snapPath(s2.Name)).UUID}, incr))
	refused("an incremental stream announced as full",
		push(remote.ReceiveRequest{Volume: "v1", Name: s2.Name}, incr))
	full := a.streamFile(t, s2.Name, "")
	refused("a full stream announced as incremental",
		push(remote.ReceiveRequest{Volume: "v1", Name: s2.Name, ParentUUID: a1.UUID}, full))
	// A name dated ahead of B's clock would stay B's latest snapshot.
	future := "v1@2099-01-01T00:00:00.000000"
	fullData, err := os.ReadFile(full)
	must(t, err)
	futureStream := filepath.Join(t.TempDir(), "future")
	must(t, os.WriteFile(futureStream, withStreamName(t, fullData, future), 0o600))
	err = push(remote.ReceiveRequest{Volume: "v1", Name: future}, futureStream)
	refused("a name dated in 2099", err)
	if err == nil || !strings.Contains(err.Error(), "ahead of this host's clock (at most 2 days allowed): check the sending host's clock") {
		t.Errorf("future-dated name refused with %v, want the reason and what to do", err)
	}

	// The agreed stream goes through.
	res, err := toB.Push(ctx, remote.ReceiveRequest{Volume: "v1", Name: s2.Name, ParentUUID: a1.UUID}, mustOpen(t, incr))
	must(t, err)
	if res.Snapshot.Name != s2.Name || res.Snapshot.ReceivedUUID != getInfo(t, a.snapPath(s2.Name)).UUID {
		t.Errorf("push result %+v", res)
	}
	// Pushing it again is a no-op success, never a delete.
	res2, err := toB.Push(ctx, remote.ReceiveRequest{Volume: "v1", Name: s2.Name, ParentUUID: a1.UUID}, mustOpen(t, incr))
	must(t, err)
	if res2.Snapshot.UUID != res.Snapshot.UUID {
		t.Errorf("second push made %+v, first %+v: want the same snapshot", res2.Snapshot, res.Snapshot)
	}
	b.receivedEmpty(t)
}

func mustOpen(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := os.Open(path)
	must(t, err)
	t.Cleanup(func() { f.Close() })
	return f
}

// posingStreams makes, on h, a volume "va" with two snapshots and their
// streams (full, then incremental) rewritten to pose as uuid: the full
// stream's subvolume UUID and the incremental stream's parent UUID are
// uuid. It returns the snapshots' names and the two stream files.
func posingStreams(t *testing.T, h *service.Store, uuid string) (a1, a2, full, incr string) {
	t.Helper()
	v, _, err := h.CreateVolume("va", service.CreateOptions{})
	must(t, err)
	writeFile(t, filepath.Join(v.Path, "own"), "a's own data\n")
	s1, err := h.CreateSnapshot("va")
	must(t, err)
	writeFile(t, filepath.Join(v.Path, "added"), "added in a's second snapshot\n")
	time.Sleep(2 * time.Millisecond) // distinct snapshot names
	s2, err := h.CreateSnapshot("va")
	must(t, err)
	rewrite := func(name, parent string, attr uint16) string {
		data, err := os.ReadFile(exportStream(t, h, name, parent))
		must(t, err)
		path := filepath.Join(t.TempDir(), "posing.stream")
		must(t, os.WriteFile(path, withStreamAttrs(t, data, map[uint16][]byte{attr: uuidBytes(t, uuid)}), 0o600))
		return path
	}
	// BTRFS_SEND_A_UUID, BTRFS_SEND_A_CLONE_UUID
	return s1.Name, s2.Name, rewrite(s1.Name, "", 1), rewrite(s2.Name, s1.Name, 20)
}

// noneHolds requires no snapshot of volume on s to hold a file named file.
func noneHolds(t *testing.T, s *service.Store, root, volume, file string) {
	t.Helper()
	for _, name := range snapshotNames(t, s, volume) {
		if _, err := os.Lstat(filepath.Join(root, "snapshots", name, file)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("snapshot %s holds %s of another volume: %v", name, file, err)
		}
	}
}

// btrfs receive finds an incremental stream's parent (and a CLONE's
// source) by received UUID, then UUID, across the whole filesystem. A peer
// that may push to volumes va and vb reads the received UUID of b's snapshot
// from a listing, and pushes to a a first snapshot posing with that UUID,
// then a second one incremental against it: butterd would find a's
// snapshot for the parent while btrfs receive took b's, building a's new
// snapshot on b's data for the peer to pull. The posing snapshot is refused.
func TestReplicateReceiveRefusesAnotherVolumesUUID(t *testing.T) {
	attacker, b := newReplHost(t), newReplHost(t)
	b.serve(t, attacker)
	ctx := replCtx(t)
	toB := attacker.dial(t, b)

	// B holds a snapshot of volume b received from a third host.
	third, _ := openStore(t)
	bv, _, err := third.CreateVolume("vb", service.CreateOptions{})
	must(t, err)
	writeFile(t, filepath.Join(bv.Path, "secret"), "b's data\n")
	bx, err := third.CreateSnapshot("vb")
	must(t, err)
	importOK(t, b.s, exportStream(t, third, bx.Name, ""))
	refs, err := toB.List(ctx, "vb")
	must(t, err)
	if len(refs) != 1 || refs[0].ReceivedUUID == "" {
		t.Fatalf("B lists %+v for volume vb", refs)
	}
	r := refs[0].ReceivedUUID

	a1, a2, full, incr := posingStreams(t, attacker.s, r)
	_, err = toB.Push(ctx, remote.ReceiveRequest{Volume: "va", Name: a1}, mustOpen(t, full))
	if !errors.Is(err, remote.ErrBadRequest) || !strings.Contains(err.Error(), `already the received UUID of snapshot "`+bx.Name+`" of volume "vb"`) {
		t.Errorf("push of a snapshot posing as b's: %v; want a bad request naming b's snapshot", err)
	}
	_, err = toB.Push(ctx, remote.ReceiveRequest{Volume: "va", Name: a2, ParentUUID: r}, mustOpen(t, incr))
	if err == nil {
		t.Errorf("push of %s incremental against b's snapshot accepted", a2)
	}
	b.receivedEmpty(t)
	noneHolds(t, b.s, b.root, "va", "secret")
	if names := snapshotNames(t, b.s, "va"); len(names) != 0 {
		t.Errorf("B's snapshots of va: %v, want none", names)
	}
	// B's own snapshot of b is untouched.
	if got, err := os.ReadFile(filepath.Join(b.snapPath(bx.Name), "secret")); err != nil || string(got) != "b's data\n" {
		t.Errorf("b's snapshot: %q, %v", got, err)
	}
}
