package service

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"butterd/units"
)

func groupStore(t *testing.T, volumes ...string) (*Store, string) {
	t.Helper()
	s, dir := schedStore(t, newFakeSystemd(""), volumes...)
	if err := s.loadGroups(); err != nil {
		t.Fatal(err)
	}
	return s, dir
}

func TestGroupsPersist(t *testing.T) {
	s, _ := groupStore(t, "v1", "v2")
	if _, err := s.SetGroup("app", []string{"v2", "v1", "v2"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetGroup("bad", []string{"v1", "nosuch"}); !errors.Is(err, ErrNoSuchVolume) {
		t.Errorf("group of a missing volume: %v", err)
	}
	if _, err := s.SetGroup("a@b", []string{"v1"}); !errors.Is(err, ErrInvalidName) || err.Error() != `group name "a@b" includes invalid character '@': only [a-zA-Z0-9][a-zA-Z0-9_.-]+ is allowed (no '@', '/', spaces or non-ASCII)` {
		t.Errorf("bad group name: %v", err)
	}
	again := &Store{log: s.log, stateDir: s.stateDir}
	if err := again.loadGroups(); err != nil {
		t.Fatal(err)
	}
	g, err := again.GetGroup("app")
	if err != nil || !slices.Equal(g.Volumes, []string{"v1", "v2"}) {
		t.Errorf("group app read back: %+v %v", g, err)
	}
	if l := again.ListGroups(); len(l) != 1 {
		t.Errorf("groups %+v: the refused ones must not be kept", l)
	}
	if _, err := again.GetGroup("nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown group: %v", err)
	}
	if filepath.Base(s.groups.path) != "groups.json" {
		t.Errorf("groups kept in %s", s.groups.path)
	}
}

// A group's schedule needs the group, goes with it, and is not a
// schedule of the volume of the same name.
func TestGroupSchedules(t *testing.T) {
	s, dir := groupStore(t, "app", "v1")
	sc := units.Schedule{Action: units.ActionSnapshotGroup, Volume: "app", Every: time.Hour}
	if _, err := s.SetSchedule(sc); !errors.Is(err, ErrNotFound) {
		t.Fatalf("schedule of a missing group: %v", err)
	}
	if _, err := s.SetGroup("app", []string{"v1"}); err != nil {
		t.Fatal(err)
	}
	gt, err := s.SetSchedule(sc)
	if err != nil {
		t.Fatal(err)
	}
	vt, err := s.SetSchedule(units.Schedule{Action: units.ActionSnapshot, Volume: "app", Every: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	// A project needs no containers yet.
	if _, err := s.SetSchedule(units.Schedule{Action: units.ActionSnapshotProject, Volume: "shop", Every: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if got := timersOf(s.removeVolumeSchedules("app")); !slices.Equal(got, []string{vt}) {
		t.Errorf("removing volume app removed schedules %q, want only %q", got, vt)
	}
	removed, err := s.RemoveGroup("app")
	if err != nil || !slices.Equal(removed, []string{gt}) {
		t.Errorf("RemoveGroup: %q %v, want %q", removed, err, gt)
	}
	if slices.Contains(unitFiles(t, dir), gt) {
		t.Errorf("timer %s stays after its group went", gt)
	}
}

func TestProjectVolumes(t *testing.T) {
	s, _ := groupStore(t, "v1", "v2")
	shop := func(name string, vols ...string) Container {
		c := container(name, "running", LabelComposeProject+"=shop")
		c.Volumes = vols
		return c
	}
	s.cfg.Containers = &fakeEngine{containers: []Container{shop("web", "v2"), shop("db", "v1", "elsewhere")}}
	target, vols, err := s.resolveTarget(context.Background(), SnapshotRequest{Project: "shop"}, true)
	if err != nil || target != "project:shop" || !slices.Equal(vols, []string{"v1", "v2"}) {
		t.Errorf("project shop: %q %q %v, want its butterd volumes v1 and v2", target, vols, err)
	}
	if _, _, err := s.resolveTarget(context.Background(), SnapshotRequest{Project: "empty"}, true); !errors.Is(err, ErrNotFound) {
		t.Errorf("project without volumes: %v", err)
	}
	if _, _, err := s.resolveTarget(context.Background(), SnapshotRequest{Project: "shop", Volumes: []string{"v1"}}, true); !errors.Is(err, ErrInvalidArg) {
		t.Errorf("project with volumes: %v", err)
	}
	if _, _, err := s.resolveTarget(context.Background(), SnapshotRequest{Project: "shop", Group: "g1"}, true); !errors.Is(err, ErrInvalidArg) {
		t.Errorf("project and group: %v", err)
	}
	s.cfg.Containers = nil
	if _, _, err := s.resolveTarget(context.Background(), SnapshotRequest{Project: "shop"}, true); !errors.Is(err, ErrInvalidArg) {
		t.Errorf("project without Docker: %v", err)
	}
}
