package tests

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"time"

	"butterd/dbusapi"
	"butterd/service/merge"
)

// Kill tests of replication (see kill_test.go for the machinery): a second
// real butterd, with its own BTRFS, bus and replication endpoint on
// 127.0.0.1, is the other host, and is never killed.
//
//   - sync: the killed butterd pulls a volume from the other one, whose
//     files get new data before each run. After the restart every file of
//     the volume holds its old data or the new data in full, none is
//     gone, nothing of the staging directory is left, one safety snapshot
//     holding the volume as it was exists if a file changed, the other host
//     has deleted its temporary snapshot, and a new sync brings every new
//     file.
//   - receive: the other host pushes a new snapshot (incremental against
//     the one before) to the killed butterd. After the restart the snapshot
//     is there whole, read-only, with the sender's UUID as its received
//     UUID, or not at all; the sender's job failed naming the snapshot and
//     the host, or succeeded and the snapshot is there; a new send
//     succeeds and brings the same data.

// replPeer is the other host of a replication kill test.
type replPeer struct {
	*killEnv
	addr string // its replication endpoint
}

// startReplPeer starts the other host, and gives e (not yet started) a
// replication endpoint of its own on 127.0.0.1; it returns e's address.
func startReplPeer(e *killEnv, fsSize string) (*replPeer, string) {
	e.t.Helper()
	addr := "127.0.0.1:" + freePort(e.t)
	e.args = append(e.args, sshArgs(addr)...)
	p := &replPeer{killEnv: newKillEnv(e.t, e.rng, fsSize), addr: "127.0.0.1:" + freePort(e.t)}
	p.args = append(p.args, sshArgs(p.addr)...)
	p.start()
	return p, addr
}

func sshArgs(addr string) []string {
	host, port, _ := strings.Cut(addr, ":")
	return []string{"--ssh-address=" + host, "--ssh-port=" + port}
}

// link lets client reach server, at addr, as the peer named name, with
// the rights flags (dbusapi.RemotePush, RemotePull) on volume there;
// server knows client as "client".
func link(client, server *killEnv, addr, name, volume string, flags uint64) {
	t := client.t
	t.Helper()
	clientKey, _, err := client.c.GetOwnKeys()
	must(t, err)
	serverKey, serverFP, err := server.c.GetOwnKeys()
	must(t, err)
	// The server's first peer turns its endpoint on.
	if err := server.c.AddRemote("client", "", clientKey, []string{volume}, flags); err != nil {
		t.Fatalf("AddRemote on the serving host: %v", dbusapi.Message(err))
	}
	if err := client.c.AddRemote(name, addr, serverKey, nil, 0); err != nil {
		t.Fatalf("AddRemote %s: %v", name, dbusapi.Message(err))
	}
	if _, err := client.c.TrustRemoteHost(name, serverFP, false); err != nil {
		t.Fatalf("TrustRemoteHost %s: %v", name, dbusapi.Message(err))
	}
}

// checkNoTemporaries checks, with butterd running, that its operations
// left no temporary and no journal entry once the client has their result.
func (e *killEnv) checkNoTemporaries() {
	e.t.Helper()
	l := leftovers(e.t, e.root)
	if entries, err := os.ReadDir(filepath.Join(e.root, "received")); err != nil || len(entries) > 0 {
		l = append(l, fmt.Sprintf("received/%v (%v)", dirNames(entries), err))
	}
	if len(l) != 0 {
		e.t.Errorf("left over: %v", l)
	}
}

// removeSnapshots removes the snapshots of volume but the newest keep.
func (e *killEnv) removeSnapshots(volume string, keep int) {
	e.t.Helper()
	snaps, err := e.c.ListSnapshots(volume)
	if err != nil {
		e.t.Fatalf("ListSnapshots %s: %v", volume, dbusapi.Message(err))
	}
	for k := 0; k < len(snaps)-keep; k++ {
		if err := e.c.RemoveSnapshot(snaps[k].Name); err != nil {
			e.t.Fatalf("RemoveSnapshot %s: %v", snaps[k].Name, dbusapi.Message(err))
		}
	}
}

// settle waits until the host runs no job (a serving job ends on its own
// once the link is cut) and requires it to have left no temporary and no
// journal entry.
func (p *replPeer) settle() {
	t := p.t
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		jobs, err := p.c.ListJobs()
		if err != nil {
			t.Fatalf("ListJobs on the other host: %v", dbusapi.Message(err))
		}
		busy := ""
		for _, j := range jobs {
			if j.State == "queued" || j.State == "running" {
				busy = fmt.Sprintf("job %d (%s of %s) is %s", j.ID, j.Kind, j.Target, j.State)
			}
		}
		if busy == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the other host still runs: %s", busy)
		}
		time.Sleep(10 * time.Millisecond)
	}
	p.checkNoTemporaries()
}

