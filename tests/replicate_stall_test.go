package tests

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"butterd/service"
	"butterd/service/remote"
)

// Operations that peers start run as jobs of their own: they never take
// the places of local jobs, at most two run at once (one per peer) and
// the excess is refused busy at once; a peer that stops sending has its
// push abandoned after the endpoint's idle timeout.

// stalledStream yields the first n bytes of a stream file and then blocks
// until closed, as a peer that stops sending.
type stalledStream struct {
	r      io.Reader
	closed chan struct{}
}

func newStalledStream(t *testing.T, path string, n int64) *stalledStream {
	s := &stalledStream{r: io.LimitReader(mustOpen(t, path), n), closed: make(chan struct{})}
	t.Cleanup(s.close)
	return s
}

func (s *stalledStream) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err == io.EOF {
		<-s.closed
		return 0, os.ErrClosed
	}
	return n, err
}

func (s *stalledStream) close() {
	select {
	case <-s.closed:
	default:
		close(s.closed)
	}
}

// peerJobs lists b's jobs of kind receive.
func receiveJobs(s *service.Store) []service.Job {
	return slices.DeleteFunc(s.ListJobs(), func(j service.Job) bool { return j.Kind != "receive" })
}

// waitReceiveJobs waits until ok holds of b's receive jobs.
func waitReceiveJobs(t *testing.T, s *service.Store, what string, ok func([]service.Job) bool) []service.Job {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		jobs := receiveJobs(s)
		if ok(jobs) {
			return jobs
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: receive jobs are %+v", what, jobs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func running(jobs []service.Job) int {
	n := 0
	for _, j := range jobs {
		if !j.Done() {
			n++
		}
	}
	return n
}

func TestReplicatePeerStalls(t *testing.T) {
	a, b := newReplHost(t), newReplHost(t)
	ctx := replCtx(t)

	// Three snapshots of a's v1, each with 1 MiB of its own, as full streams.
	v, _, err := a.s.CreateVolume("v1", service.CreateOptions{})
	must(t, err)
	var streams []string
	var names []string
	for i := range 3 {
		data := make([]byte, 1<<20)
		rand.Read(data)
		must(t, os.WriteFile(filepath.Join(v.Path, fmt.Sprintf("data%d", i)), data, 0o600))
		snap, err := a.s.CreateSnapshot("v1")
		must(t, err)
		names = append(names, snap.Name)
		streams = append(streams, a.streamFile(t, snap.Name, ""))
		time.Sleep(2 * time.Millisecond)
	}

	// b's endpoint accepts three peers that may push; it listens twice,
	// patient (the default idle timeout) and impatient.
	hostKey := b.key(t, "host_key")
	peers := remote.OpenPeers(filepath.Join(b.dir, "peers.json"))
	keys := map[string]ssh.Signer{}
	for _, p := range []string{"p1", "p2", "p3"} {
		keys[p] = a.key(t, p+"_key")
		must(t, peers.Add(remote.Peer{Name: p, PublicKey: keys[p].PublicKey(), Push: true}))
	}
	knownHosts := filepath.Join(a.dir, "known_hosts")
	listen := func(idle time.Duration) string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		must(t, err)
		sctx, cancel := context.WithCancel(context.Background())
		srv := &remote.Server{HostKey: hostKey, Peers: peers, Handler: b.s.RemoteHandler(), IdleTimeout: idle}
		done := make(chan struct{})
		go func() { srv.Serve(sctx, l); close(done) }()
		t.Cleanup(func() { cancel(); <-done })
		must(t, remote.AddKnownHost(knownHosts, l.Addr().String(), hostKey.PublicKey(), false))
		return l.Addr().String()
	}
	patient, impatient := listen(0), listen(300*time.Millisecond)
	dial := func(addr, peer string) *remote.Client {
		c, err := remote.Dial(ctx, addr, "butterd", keys[peer], knownHosts, remote.Options{})
		must(t, err)
		t.Cleanup(func() { c.Close() })
		return c
	}
	push := func(c *remote.Client, i int, stream io.Reader) <-chan error {
		done := make(chan error, 1)
		go func() {
			_, err := c.Push(ctx, remote.ReceiveRequest{Volume: "v1", Name: names[i]}, stream)
			done <- err
		}()
		return done
	}
	busy := func(what string, err error, says string) {
		t.Helper()
		if !errors.Is(err, remote.ErrBusy) || remote.IsPermanent(err) ||
			!strings.Contains(err.Error(), "peer busy, retry later") || !strings.Contains(err.Error(), says) {
			t.Errorf("%s: %v, want peer busy, retry later, saying %q", what, err, says)
		}
	}

	// Two peers start pushes and stall after the start of their streams.
	stall1 := newStalledStream(t, streams[0], 64<<10)
	pushed1 := push(dial(patient, "p1"), 0, stall1)
	waitReceiveJobs(t, b.s, "the first stalled push's job", func(j []service.Job) bool { return running(j) == 1 })
	busy("a second push of the same peer", <-push(dial(patient, "p1"), 1, mustOpen(t, streams[1])),
		`peer "p1" already has 1 operation(s) under way here`)
	stall2 := newStalledStream(t, streams[1], 64<<10)
	pushed2 := push(dial(patient, "p2"), 1, stall2)
	waitReceiveJobs(t, b.s, "the second stalled push's job", func(j []service.Job) bool { return running(j) == 2 })
	busy("a third peer's push", <-push(dial(patient, "p3"), 2, mustOpen(t, streams[2])),
		"2 operations of peers are already under way here")

	// Local jobs run at once meanwhile: an export (a queued job) and a
	// snapshot.
	_, _, err = b.s.CreateVolume("w1", service.CreateOptions{})
	must(t, err)
	local, err := b.s.CreateSnapshot("w1")
	must(t, err)
	out, err := os.Create(filepath.Join(t.TempDir(), "export"))
	must(t, err)
	exp, err := b.s.ExportSnapshot(local.Name, "", out)
	must(t, err)
	if j := waitJob(t, b.s, exp.ID); j.State != service.JobDone {
		t.Errorf("export while two peers stall their pushes: %s %s", j.State, j.Error)
	}
	if _, err := b.s.CreateSnapshot("w1"); err != nil {
		t.Errorf("snapshot while two peers stall their pushes: %v", err)
	}

	// The peers give up; their places are free again.
	stall1.close()
	stall2.close()
	for _, done := range []<-chan error{pushed1, pushed2} {
		if err := <-done; err == nil {
			t.Error("a stalled push succeeded")
		}
	}
	before := waitReceiveJobs(t, b.s, "the stalled pushes' jobs to end", func(j []service.Job) bool { return running(j) == 0 })

	// The impatient endpoint abandons a push stalled for its idle timeout:
	// its job fails saying so, and nothing of it stays.
	stall3 := newStalledStream(t, streams[2], 64<<10)
	pushed3 := push(dial(impatient, "p3"), 2, stall3)
	jobs := waitReceiveJobs(t, b.s, "the abandoned push's job", func(j []service.Job) bool {
		return len(j) > len(before) && j[len(j)-1].Done()
	})
	j := jobs[len(jobs)-1]
	if j.State != service.JobFailed || !strings.Contains(j.Error, `no data from peer "p3" for 300ms: transfer abandoned`) {
		t.Errorf("the job of a push stalled for the idle timeout: %s %q, want failed saying it was abandoned", j.State, j.Error)
	}
	b.receivedEmpty(t)
	if got := snapshotNames(t, b.s, "v1"); len(got) != 0 {
		t.Errorf("b holds %q after the stalled pushes, want nothing", got)
	}
	stall3.close()
	if err := <-pushed3; err == nil {
		t.Error("the abandoned push succeeded")
	}

	// And a push that moves goes through.
	if _, err := dial(impatient, "p3").Push(ctx, remote.ReceiveRequest{Volume: "v1", Name: names[2]}, mustOpen(t, streams[2])); err != nil {
		t.Errorf("push after the stalled ones: %v", err)
	}
}
