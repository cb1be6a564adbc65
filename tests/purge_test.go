package tests

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"butterd/btrfs"
	"butterd/service"
	"butterd/tests/testenv"
)

// purgeStore makes volume "db" with snapshots taken (by name) at the given
// ages before now, and opens a store on it.
func purgeStore(t *testing.T, now time.Time, ages ...time.Duration) (*service.Store, string, []string) {
	t.Helper()
	root := filepath.Join(testenv.Btrfs(t), "root")
	s := openStoreAt(t, root, service.Config{})
	v, _, err := s.CreateVolume("db", service.CreateOptions{})
	must(t, err)
	var names []string
	for _, age := range ages {
		name := service.SnapshotName("db", now.Add(-age))
		must(t, btrfs.Snapshot(v.Path, filepath.Join(root, "snapshots", name), true))
		names = append(names, name)
	}
	s.Close()
	return openStoreAt(t, root, service.Config{}), root, names
}

func planNames(entries []service.PurgeEntry) []string {
	var out []string
	for _, e := range entries {
		out = append(out, e.Name)
	}
	slices.Sort(out)
	return out
}

func TestPurgeDeletesWhatThePatternSays(t *testing.T) {
	now := time.Now()
	h := time.Hour
	s, _, names := purgeStore(t, now, 30*time.Minute, 2*h, 3*h, 50*h, 51*h)
	// 1h:1d: keep under 1h; between 1h and 1d keep the oldest per hour
	// bucket; delete from 1d on (except the newest, here the 30 min one).
	plan, err := s.PlanPurge("db", "1h:1d", now)
	must(t, err)
	if got, want := planNames(plan.Delete), []string{names[4], names[3]}; !slices.Equal(got, want) {
		t.Fatalf("dry run deletes %v, want %v", got, want)
	}
	if len(snapshotNames(t, s, "db")) != 5 {
		t.Fatal("a dry run deleted something")
	}
	// Evaluated a day later, the 2h and 3h ones are past 1d too.
	later, err := s.PlanPurge("db", "1h:1d", now.Add(24*h))
	must(t, err)
	if len(later.Delete) != 4 {
		t.Fatalf("at +1d the plan deletes %v, want all but the newest", planNames(later.Delete))
	}

	// Pinned and in-use snapshots are kept.
	must(t, s.Pin(names[3], true))
	job, _, err := s.Purge("db", "1h:1d")
	must(t, err)
	j := waitJob(t, s, job.ID)
	if j.State != service.JobDone {
		t.Fatalf("purge job: %+v", j)
	}
	left := snapshotNames(t, s, "db")
	want := []string{names[3], names[2], names[1], names[0]}
	slices.Sort(want)
	slices.Sort(left)
	if !slices.Equal(left, want) {
		t.Fatalf("after purge: %v, want %v (the pinned one kept)", left, want)
	}
	// A second purge at the same moment deletes nothing.
	again, _ := s.PlanPurge("db", "1h:1d", now)
	if len(again.Delete) != 0 {
		t.Fatalf("second purge would delete %v", planNames(again.Delete))
	}
}

func TestPurgeRechecksProtectionsBeforeEachDelete(t *testing.T) {
	now := time.Now()
	s, root, names := purgeStore(t, now, time.Hour, 50*time.Hour, 51*time.Hour)
	s.Close()
	// The clock is read when the purge is asked for (1), when its job is
	// made (2) and started (3), when it plans (4), then before each
	// deletion: the old snapshots are pinned after the plan, before
	// anything is deleted. Reads added or removed make this test fail
	// (pinned before the plan, or after the deletions), not pass.
	var (
		store *service.Store
		calls atomic.Int32
		pin   sync.Once
	)
	store = openStoreAt(t, root, service.Config{Now: func() time.Time {
		if calls.Add(1) >= 5 {
			pin.Do(func() {
				must(t, store.Pin(names[1], true))
				must(t, store.Pin(names[2], true))
			})
		}
		return now
	}})
	calls.Store(0)
	job, _, err := store.Purge("db", "1d")
	must(t, err)
	j := waitJob(t, store, job.ID)
	if j.State != service.JobDone {
		t.Fatalf("purge job: %+v", j)
	}
	if left := snapshotNames(t, store, "db"); len(left) != 3 {
		t.Fatalf("left %v: the snapshots pinned during the purge were deleted", left)
	}
	if !strings.Contains(j.Summary, "protected since the plan") || !strings.Contains(j.Summary, names[1]+" (pinned)") {
		t.Fatalf("summary %q does not say which were kept", j.Summary)
	}
}

func TestPurgeOldSpellingWarns(t *testing.T) {
	s, _, _ := purgeStore(t, time.Now(), time.Hour, 50*time.Hour)
	job, warnings, err := s.Purge("db", "1d:1d")
	must(t, err)
	if len(warnings) != 1 || !strings.Contains(warnings[0], `read as "1d"`) {
		t.Fatalf("warnings %q", warnings)
	}
	j := waitJob(t, s, job.ID)
	if j.State != service.JobDone || !strings.Contains(j.Summary, warnings[0]) || !strings.Contains(j.Summary, "deleted 1 snapshot(s)") {
		t.Fatalf("purge job %+v: the summary says neither what it did nor the warning", j)
	}
}

func TestPurgeWorksWithoutTheVolume(t *testing.T) {
	now := time.Now()
	s, _, names := purgeStore(t, now, 10*24*time.Hour, 20*24*time.Hour)
	_, err := s.RemoveVolume("db", service.RemoveOptions{NoFinalSnapshot: true})
	must(t, err)
	j, _, err := s.Purge("db", "1d")
	must(t, err)
	waitJob(t, s, j.ID)
	// "1d" deletes everything a day old, but the newest stays.
	if got := snapshotNames(t, s, "db"); len(got) != 1 || got[0] != names[0] {
		t.Fatalf("left %v, want the newest %s", got, names[0])
	}
}

func TestPurgeSparesSnapshotsAJobUses(t *testing.T) {
	now := time.Now()
	s, _, names := purgeStore(t, now, time.Hour, 50*time.Hour)
	// An export of the old snapshot into a pipe nobody reads keeps running.
	r, w := osPipe(t)
	exp, err := s.ExportSnapshot(names[1], "", w)
	must(t, err)
	plan, err := s.PlanPurge("db", "1d", now)
	must(t, err)
	if len(plan.Delete) != 0 {
		t.Fatalf("purge would delete %v while an export reads it", planNames(plan.Delete))
	}
	must(t, s.CancelJob(exp.ID))
	waitJob(t, s, exp.ID)
	r.Close()
	if _, err := s.PlanPurge("db", "1x", now); !errors.Is(err, service.ErrInvalidArg) {
		t.Fatalf("bad pattern: %v", err)
	}
}

func waitJob(t *testing.T, s *service.Store, id uint32) service.Job {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		if j, err := s.GetJob(id); err == nil && j.Done() {
			return j
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("job %d did not finish", id)
	return service.Job{}
}

func osPipe(t *testing.T) (*os.File, *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	must(t, err)
	t.Cleanup(func() { r.Close() })
	return r, w
}
