package service

import (
	"maps"
	"path/filepath"
	"slices"
	"sync"
)

// metaFile is what butterd knows about volumes and snapshots beyond what
// BTRFS holds: per-volume settings and which snapshots are restore safety
// snapshots. It is small, read at start and rewritten atomically on change.
type metaFile struct {
	mu   sync.Mutex
	path string
	data metaData
}

type metaData struct {
	// Safety lists the safety snapshots taken by restores.
	Safety map[string]bool `json:"safety,omitempty"`
	// NoFinalSnapshot lists volumes whose removal takes no final snapshot.
	NoFinalSnapshot map[string]bool `json:"no_final_snapshot,omitempty"`
	// Pinned lists snapshots that purge never deletes.
	Pinned map[string]bool `json:"pinned,omitempty"`
}

func (s *Store) loadMeta() error {
	s.meta.path = filepath.Join(s.stateDir, "meta.json")
	_, err := readJSON(s.meta.path, &s.meta.data)
	return err
}

func (m *metaFile) isSafety(snap string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.data.Safety[snap]
}

func (m *metaFile) isPinned(snap string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.data.Pinned[snap]
}

func (m *metaFile) finalSnapshot(volume string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return !m.data.NoFinalSnapshot[volume]
}

// update changes the data with fn and writes it; on a write error the
// change is undone in memory too.
func (m *metaFile) update(fn func(d *metaData)) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	old := m.data.clone()
	fn(&m.data)
	if maps.Equal(old.Safety, m.data.Safety) && maps.Equal(old.NoFinalSnapshot, m.data.NoFinalSnapshot) &&
		maps.Equal(old.Pinned, m.data.Pinned) {
		return nil // nothing changed: no write
	}
	if err := writeJSON(m.path, m.data); err != nil {
		m.data = old
		return err
	}
	return nil
}

func (d metaData) clone() metaData {
	return metaData{Safety: maps.Clone(d.Safety), NoFinalSnapshot: maps.Clone(d.NoFinalSnapshot), Pinned: maps.Clone(d.Pinned)}
}

func setFlag(m *map[string]bool, key string, on bool) {
	if *m == nil {
		*m = map[string]bool{}
	}
	if on {
		(*m)[key] = true
	} else {
		delete(*m, key)
	}
}

// dropStaleSettings forgets, at start, the settings of volumes that do
// not exist (left by a create or removal that was cut short), so that a
// later volume of the same name does not inherit them.
func (s *Store) dropStaleSettings() {
	var stale []string
	s.meta.mu.Lock()
	for name := range s.meta.data.NoFinalSnapshot {
		if _, ok := s.volumes[name]; !ok {
			stale = append(stale, name)
		}
	}
	s.meta.mu.Unlock()
	if len(stale) == 0 {
		return
	}
	slices.Sort(stale)
	err := s.meta.update(func(d *metaData) {
		for _, name := range stale {
			setFlag(&d.NoFinalSnapshot, name, false)
		}
	})
	if err != nil {
		s.log.Warn("settings of volumes that do not exist not dropped; a new volume of such a name gets its own anyway", "volumes", stale, "error", err)
		return
	}
	s.log.Warn("settings of volumes that do not exist dropped (finalsnapshot=false)", "volumes", stale)
}