// syncKillOp pulls volume sv from the other host, where syncFiles files
// get new data (and a new directory appears) before each run.
func syncKillOp() killOp {
	const volume, syncFiles = "sv", 320
	var src *replPeer
	var old, want map[string]string // the volume's files before the run; the other host's
	merged := 0                     // kills that came once the merge had begun
	vol := func(e *killEnv) string { return filepath.Join(e.root, "volumes", volume) }
	// sync syncs and waits for the job; jobs, when not nil, is told its id.
	sync := func(e *killEnv, jobs chan<- uint32) error {
		id, _, err := e.c.SyncVolume(volume, []string{"src"}, false)
		if err != nil {
			return err
		}
		if jobs != nil {
			jobs <- id
		}
		return e.waitJob(id)
	}
	var jobs chan uint32 // the run's job id
	return killOp{
		name:   "sync",
		fsSize: "256M",
		kills:  16, // each round syncs twice and checks two hosts
		boot:   func(e *killEnv) { src, _ = startReplPeer(e, "256M") },
		setup: func(e *killEnv) {
			link(e, src.killEnv, src.addr, "src", volume, dbusapi.RemotePull)
			e.createVolume(volume)
			past := time.Now().Add(-time.Hour)
			must(e.t, filepath.WalkDir(vol(e), func(path string, _ os.DirEntry, err error) error {
				if err == nil {
					err = os.Chtimes(path, past, past)
				}
				return err
			}))
			if _, err := src.c.CreateVolume(volume, nil); err != nil {
				e.t.Fatalf("CreateVolume %s on the other host: %v", volume, dbusapi.Message(err))
			}
			e.t.Cleanup(func() { e.t.Logf("sync: %d kills came during the merge (after its safety snapshot)", merged) })
		},
		prepare: func(e *killEnv, i int) {
			// The safety snapshots of the runs before go: each state
			// sums every snapshot.
			e.removeSnapshots(volume, 0)
			root := vol(src.killEnv)
			data := make([]byte, 4<<10)
			write := func(rel string) {
				for k := range data {
					data[k] = byte(e.rng.Uint32())
				}
				path := filepath.Join(root, rel)
				must(e.t, os.MkdirAll(filepath.Dir(path), 0o755))
				must(e.t, os.WriteFile(path, data[:1+e.rng.IntN(len(data))], 0o644))
			}
			for k := range syncFiles {
				write(fmt.Sprintf("d%d/f%03d", k%4, k))
			}
			for k := range 4 {
				write(fmt.Sprintf("run%d/f%d", i, k))
			}
			old, want = sums(e.t, vol(e)), sums(e.t, root)
		},
		run: func(e *killEnv, i int) *flight {
			jobs = make(chan uint32, 1)
			return fly(func() error { return sync(e, jobs) })
		},
		// Every other kill comes once the merge has examined k entries,
		// k drawn among those it examines; the others at a moment drawn.
		aim: func(e *killEnv, i int, f *flight) bool {
			if i%2 == 0 {
				return false
			}
			k := uint64(1 + e.rng.IntN(syncFiles+8))
			var id uint32
			select {
			case id = <-jobs:
			case <-f.done:
				return true
			}
			for {
				j, err := e.c.Job(id)
				if err != nil || j.Result != "" || j.FilesDone >= k {
					return true
				}
				time.Sleep(time.Millisecond)
			}
		},
		check: func(e *killEnv, i int, before, after killState, finished bool) {
			t := e.t
			got := sums(t, vol(e))
			changed := !maps.Equal(got, old)
			for path, sum := range got {
				switch {
				case strings.HasPrefix(path, merge.StagePrefix):
					t.Errorf("left in the volume: %s", path)
				case sum != old[path] && sum != want[path]:
					t.Errorf("%s holds neither its old data nor the new data: half written", path)
				}
			}
			for path := range old {
				if _, ok := got[path]; !ok {
					t.Errorf("%s is gone: a sync never deletes", path)
				}
			}
			if finished && !subsetOf(want, got) {
				t.Errorf("the sync answered done, but the volume lacks new data")
			}
			var mayAppear []string
			for name := range after.snapshots {
				if strings.HasPrefix(name, volume+"@") {
					mayAppear = append(mayAppear, name)
				}
			}
			switch added := e.keptExcept(before, after, []string{volume}, mayAppear); {
			case len(added) > 1:
				t.Errorf("snapshots %v appeared: want at most one safety snapshot", added)
			case len(added) == 1 && after.snapshots[added[0]] != before.volumes[volume]:
				t.Errorf("safety snapshot %s does not hold the volume as it was before the sync", added[0])
			case len(added) == 0 && changed:
				t.Errorf("the sync changed files, but no safety snapshot appeared")
			case len(added) == 1 && !finished:
				merged++
			}
			src.settle()

			// Again, to the end.
			if err := sync(e, nil); err != nil {
				t.Fatalf("sync after the restart: %v", dbusapi.Message(err))
			}
			if got := sums(t, vol(e)); !subsetOf(want, got) {
				t.Errorf("the sync after the restart left the volume without the new data")
			}
			e.checkNoTemporaries()
			src.settle()
		},
	}
}

