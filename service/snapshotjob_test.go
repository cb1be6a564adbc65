package service

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// snapshotJobStore is a store with two volumes, groups, jobs and the fake
// engine; failed jobs land in failed.
func snapshotJobStore(t *testing.T, f *fakeEngine) (s *Store, failed chan Job) {
	t.Helper()
	s, _ = groupStore(t, "v1", "v2")
	failed = make(chan Job, 10)
	s.cfg.Containers = f
	s.cfg.JobFailed = func(j Job) { failed <- j }
	if err := s.loadJobs(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.WaitJobs(context.Background()) })
	return s, failed
}

// A group or project snapshot that cannot even find its volumes leaves a
// failed job (history, JobFailed); a typo in a volume or group name does
// not.
func TestFailedTargetRecorded(t *testing.T) {
	f := &fakeEngine{}
	s, failed := snapshotJobStore(t, f)
	if _, err := s.SetGroup("app", []string{"v1", "v2"}); err != nil {
		t.Fatal(err)
	}
	delete(s.volumes, "v2") // removed since

	want := func(target, errPart string) {
		t.Helper()
		select {
		case j := <-failed:
			if j.Kind != "snapshot" || j.Target != target || j.State != JobFailed || !strings.Contains(j.Error, errPart) {
				t.Errorf("failed job %+v, want a snapshot of %s failing with %q", j, target, errPart)
			}
		default:
			t.Errorf("no failed job recorded for %s", target)
		}
	}
	if _, err := s.StartSnapshot(SnapshotRequest{Group: "app"}); err == nil || !strings.Contains(err.Error(), `"v2"`) {
		t.Errorf("group with a removed volume: %v", err)
	}
	want("group:app", `"v2"`)
	if _, err := s.StartSnapshot(SnapshotRequest{Project: "shop"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("project without volumes: %v", err)
	}
	want("project:shop", "has no butterd volume")
	f.listErr = errors.New("daemon on fire")
	if _, err := s.StartSnapshot(SnapshotRequest{Project: "shop"}); err == nil {
		t.Error("project snapshot with Docker failing: no error")
	}
	want("project:shop", "daemon on fire")

	for _, req := range []SnapshotRequest{{Volumes: []string{"nosuch"}}, {Group: "a@b"}, {Group: "app", Project: "shop"}} {
		if _, err := s.StartSnapshot(req); err == nil {
			t.Errorf("%+v: no error", req)
		}
	}
	if _, err := s.SnapshotVolume("nosuch"); !errors.Is(err, ErrNoSuchVolume) {
		t.Errorf("snapshot of a missing volume: %v", err)
	}
	if len(failed) != 0 || len(s.ListJobs()) != 3 {
		t.Errorf("jobs %+v: want the three failed target lookups alone", s.ListJobs())
	}
}

// A container engine that accepts calls but never answers fails the
// snapshot with a clear error instead of holding it (and every other one)
// for ever.
func TestEngineThatNeverAnswers(t *testing.T) {
	defer func(d time.Duration) { dockerTimeout = d }(dockerTimeout)
	dockerTimeout = 20 * time.Millisecond
	f := &fakeEngine{block: true}
	s, failed := snapshotJobStore(t, f)
	_, err := s.SnapshotVolume("v1")
	if err == nil || !strings.Contains(err.Error(), "did not answer") || !strings.Contains(err.Error(), "DOCKER_HOST") {
		t.Errorf("snapshot with a silent engine: %v", err)
	}
	if j := <-failed; j.Kind != "snapshot" || !strings.Contains(j.Error, "did not answer") {
		t.Errorf("failed job %+v", j)
	}
	if _, err := s.StartSnapshot(SnapshotRequest{Project: "shop"}); err == nil || !strings.Contains(err.Error(), "did not answer") {
		t.Errorf("project snapshot with a silent engine: %v", err)
	}
}

// The volume locks are taken before the pauses: no container waits
// paused for another operation on its volume.
func TestConsistentLocksBeforePausing(t *testing.T) {
	f := &fakeEngine{containers: []Container{
		container("db", "running", "butterd.action=pause"),
		container("web", "running", "butterd.action=stop"),
	}}
	s := quiesceStore(t, f)
	locked := map[string]bool{}
	f.onCall = func(call string) {
		s.locks.mu.Lock()
		defer s.locks.mu.Unlock()
		locked[call] = s.locks.m["v1"] != nil
	}
	if _, err := s.consistently(context.Background(), []string{"v1"}, f.snapshot(nil)); err != nil {
		t.Fatal(err)
	}
	for call, want := range map[string]bool{"stop web -t 10s": false, "pause db": true, "snapshot": true, "unpause db": true, "start web": false} {
		if locked[call] != want {
			t.Errorf("volume lock held during %q: %v, want %v", call, locked[call], want)
		}
	}
}

// A project restore keeps the project's volumes butterd lost (it brings
// them back); a snapshot needs them all to exist.
func TestProjectRestoreKeepsRemovedVolumes(t *testing.T) {
	c := container("app", "running", LabelComposeProject+"=shop")
	c.Volumes = []string{"v1", "gone"}
	s, _ := snapshotJobStore(t, &fakeEngine{containers: []Container{c}})
	_, vols, err := s.resolveTarget(context.Background(), SnapshotRequest{Project: "shop"}, false)
	if err != nil || !slices.Equal(vols, []string{"gone", "v1"}) {
		t.Errorf("restore target %q %v, want gone and v1", vols, err)
	}
	_, vols, err = s.resolveTarget(context.Background(), SnapshotRequest{Project: "shop"}, true)
	if err != nil || !slices.Equal(vols, []string{"v1"}) {
		t.Errorf("snapshot target %q %v, want v1", vols, err)
	}
}

// A replicate job quiesces the containers using its volume as a snapshot
// job does: here the pre command refuses, so nothing is snapshotted nor
// sent, and the job says why.
func TestReplicateQuiesces(t *testing.T) {
	f := &fakeEngine{
		containers: []Container{container("db", "running", "butterd.action=pause", "butterd.pre=checkpoint")},
		exitCodes:  map[string]int{"checkpoint": 1},
	}
	s, failed := snapshotJobStore(t, f)
	if _, err := s.ReplicateVolume("backup.example", "v1", SendJobOptions{}); err != nil {
		t.Fatal(err)
	}
	j := <-failed
	if j.Kind != "replicate" || !strings.Contains(j.Error, `pre command of container "db" failed`) || len(j.Containers) != 1 {
		t.Errorf("replicate job %+v: want it failed on the pre command, the container reported", j)
	}
	wantCalls(t, f, "list v1", "exec db checkpoint")
}

// A volume removed while its snapshot starts is an error of the call
// alone, as a name that never existed: no failed job.
func TestSnapshotOfVolumeRemovedMeanwhile(t *testing.T) {
	f := &fakeEngine{}
	s, _ := snapshotJobStore(t, f)
	f.onCall = func(string) {
		s.mu.Lock()
		delete(s.volumes, "v1")
		s.mu.Unlock()
	}
	if _, err := s.SnapshotVolume("v1"); !errors.Is(err, ErrNoSuchVolume) {
		t.Errorf("snapshot of a volume removed meanwhile: %v", err)
	}
	if jobs := s.ListJobs(); len(jobs) != 0 {
		t.Errorf("jobs %+v, want none", jobs)
	}
}
