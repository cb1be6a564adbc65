package service

import (
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"butterd/units"
)

// A group is a named set of volumes snapshotted together, with one
// timestamp, and restored together, all or none. Groups live in
// state/groups.json; a compose project is a group that Docker defines (the
// volumes its containers use), never stored.

// Group is a stored group.
type Group struct {
	Name    string   `json:"name"`
	Volumes []string `json:"volumes"`
}

type groupFile struct {
	mu     sync.Mutex
	path   string
	groups map[string][]string
}

type groupData struct {
	Groups map[string][]string `json:"groups"`
}

func (s *Store) loadGroups() error {
	s.groups.path = filepath.Join(s.stateDir, "groups.json")
	var d groupData
	if _, err := readJSON(s.groups.path, &d); err != nil {
		return err
	}
	s.groups.groups = map[string][]string{}
	for name, vols := range d.Groups {
		ok := validateGroupName("group", name) == nil && len(vols) > 0
		for _, v := range vols {
			ok = ok && ValidateName(v) == nil
		}
		if !ok {
			s.log.Warn("group not understood: left out", "file", s.groups.path, "group", name)
			continue
		}
		s.groups.groups[name] = vols
	}
	return nil
}

// validateGroupName applies the name rule of volumes to a group or
// project name.
func validateGroupName(what, name string) error {
	if err := ValidateName(name); err != nil {
		return errorf(ErrInvalidName, "%s", strings.Replace(err.Error(), "volume name", what+" name", 1))
	}
	return nil
}

// SetGroup makes group name the volumes given, which must exist.
func (s *Store) SetGroup(name string, volumes []string) (Group, error) {
	if err := validateGroupName("group", name); err != nil {
		return Group{}, err
	}
	volumes, err := s.checkVolumes(volumes)
	if err != nil {
		return Group{}, err
	}
	g := &s.groups
	g.mu.Lock()
	defer g.mu.Unlock()
	if slices.Equal(g.groups[name], volumes) {
		return Group{name, volumes}, nil
	}
	next := maps.Clone(g.groups)
	next[name] = volumes
	if err := writeJSON(g.path, groupData{next}); err != nil {
		return Group{}, err
	}
	g.groups = next
	s.log.Info("group set", "group", name, "volumes", volumes)
	return Group{name, volumes}, nil
}

// GetGroup reads a stored group.
func (s *Store) GetGroup(name string) (Group, error) {
	if err := validateGroupName("group", name); err != nil {
		return Group{}, err
	}
	g := &s.groups
	g.mu.Lock()
	defer g.mu.Unlock()
	vols, ok := g.groups[name]
	if !ok {
		return Group{}, errorf(ErrNotFound, "no group %q: 'butterctl snapshot --group %s VOL...' makes it", name, name)
	}
	return Group{name, slices.Clone(vols)}, nil
}

// ListGroups lists the stored groups by name.
func (s *Store) ListGroups() []Group {
	g := &s.groups
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]Group, 0, len(g.groups))
	for _, name := range slices.Sorted(maps.Keys(g.groups)) {
		out = append(out, Group{name, slices.Clone(g.groups[name])})
	}
	return out
}

// RemoveGroup forgets a group and removes its schedules; its volumes and
// snapshots stay. It returns the timers of the schedules removed.
func (s *Store) RemoveGroup(name string) ([]string, error) {
	if _, err := s.GetGroup(name); err != nil {
		return nil, err
	}
	if err := s.forgetGroup(name); err != nil {
		return nil, err
	}
	return timersOf(s.removeSchedules("group", name, s.schedulesOf(name, func(a string) bool { return a == units.ActionSnapshotGroup }))), nil
}

func (s *Store) forgetGroup(name string) error {
	g := &s.groups
	g.mu.Lock()
	defer g.mu.Unlock()
	next := maps.Clone(g.groups)
	delete(next, name)
	if err := writeJSON(g.path, groupData{next}); err != nil {
		return err
	}
	g.groups = next
	s.log.Info("group removed", "group", name)
	return nil
}
