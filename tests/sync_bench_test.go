package tests

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"butterd/btrfs"
	"butterd/service"
	"butterd/service/remote"
	"butterd/tests/testenv"
)

// A sync after 1% of a volume's files changed, against `rsync -a` of the
// same change (DESIGN.md "Replication": sync uses BTRFS streams and
// reflinks where they beat rsync). The volume holds syncBenchFiles small
// files and, in the "db" variant, one file of syncBenchDB bytes too; before
// each round (timer stopped) 1% of the files get new data and a newer
// mtime, the big file among them, rewritten in place in 1% of its blocks
// (a database). butterd pulls over SSH on 127.0.0.1, incrementally against
// a snapshot both hosts hold, takes its safety snapshot and reflinks the
// changed files in; rsync copies between two directories of one BTRFS,
// without SSH. Each round is timed on its own (median, p99); nothing
// asserts a time. `make bench` runs them with few rounds.

const (
	syncBenchFiles = 2000
	syncBenchSize  = 16 << 10
	syncBenchDirs  = 20 // the small files are spread over this many directories
	syncBenchDB    = 64 << 20
	syncBenchBlock = 64 << 10
)

var syncBenchVariants = []struct {
	name string
	db   bool
}{{"files", false}, {"db", true}}

func syncBenchPath(root string, i int) string {
	return filepath.Join(root, fmt.Sprintf("d%02d", i%syncBenchDirs), fmt.Sprintf("f%05d", i))
}

// syncBenchTree writes the files of the benchmark's volume under root.
func syncBenchTree(b *testing.B, root string, db bool) {
	b.Helper()
	data := make([]byte, syncBenchSize)
	for i := range syncBenchFiles {
		path := syncBenchPath(root, i)
		must(b, os.MkdirAll(filepath.Dir(path), 0o755))
		rand.Read(data)
		must(b, os.WriteFile(path, data, 0o644))
	}
	if db {
		big := make([]byte, syncBenchDB)
		rand.Read(big)
		must(b, os.WriteFile(filepath.Join(root, "db"), big, 0o644))
	}
}

// syncBenchChange changes 1% of the files, each with an mtime one second
// later than in the round before: new data in small files, and in 1% of
// the big file's blocks, rewritten in place.
func syncBenchChange(b *testing.B, root string, round int, db bool) {
	b.Helper()
	mtime := time.Now().Add(time.Duration(round+1) * time.Second)
	step := 100
	if db {
		step = 100 * syncBenchFiles / (syncBenchFiles - 100) // one small file fewer: the big one is changed too
		f, err := os.OpenFile(filepath.Join(root, "db"), os.O_WRONLY, 0)
		must(b, err)
		block := make([]byte, syncBenchBlock)
		blocks := syncBenchDB / syncBenchBlock
		for i := 0; i < blocks; i += 100 {
			rand.Read(block)
			_, err := f.WriteAt(block, int64((i+round)%blocks)*syncBenchBlock)
			must(b, err)
		}
		must(b, f.Close())
		must(b, os.Chtimes(filepath.Join(root, "db"), mtime, mtime))
	}
	data := make([]byte, syncBenchSize)
	for i := 0; i < syncBenchFiles; i += step {
		rand.Read(data)
		path := syncBenchPath(root, i)
		must(b, os.WriteFile(path, data, 0o644))
		must(b, os.Chtimes(path, mtime, mtime))
	}
}

func benchStore(b *testing.B, name string) *service.Store {
	b.Helper()
	s, err := service.Open(service.Config{
		Root:   filepath.Join(testenv.BtrfsSize(b, "1G"), name),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		BootID: "bench",
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// benchJob waits for a job through the store's events.
func benchJob(b *testing.B, done <-chan service.Job, id uint32) {
	b.Helper()
	for j := range done {
		if j.ID != id {
			continue
		}
		if j.State != service.JobDone {
			b.Fatalf("job %d (%s): %s %s", id, j.Kind, j.State, j.Error)
		}
		return
	}
}

func BenchmarkSync1Percent(b *testing.B) {
	testenv.Command(b, "btrfs")
	for _, v := range syncBenchVariants {
		b.Run(v.name, func(b *testing.B) { benchSyncFrom(b, v.db) })
	}
}

func benchSyncFrom(b *testing.B, db bool) {
	src, dst := benchStore(b, "a"), benchStore(b, "local")
	done := make(chan service.Job, 16)
	dst.SetNotify(func(ev service.Event) {
		if ev.Kind == service.JobRemoved {
			done <- ev.Job
		}
	})

	// src serves dst, which pulls with its client key.
	keys := b.TempDir()
	hostKey, err := remote.LoadOrCreateKey(filepath.Join(keys, "host_key"))
	must(b, err)
	clientKey, err := remote.LoadOrCreateKey(filepath.Join(keys, "client_key"))
	must(b, err)
	peers := remote.OpenPeers(filepath.Join(keys, "peers.json"))
	must(b, peers.Add(remote.Peer{Name: "local", PublicKey: clientKey.PublicKey(), Pull: true}))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(b, err)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan struct{})
	srv := &remote.Server{HostKey: hostKey, Peers: peers, Handler: src.RemoteHandler(), Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	go func() { srv.Serve(ctx, l); close(served) }()
	b.Cleanup(func() { cancel(); <-served })
	known := filepath.Join(keys, "known_hosts")
	must(b, remote.AddKnownHost(known, l.Addr().String(), hostKey.PublicKey(), false))
	c, err := remote.Dial(ctx, l.Addr().String(), "butterd", clientKey, known, remote.Options{})
	must(b, err)
	b.Cleanup(func() { c.Close() })

	// Both hosts start from one snapshot: the source's, imported here.
	v, _, err := src.CreateVolume("v1", service.CreateOptions{})
	must(b, err)
	syncBenchTree(b, v.Path, db)
	s1, err := src.CreateSnapshot("v1")
	must(b, err)
	stream := filepath.Join(b.TempDir(), "stream")
	f, err := os.Create(stream)
	must(b, err)
	must(b, btrfs.Send(s1.Path, "", f))
	must(b, f.Close())
	f, err = os.Open(stream)
	must(b, err)
	j, err := dst.ImportSnapshot(f)
	must(b, err)
	benchJob(b, done, j.ID)
	_, err = dst.Restore(s1.Name, "v1", false)
	must(b, err)

	var times perfTimes
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		syncBenchChange(b, v.Path, i, db)
		b.StartTimer()
		start := time.Now()
		j, err := dst.SyncFrom([]*remote.Client{c}, "v1", false)
		must(b, err)
		benchJob(b, done, j.ID)
		times = append(times, time.Since(start))
	}
	b.StopTimer()
	times.report(b)
}

func BenchmarkRsync1Percent(b *testing.B) {
	rsync := testenv.Command(b, "rsync")
	for _, v := range syncBenchVariants {
		b.Run(v.name, func(b *testing.B) { benchRsync(b, rsync, v.db) })
	}
}

func benchRsync(b *testing.B, rsync string, db bool) {
	mnt := testenv.BtrfsSize(b, "1G")
	src, dst := filepath.Join(mnt, "a"), filepath.Join(mnt, "local")
	syncBenchTree(b, src, db)
	run := func() {
		if out, err := exec.Command(rsync, "-a", src+"/", dst+"/").CombinedOutput(); err != nil {
			b.Fatalf("rsync: %v: %s", err, out)
		}
	}
	run()

	var times perfTimes
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		syncBenchChange(b, src, i, db)
		b.StartTimer()
		start := time.Now()
		run()
		times = append(times, time.Since(start))
	}
	b.StopTimer()
	times.report(b)
}
