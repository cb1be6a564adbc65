package tests

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"butterd/service"
)

// A group restore is one more multi-step operation of crash_test.go: at
// each step, a failure and a kill leave every volume of the group with its
// old data (and no safety snapshot), or every one restored (each with its
// safety snapshot); the volume the restore brings back (vc, removed after
// the group snapshot) exists exactly when the others are restored.
func init() { crashOps = append(crashOps, restoreGroupCrashOp) }

var restoreGroupCrashOp = crashOp{
	name: "restore-group",
	steps: []string{"tmp-created va", "safety-created va", "tmp-created vb", "safety-created vb", "tmp-created vc",
		"switched va", "switched vb", "switched vc", "committed", "old-deleted va", "old-deleted vb"},
	forward: map[string]bool{"committed": true, "old-deleted va": true, "old-deleted vb": true},
	setup: func(t *testing.T, s *service.Store, root string) {
		groupSnapshotted(t, s, "grp", "va", "vb", "vc")
		for _, v := range []string{"va", "vb"} {
			writeFile(t, filepath.Join(root, "volumes", v, "f"), "current")
		}
		_, err := s.RemoveVolume("vc", service.RemoveOptions{NoFinalSnapshot: true})
		must(t, err)
	},
	run: func(s *service.Store) error {
		_, err := s.RestoreGroup(context.Background(), "grp", "", "", false)
		return err
	},
	check: func(t *testing.T, s *service.Store, root string, finished bool) {
		want := map[bool]string{false: "current", true: "snapshotted"}[finished]
		for _, v := range []string{"va", "vb"} {
			if got := readFile(t, filepath.Join(root, "volumes", v, "f")); got != want {
				t.Fatalf("volume %s holds %q, want %q (finished: %v)", v, got, want, finished)
			}
			snaps := snapshotNames(t, s, v)
			if !finished {
				if len(snaps) != 1 {
					t.Fatalf("rolled back: snapshots of %s %v, want the group snapshot alone", v, snaps)
				}
				continue
			}
			if len(snaps) != 2 || readFile(t, filepath.Join(root, "snapshots", snaps[1], "f")) != "current" {
				t.Fatalf("finished: snapshots of %s %v, want the group snapshot and a safety snapshot holding the replaced data", v, snaps)
			}
		}
		_, err := s.GetVolume("vc")
		if finished != (err == nil) {
			t.Fatalf("volume vc (removed before the restore): %v, finished %v", err, finished)
		}
		if finished && readFile(t, filepath.Join(root, "volumes/vc/f")) != "snapshotted" {
			t.Fatalf("volume vc not restored")
		}
	},
}

// groupSnapshotted makes volumes holding "snapshotted" in f, and group
// name of them with one snapshot; it returns the snapshots.
func groupSnapshotted(t *testing.T, s *service.Store, name string, volumes ...string) []string {
	t.Helper()
	for _, v := range volumes {
		vol, _, err := s.CreateVolume(v, service.CreateOptions{})
		must(t, err)
		writeFile(t, filepath.Join(vol.Path, "f"), "snapshotted")
	}
	_, err := s.SetGroup(name, volumes)
	must(t, err)
	res, err := s.SnapshotConsistent(context.Background(), volumes)
	must(t, err)
	return res.Snapshots
}

func TestGroupSnapshotOneTimestamp(t *testing.T) {
	s, _ := openStore(t)
	snaps := groupSnapshotted(t, s, "grp", "b1", "a1", "c1")
	if len(snaps) != 3 {
		t.Fatalf("snapshots %q, want one per volume", snaps)
	}
	_, stamp, _ := strings.Cut(snaps[0], "@")
	for i, v := range []string{"a1", "b1", "c1"} {
		if snaps[i] != v+"@"+stamp {
			t.Errorf("snapshot %q, want %s@%s: one timestamp for all", snaps[i], v, stamp)
		}
	}
	g, err := s.GetGroup("grp")
	if err != nil || !slices.Equal(g.Volumes, []string{"a1", "b1", "c1"}) {
		t.Errorf("group grp: %v %v", g, err)
	}
}

func TestGroupRestore(t *testing.T) {
	s, root := openStore(t)
	first := groupSnapshotted(t, s, "grp", "a1", "b1")
	_, stamp1, _ := strings.Cut(first[0], "@")
	writeFile(t, filepath.Join(root, "volumes/a1/f"), "second")
	writeFile(t, filepath.Join(root, "volumes/b1/f"), "second")
	res, err := s.SnapshotConsistent(context.Background(), []string{"a1", "b1"})
	must(t, err)
	_, stamp2, _ := strings.Cut(res.Snapshots[0], "@")
	// A snapshot of one volume alone is no group timestamp.
	writeFile(t, filepath.Join(root, "volumes/a1/f"), "third")
	_, err = s.CreateSnapshot("a1")
	must(t, err)
	writeFile(t, filepath.Join(root, "volumes/a1/f"), "current")

	got, err := s.RestoreGroup(context.Background(), "grp", "", "", false)
	if err != nil || got.Timestamp != stamp2 || len(got.Volumes) != 2 {
		t.Fatalf("restore of grp: %+v %v, want timestamp %s (the newest both volumes have)", got, err, stamp2)
	}
	if a, b := readFile(t, filepath.Join(root, "volumes/a1/f")), readFile(t, filepath.Join(root, "volumes/b1/f")); a != "second" || b != "second" {
		t.Errorf("after restoring %s: a1 %q, b1 %q", stamp2, a, b)
	}
	safety := got.Volumes[0].Safety
	if safety == "" || readFile(t, filepath.Join(root, "snapshots", safety, "f")) != "current" {
		t.Errorf("safety snapshot %q of a1 does not hold the replaced data", safety)
	}

	if _, err := s.RestoreGroup(context.Background(), "grp", "", stamp1, false); err != nil {
		t.Fatal(err)
	}
	if a := readFile(t, filepath.Join(root, "volumes/a1/f")); a != "snapshotted" {
		t.Errorf("after restoring %s: a1 %q", stamp1, a)
	}

	// A timestamp one volume lacks is refused, naming what is missing;
	// nothing changes.
	_, stamp3, _ := strings.Cut(snapshotNames(t, s, "a1")[2], "@")
	_, err = s.RestoreGroup(context.Background(), "grp", "", stamp3, false)
	if !errors.Is(err, service.ErrNoSuchSnapshot) || !strings.Contains(err.Error(), "b1@"+stamp3+" missing") {
		t.Errorf("restore to a timestamp b1 lacks: %v", err)
	}
	// A volume in use is refused unless forced.
	_, err = s.Mount("b1", "m1")
	must(t, err)
	_, err = s.RestoreGroup(context.Background(), "grp", "", "", false)
	if !errors.Is(err, service.ErrInUse) || !strings.Contains(err.Error(), `"b1" is in use`) {
		t.Errorf("restore with b1 mounted: %v", err)
	}
	if a := readFile(t, filepath.Join(root, "volumes/a1/f")); a != "snapshotted" {
		t.Errorf("a refused restore changed a1: %q", a)
	}
	if _, err := s.RestoreGroup(context.Background(), "grp", "", "", true); err != nil {
		t.Errorf("forced restore: %v", err)
	}
	if _, err := s.RestoreGroup(context.Background(), "nosuch", "", "", false); !errors.Is(err, service.ErrNotFound) {
		t.Errorf("restore of an unknown group: %v", err)
	}
	if l := leftovers(t, root); len(l) != 0 {
		t.Errorf("leftovers: %v", l)
	}
}