// subsetOf reports whether every entry of want is in got.
func subsetOf(want, got map[string]string) bool {
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

// receiveKillOp has the other host send a new snapshot of volume rv to
// the killed butterd each run: in full the first time, then incrementally.
func receiveKillOp() killOp {
	const volume = "rv"
	var src *replPeer
	var addr string            // the killed butterd's endpoint
	var snap, sum, uuid string // the run's snapshot, its data and UUID on the sender
	var sendErr error          // what the run's send job ended with
	send := func() error {
		id, _, err := src.c.SendSnapshot("recv", snap, 0, false)
		if err != nil {
			return err
		}
		return src.waitJob(id)
	}
	have := func(e *killEnv, sums map[string]string, finished bool) {
		if e.checkMade("snapshot", sums, snap, sum, finished) {
			if info := getInfo(e.t, filepath.Join(e.root, "snapshots", snap)); info.ReceivedUUID != uuid {
				e.t.Errorf("received snapshot %s has received UUID %q, want the sender's UUID %s", snap, info.ReceivedUUID, uuid)
			}
		}
	}
	return killOp{
		name:   "receive",
		fsSize: "512M",
		kills:  16, // each round sends twice
		boot:   func(e *killEnv) { src, addr = startReplPeer(e, "512M") },
		setup: func(e *killEnv) {
			link(src.killEnv, e, addr, "recv", volume, dbusapi.RemotePush)
			if _, err := src.c.CreateVolume(volume, nil); err != nil {
				e.t.Fatalf("CreateVolume %s on the sender: %v", volume, dbusapi.Message(err))
			}
		},
		prepare: func(e *killEnv, i int) {
			// The snapshots but the newest (the next parent) go: each
			// state sums every snapshot.
			e.removeSnapshots(volume, 1)
			src.removeSnapshots(volume, 1)
			// New data in place: the snapshots do not grow run after run.
			data := make([]byte, 8<<20)
			for k := range data {
				data[k] = byte(e.rng.Uint32())
			}
			vol := filepath.Join(src.root, "volumes", volume)
			must(e.t, os.WriteFile(filepath.Join(vol, "data"), data, 0o644))
			must(e.t, os.WriteFile(filepath.Join(vol, fmt.Sprintf("f%d", i%8)), data[:4<<10], 0o600))
			var err error
			if snap, err = src.c.CreateSnapshot(volume); err != nil {
				e.t.Fatalf("CreateSnapshot %s on the sender: %v", volume, dbusapi.Message(err))
			}
			path := filepath.Join(src.root, "snapshots", snap)
			sum, uuid = treeSum(e.t, path), getInfo(e.t, path).UUID
		},
		run: func(e *killEnv, i int) *flight {
			return fly(func() error { sendErr = send(); return sendErr })
		},
		check: func(e *killEnv, i int, before, after killState, finished bool) {
			t := e.t
			e.keptExcept(before, after, nil, []string{snap})
			have(e, after.snapshots, finished)
			if want := fmt.Sprintf("send of %q to recv", snap); sendErr != nil && !strings.Contains(sendErr.Error(), want) {
				t.Errorf("the send failed with %q: want it to say %q", sendErr, want)
			}
			src.settle()

			// Again, to the end.
			if err := send(); err != nil {
				t.Fatalf("send after the restart: %v", dbusapi.Message(err))
			}
			have(e, treeSums(t, filepath.Join(e.root, "snapshots")), true)
			e.checkNoTemporaries()
			src.settle()
		},
	}
}
