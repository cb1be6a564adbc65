package service

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"butterd/btrfs"
)

// CreateSnapshot takes a read-only snapshot VOLUME@TIMESTAMP of a volume.
func (s *Store) CreateSnapshot(volume string) (Snapshot, error) {
	if err := ValidateName(volume); err != nil {
		return Snapshot{}, err
	}
	defer s.locks.lock(volume)()
	if _, err := s.GetVolume(volume); err != nil {
		return Snapshot{}, err
	}
	return s.snapshotLocked(volume, false)
}

// snapshotLocked snapshots a volume whose lock the caller holds. A safety
// snapshot is marked before it exists, so a crash never leaves one that
// could pass for the latest.
func (s *Store) snapshotLocked(volume string, safety bool) (Snapshot, error) {
	name := s.newSnapshotName(volume)
	what := fmt.Sprintf("snapshot of volume %q", volume)
	if safety {
		if err := s.meta.update(func(d *metaData) { setFlag(&d.Safety, name, true) }); err != nil {
			return Snapshot{}, s.noSpace(what, err)
		}
	}
	if err := s.snapshotSubvolume(s.volumePath(volume), s.snapshotPath(name), true); err != nil {
		if safety {
			s.meta.update(func(d *metaData) { setFlag(&d.Safety, name, false) })
		}
		return Snapshot{}, s.noSpace(what, err)
	}
	return s.addSnapshot(name), nil
}

// newSnapshotName names a snapshot of now, one microsecond later while the
// name is taken.
func (s *Store) newSnapshotName(volume string) string {
	return s.newSnapshotNames([]string{volume})[0]
}

// newSnapshotNames names a snapshot of each volume, all with the time of
// now, or one microsecond later while a name is taken.
func (s *Store) newSnapshotNames(volumes []string) []string {
	t := s.cfg.Now()
	s.mu.RLock()
	defer s.mu.RUnlock()
	names := make([]string, len(volumes))
next:
	for {
		for i, v := range volumes {
			names[i] = SnapshotName(v, t)
			if _, taken := s.snapshots[names[i]]; taken || isSubvolume(s.snapshotPath(names[i])) {
				t = t.Add(time.Microsecond)
				continue next
			}
		}
		return names
	}
}

// snapshotSubvolume snapshots src at dst, refusing when src holds nested
// subvolumes (a snapshot would silently leave their contents out).
func (s *Store) snapshotSubvolume(src, dst string, readonly bool) error {
	nested, err := btrfs.Nested(src)
	if err != nil {
		return err
	}
	if len(nested) > 0 {
		return errorf(ErrInUse, "%q holds nested subvolumes (%s) that a snapshot would leave out: move their data into the volume and delete them", src, strings.Join(nested, ", "))
	}
	return btrfs.Snapshot(src, dst, readonly)
}

func (s *Store) addSnapshot(name string) Snapshot {
	var otime time.Time
	if info, err := btrfs.GetInfo(s.snapshotPath(name)); err == nil {
		otime = info.OTime
	}
	e := newSnapshotEntry(name, otime)
	s.mu.Lock()
	s.snapshots[name] = e
	snap := s.snapshotOf(e)
	s.mu.Unlock()
	s.log.Info("snapshot created", "snapshot", name)
	s.emit(SnapshotNew, name)
	return snap
}

// ListSnapshots lists the snapshots of a volume, or all when volume is "",
// oldest first. A volume that no longer exists may still have snapshots.
func (s *Store) ListSnapshots(volume string) ([]Snapshot, error) {
	if volume != "" {
		if err := ValidateName(volume); err != nil {
			return nil, err
		}
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	entries := s.snapshotsOfLocked(volume)
	out := make([]Snapshot, len(entries))
	for i, e := range entries {
		out[i] = s.snapshotOf(e)
	}
	return out, nil
}

// GetSnapshot answers from memory.
func (s *Store) GetSnapshot(name string) (Snapshot, error) {
	if err := ValidateSnapshotName(name); err != nil {
		return Snapshot{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	e, ok := s.snapshots[name]
	if !ok {
		return Snapshot{}, noSuchSnapshot(name)
	}
	return s.snapshotOf(e), nil
}

// RemoveSnapshot deletes a snapshot.
func (s *Store) RemoveSnapshot(name string) error {
	if err := ValidateSnapshotName(name); err != nil {
		return err
	}
	volume, _, _ := strings.Cut(name, "@")
	defer s.locks.lock(volume)()
	return s.removeSnapshotLocked(name)
}

// removeSnapshotLocked is RemoveSnapshot; callers hold the volume's lock.
func (s *Store) removeSnapshotLocked(name string) error {
	if _, err := s.GetSnapshot(name); err != nil {
		return err
	}
	if j, ok := s.jobUsing(name); ok {
		return errorf(ErrBusy, "snapshot %q is in use by %s job %d: wait for it or cancel it (butterctl cancel %d)", name, j.Kind, j.ID, j.ID)
	}
	if err := btrfs.Delete(s.snapshotPath(name)); err != nil {
		if errors.Is(err, btrfs.ErrNested) {
			return errorf(ErrInUse, "snapshot %q holds nested subvolumes: %v", name, err)
		}
		return fmt.Errorf("remove snapshot %q: %w", name, err)
	}
	s.mu.Lock()
	delete(s.snapshots, name)
	s.mu.Unlock()
	s.emit(SnapshotRemoved, name)
	if err := s.meta.update(func(d *metaData) {
		setFlag(&d.Safety, name, false)
		setFlag(&d.Pinned, name, false)
	}); err != nil {
		s.log.Warn("snapshot markers not cleared", "snapshot", name, "error", err)
	}
	s.log.Info("snapshot removed", "snapshot", name)
	return nil
}

// latestLocked is the newest snapshot of a volume that is not a restore's
// safety snapshot and whose name is VOLUME@TIMESTAMP. Callers hold s.mu.
func (s *Store) latestLocked(volume string) (*snapshotEntry, bool) {
	entries := s.snapshotsOfLocked(volume)
	for i := len(entries) - 1; i >= 0; i-- {
		if e := entries[i]; !e.nameTime.IsZero() && !s.meta.isSafety(e.name) {
			return entries[i], true
		}
	}
	return nil, false
}
