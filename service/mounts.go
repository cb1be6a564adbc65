package service

import (
	"path/filepath"
	"sort"
)

// mountTable counts mount references per volume and Docker mount id. It is
// persisted with the boot id, so references survive a butterd restart but
// not a reboot.
type mountTable struct {
	path string
	data mountData
}

type mountData struct {
	BootID string `json:"boot_id"`
	// Mounts maps volume -> mount id -> references.
	Mounts map[string]map[string]int `json:"mounts"`
}

func (m *mountTable) count(volume string) int {
	n := 0
	for _, c := range m.data.Mounts[volume] {
		n += c
	}
	return n
}

func (s *Store) loadMounts() error {
	s.mounts.path = filepath.Join(s.stateDir, "mounts.json")
	var d mountData
	if _, err := readJSON(s.mounts.path, &d); err != nil {
		return err
	}
	if d.BootID != s.cfg.BootID {
		if len(d.Mounts) > 0 {
			s.log.Info("mount references from an earlier boot dropped", "volumes", len(d.Mounts))
		}
		d = mountData{BootID: s.cfg.BootID}
	}
	if d.Mounts == nil {
		d.Mounts = map[string]map[string]int{}
	}
	for vol := range d.Mounts {
		if _, ok := s.volumes[vol]; !ok {
			s.log.Warn("mount references for a volume that no longer exists dropped", "volume", vol)
			delete(d.Mounts, vol)
		}
	}
	s.mounts.data = d
	return nil
}

// MountIDs lists the mount ids holding a volume.
func (s *Store) MountIDs(volume string) []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var ids []string
	for id := range s.mounts.data.Mounts[volume] {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}
