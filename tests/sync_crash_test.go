package tests

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"butterd/service"
	"butterd/service/remote"
	"butterd/tests/testenv"
)

// A butterd killed while it syncs leaves, once restarted, nothing of the
// sync but whole files: no received copy, no staging directory, no journal
// entry. A host killed while it serves a sync has, once restarted, no
// temporary snapshot left.

// syncCrashSteps are the steps at which the syncing process is killed;
// "receiving" is while btrfs receive runs on a stream that stalls,
// "placing" once the first file is in place and the others wait in the
// staging directory.
var syncCrashSteps = []string{"receiving", "dir-created", "received", "safety-created", "placing", "merged"}

func TestSyncCrashAtEachStep(t *testing.T) {
	syncCrashChild(t)
	keys, a := newReplHost(t), newReplHost(t)
	a.serve(t, keys)
	av := syncVolume(t, a, "v1", service.CreateOptions{})
	randomFile(t, filepath.Join(av, "big"), 8<<20)
	put(t, filepath.Join(av, "f"), "from A", time.Now())
	stalling := cutProxy(t, a.addr, 1<<20, true)
	must(t, remote.AddKnownHost(filepath.Join(keys.dir, "known_hosts"), stalling, a.key(t, "host_key").PublicKey(), false))

	for _, step := range syncCrashSteps {
		t.Run(step, func(t *testing.T) {
			root := filepath.Join(testenv.Btrfs(t), "root")
			s := openStoreAt(t, root, service.Config{})
			v, _, err := s.CreateVolume("v1", service.CreateOptions{})
			must(t, err)
			put(t, filepath.Join(v.Path, "f"), "old", time.Now().Add(-time.Hour))
			s.Close()

			addr := a.addr
			if step == "receiving" {
				addr = stalling
			}
			cmd := exec.Command(os.Args[0], "-test.run=^TestSyncCrashAtEachStep$", "-test.v")
			cmd.Env = append(os.Environ(), "BUTTERD_SYNC_CRASH="+strings.Join([]string{"sync", root, step, keys.dir, addr}, "|"))
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("the child was not killed at step %s: %v\n%s", step, err, out)
			}
			waitNoReceive(t, filepath.Join(root, "received"))
			if entries, _ := os.ReadDir(filepath.Join(root, "state", "journal")); len(entries) != 1 {
				t.Fatalf("journal before the restart: %v; want the sync's entry", entries)
			}
			if step == "placing" {
				if tmp, _ := filepath.Glob(filepath.Join(v.Path, ".butterd-sync-*", "*")); len(tmp) == 0 {
					t.Fatalf("no temporary waits in the staging directory before the restart")
				}
			}

			local := &replHost{s: openStoreAt(t, root, service.Config{}), root: root, dir: keys.dir}
			noSyncLeftovers(t, local)
			// Files are placed in name order: "big" first, then "f".
			want := "old"
			if step == "merged" {
				want = "from A"
			}
			if got := readFile(t, filepath.Join(v.Path, "f")); got != want {
				t.Errorf("after the restart f holds %q, want %q", got, want)
			}
			if step == "placing" {
				sameContent(t, av, v.Path, "big")
			}
			syncOK(t, local, "v1", local.dial(t, a))
			sameContent(t, av, v.Path, "big", "f")
			noSyncLeftovers(t, local)
			servedJobsDone(t, a)
			noSyncLeftovers(t, a)
		})
	}
}

// A step failing cleans up at once: the job fails with the failure, and
// a retry goes through.
func TestSyncFailureAtEachStep(t *testing.T) {
	keys, a := newReplHost(t), newReplHost(t)
	a.serve(t, keys)
	av := syncVolume(t, a, "v1", service.CreateOptions{})
	put(t, filepath.Join(av, "e"), "from A", time.Now())
	put(t, filepath.Join(av, "f"), "from A", time.Now())
	for _, step := range syncCrashSteps[1:] {
		t.Run(step, func(t *testing.T) {
			injected := errors.New("injected failure")
			fail := true
			root := filepath.Join(testenv.Btrfs(t), "root")
			local := &replHost{root: root, dir: keys.dir, s: openStoreAt(t, root, service.Config{AfterStep: func(op, st string) error {
				if op == "sync" && st == step && fail {
					return injected
				}
				return nil
			}})}
			lv := syncVolume(t, local, "v1", service.CreateOptions{})
			j := syncJob(t, local, "v1", false, local.dial(t, a))
			if j.State != service.JobFailed || !strings.Contains(j.Error, injected.Error()) {
				t.Fatalf("job %s %q", j.State, j.Error)
			}
			noSyncLeftovers(t, local)
			fail = false
			syncOK(t, local, "v1", local.dial(t, a))
			sameContent(t, av, lv, "e", "f")
			noSyncLeftovers(t, local)
		})
	}
}

