package tests

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"butterd/btrfs"
	"butterd/service"
	"butterd/tests/testenv"
)

// Multi-step operations are interrupted at each step, by a failure (the
// operation cleans up itself) and by SIGKILL (the next start reconciles).
// At no point may the volume's data be gone: afterwards the volume holds
// either the old or the new data, a restore that went through has its safety
// snapshot, and no temporary or journal entry is left.

type crashOp struct {
	name  string
	steps []string
	// forward lists the steps after which the operation is complete.
	forward map[string]bool
	setup   func(t *testing.T, s *service.Store, root string)
	run     func(s *service.Store) error
	check   func(t *testing.T, s *service.Store, root string, finished bool)
}

var crashOps = []crashOp{
	{
		name:    "restore",
		steps:   []string{"tmp-created", "safety-created", "exchanged", "old-deleted"},
		forward: map[string]bool{"exchanged": true, "old-deleted": true},
		setup: func(t *testing.T, s *service.Store, root string) {
			v, _, err := s.CreateVolume("app", service.CreateOptions{})
			must(t, err)
			writeFile(t, filepath.Join(v.Path, "f"), "snapshotted")
			_, err = s.CreateSnapshot("app")
			must(t, err)
			writeFile(t, filepath.Join(v.Path, "f"), "current")
		},
		run: func(s *service.Store) error { _, err := s.Restore("app", "", false); return err },
		check: func(t *testing.T, s *service.Store, root string, finished bool) {
			got := readFile(t, filepath.Join(root, "volumes/app/f"))
			snaps := snapshotNames(t, s, "app")
			if !finished {
				if got != "current" || len(snaps) != 1 {
					t.Fatalf("rolled back: volume holds %q, snapshots %v; want \"current\" and only the first snapshot", got, snaps)
				}
				return
			}
			if got != "snapshotted" || len(snaps) != 2 {
				t.Fatalf("finished: volume holds %q, snapshots %v; want \"snapshotted\" and a safety snapshot", got, snaps)
			}
			safety := filepath.Join(root, "snapshots", snaps[1], "f")
			if readFile(t, safety) != "current" {
				t.Fatalf("safety snapshot %s lacks the replaced data", snaps[1])
			}
			// The safety snapshot is never the latest.
			res, err := s.Restore("app", "", false)
			if err != nil || res.Snapshot != snaps[0] {
				t.Fatalf("next restore used %q, %v; want %q", res.Snapshot, err, snaps[0])
			}
		},
	},
	{
		name:    "restore-new",
		steps:   []string{"tmp-created", "renamed"},
		forward: map[string]bool{"renamed": true},
		setup: func(t *testing.T, s *service.Store, root string) {
			v, _, err := s.CreateVolume("app", service.CreateOptions{})
			must(t, err)
			writeFile(t, filepath.Join(v.Path, "f"), "snapshotted")
			_, err = s.CreateSnapshot("app")
			must(t, err)
		},
		run: func(s *service.Store) error { _, err := s.Restore("app", "copy", false); return err },
		check: func(t *testing.T, s *service.Store, root string, finished bool) {
			_, err := s.GetVolume("copy")
			if !finished {
				if !errors.Is(err, service.ErrNotFound) {
					t.Fatalf("rolled back: volume copy: %v", err)
				}
				return
			}
			if err != nil || readFile(t, filepath.Join(root, "volumes/copy/f")) != "snapshotted" {
				t.Fatalf("finished: volume copy: %v", err)
			}
		},
	},
	{
		name:    "create-nocow",
		steps:   []string{"tmp-created", "nocow-set", "renamed"},
		forward: map[string]bool{"renamed": true},
		setup:   func(t *testing.T, s *service.Store, root string) {},
		run: func(s *service.Store) error {
			_, _, err := s.CreateVolume("pg", service.CreateOptions{NoCOW: true})
			return err
		},
		check: func(t *testing.T, s *service.Store, root string, finished bool) {
			_, err := s.GetVolume("pg")
			if !finished {
				if !errors.Is(err, service.ErrNotFound) {
					t.Fatalf("rolled back: volume pg: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("finished: volume pg: %v", err)
			}
			if on, err := btrfs.NoCOW(filepath.Join(root, "volumes/pg")); !on || err != nil {
				t.Fatalf("finished volume without NOCOW: %v %v", on, err)
			}
		},
	},
}

func TestCrashFailureAtEachStep(t *testing.T) {
	for _, op := range crashOps {
		for _, step := range op.steps {
			t.Run(op.name+"/"+step, func(t *testing.T) {
				root := filepath.Join(testenv.Btrfs(t), "root")
				injected := errors.New("injected failure")
				s := openStoreAt(t, root, service.Config{AfterStep: func(o, st string) error {
					if st == step {
						return injected
					}
					return nil
				}})
				op.setup(t, s, root)
				err := op.run(s)
				finished := op.forward[step]
				if finished && err != nil {
					t.Fatalf("failure after the switch must finish the operation, got %v", err)
				}
				if !finished && !errors.Is(err, injected) {
					t.Fatalf("failure before the switch must be reported, got %v", err)
				}
				op.check(t, s, root, finished)
				if l := leftovers(t, root); len(l) != 0 {
					t.Fatalf("leftovers: %v", l)
				}
			})
		}
	}
}

func TestCrashKillAtEachStep(t *testing.T) {
	self, err := os.Executable()
	must(t, err)
	for _, op := range crashOps {
		for _, step := range op.steps {
			t.Run(op.name+"/"+step, func(t *testing.T) {
				root := filepath.Join(testenv.Btrfs(t), "root")
				s := openStoreAt(t, root, service.Config{})
				op.setup(t, s, root)
				s.Close()

				cmd := exec.Command(self, "-test.run=^$")
				cmd.Env = append(os.Environ(), "BUTTERD_CRASH_ROOT="+root, "BUTTERD_CRASH_OP="+op.name, "BUTTERD_CRASH_STEP="+step)
				out, err := cmd.CombinedOutput()
				var exit *exec.ExitError
				if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
					t.Fatalf("child did not die at step %q: %v\n%s", step, err, out)
				}
				if len(leftovers(t, root)) == 0 {
					t.Fatalf("a kill at %q left no journal entry: nothing to test", step)
				}
				s = openStoreAt(t, root, service.Config{})
				op.check(t, s, root, op.forward[step])
				if l := leftovers(t, root); len(l) != 0 {
					t.Fatalf("leftovers after restart: %v", l)
				}
			})
		}
	}
}

// crashChild runs in the re-executed test binary.
func crashChild(root, opName, step string) error {
	s, err := service.Open(service.Config{Root: root, BootID: "boot-1", AfterStep: func(o, st string) error {
		if st == step {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {}
		}
		return nil
	}})
	if err != nil {
		return err
	}
	for _, op := range crashOps {
		if op.name == opName {
			return op.run(s)
		}
	}
	return fmt.Errorf("unknown op %q (have %s)", opName, strings.Join(opNames(), ", "))
}

func opNames() []string {
	var n []string
	for _, op := range crashOps {
		n = append(n, op.name)
	}
	return n
}