func TestSyncServerCrashIsReconciled(t *testing.T) {
	syncCrashChild(t)
	local, a := newReplHost(t), newReplHost(t)
	av := syncVolume(t, a, "v1", service.CreateOptions{})
	put(t, filepath.Join(av, "f"), "from A", time.Now())
	lv := syncVolume(t, local, "v1", service.CreateOptions{})
	a.s.Close()

	// A's endpoint runs in a child, on a listener made here.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	defer l.Close()
	lf, err := l.(*net.TCPListener).File()
	must(t, err)
	defer lf.Close()
	peers := remote.OpenPeers(filepath.Join(a.dir, "peers.json"))
	must(t, peers.Add(remote.Peer{Name: "peer", PublicKey: local.key(t, "client_key").PublicKey(), Pull: true}))
	must(t, remote.AddKnownHost(filepath.Join(local.dir, "known_hosts"), l.Addr().String(), a.key(t, "host_key").PublicKey(), false))
	cmd := exec.Command(os.Args[0], "-test.run=^TestSyncServerCrashIsReconciled$", "-test.v")
	cmd.Env = append(os.Environ(), "BUTTERD_SYNC_CRASH="+strings.Join([]string{"serve", a.root, "snapshotted", a.dir, ""}, "|"))
	cmd.ExtraFiles = []*os.File{lf}
	must(t, cmd.Start())

	j := syncJob(t, local, "v1", false, local.dialAddr(t, l.Addr().String()))
	err = cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("the serving child was not killed: %v", err)
	}
	if j.State != service.JobFailed {
		t.Fatalf("sync from a host that died: %s %q", j.State, j.Error)
	}
	t.Logf("failed as wanted: %s", j.Error)
	noSyncLeftovers(t, local)
	if entries, _ := os.ReadDir(lv); len(entries) != 0 {
		t.Errorf("the volume changed: %v", entries)
	}
	// A left its temporary snapshot and journal entry; its next start
	// deletes them, and its volume is whole.
	if tmp, _ := filepath.Glob(filepath.Join(a.root, "volumes", ".v1.serve-sync-*")); len(tmp) != 1 {
		t.Fatalf("temporary snapshots on A before its restart: %v; want the one it was serving", tmp)
	}
	a.s = openStoreAt(t, a.root, service.Config{})
	noSyncLeftovers(t, a)
	if got := readFile(t, filepath.Join(av, "f")); got != "from A" {
		t.Errorf("A's volume holds %q", got)
	}
}

// syncCrashChild turns the test into the process its parent kills, when
// BUTTERD_SYNC_CRASH says so ("sync|ROOT|STEP|KEYS|ADDR": sync volume v1
// from ADDR; "serve|ROOT|STEP|KEYS|": serve syncs on descriptor 3);
// otherwise it returns at once. It never returns in the child.
func syncCrashChild(t *testing.T) {
	arg := os.Getenv("BUTTERD_SYNC_CRASH")
	if arg == "" {
		return
	}
	parts := strings.Split(arg, "|")
	side, root, step, keys, addr := parts[0], parts[1], parts[2], parts[3], parts[4]
	if side == "serve" {
		s, err := service.Open(service.Config{Root: root, BootID: "boot-1", AfterStep: killAtStep(root, "serve-sync", step)})
		must(t, err)
		l, err := net.FileListener(os.NewFile(3, "listener"))
		must(t, err)
		hostKey, err := remote.LoadOrCreateKey(filepath.Join(keys, "host_key"))
		must(t, err)
		srv := &remote.Server{HostKey: hostKey, Peers: remote.OpenPeers(filepath.Join(keys, "peers.json")), Handler: s.RemoteHandler()}
		err = srv.Serve(context.Background(), l)
		t.Fatalf("step %s not reached: %v", step, err)
	}
	s, err := service.Open(service.Config{Root: root, BootID: "boot-1", AfterStep: killAtStep(root, "sync", step)})
	must(t, err)
	key, err := remote.LoadOrCreateKey(filepath.Join(keys, "client_key"))
	must(t, err)
	c, err := remote.Dial(context.Background(), addr, "butterd", key, filepath.Join(keys, "known_hosts"), remote.Options{})
	must(t, err)
	j, err := s.SyncFrom([]*remote.Client{c}, "v1", false)
	must(t, err)
	j = waitJob(t, s, j.ID)
	t.Fatalf("step %s not reached: job %s %q", step, j.State, j.Error)
}

// killAtStep is the AfterStep hook of a child process that kills itself
// after the step of operation op, or, for the step "receiving", while
// btrfs receive runs (once it has made the subvolume in received/ under
// root), after the step "dir-created".
func killAtStep(root, op, step string) func(op, step string) error {
	kill := func() { syscall.Kill(os.Getpid(), syscall.SIGKILL) }
	want := op
	return func(op, st string) error {
		switch {
		case op != want:
		case st == step:
			kill()
		case step == "receiving" && st == "dir-created":
			go func() {
				for len(receiveRunning(root)) == 0 || !hasEntries(filepath.Join(root, "received")) {
					time.Sleep(5 * time.Millisecond)
				}
				time.Sleep(100 * time.Millisecond)
				kill()
			}()
		}
		return nil
	}
}
