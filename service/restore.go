package service

import (
	"fmt"
	"sort"
	"strings"

	"butterd/btrfs"
)

// Restored says what a restore did.
type Restored struct {
	Snapshot string // the snapshot restored
	Volume   string // the volume it now is
	Safety   string // the snapshot keeping the replaced data ("" when the volume was new)
}

// Restore makes a volume from a snapshot. source is a snapshot, or a volume
// meaning its latest snapshot (never a restore's safety snapshot); target
// defaults to the snapshot's volume. An existing target is kept as a safety
// snapshot first, then switched atomically; it must not be mounted unless
// force is set.
func (s *Store) Restore(source, target string, force bool) (Restored, error) {
	if err := validateSource(source); err != nil {
		return Restored{}, err
	}
	srcVolume, _, _ := strings.Cut(source, "@")
	if target == "" {
		target = srcVolume
	}
	if err := ValidateName(target); err != nil {
		return Restored{}, err
	}
	defer s.lockVolumes(srcVolume, target)()

	snap, err := s.restoreSource(source)
	if err != nil {
		return Restored{}, err
	}
	res := Restored{Snapshot: snap, Volume: target}
	cur, err := s.GetVolume(target)
	existed := err == nil
	if existed && cur.Mounts > 0 && !force {
		return res, errorf(ErrInUse, "volume %q is in use (%s): stop the containers using it, or force the restore", target, mountCount(cur.Mounts))
	}

	in := &intent{Op: opRestore, Volume: target, Source: snap, Existed: existed}
	if existed {
		in.Safety = s.newSnapshotName(target)
	}
	what := fmt.Sprintf("restore of %q into volume %q", snap, target)
	if err := s.beginIntent(in); err != nil {
		return res, s.noSpace(what, err)
	}
	err = s.restoreSteps(in)
	rerr := s.resolve(in)
	s.refreshAfter(in)
	if isSubvolume(s.volumePath(target)) && s.volumeUUIDIs(target, in.TmpUUID) {
		res.Safety = in.Safety
		s.log.Info("volume restored", "volume", target, "snapshot", snap, "safety_snapshot", in.Safety)
		return res, nil
	}
	if err == nil {
		err = rerr
	}
	return res, s.noSpace(what, err)
}

func (s *Store) restoreSteps(in *intent) error {
	tmp, target := in.tmpPath(s), s.volumePath(in.Volume)
	if err := btrfs.Snapshot(s.snapshotPath(in.Source), tmp, false); err != nil {
		return err
	}
	if err := s.recordTmpUUID(in); err != nil {
		return err
	}
	if err := s.step(opRestore, "tmp-created"); err != nil {
		return err
	}
	if !in.Existed {
		if err := btrfs.RenameNoReplace(tmp, target); err != nil {
			return err
		}
		return s.step(opRestore, "renamed")
	}
	if err := s.meta.update(func(d *metaData) { setFlag(&d.Safety, in.Safety, true) }); err != nil {
		return err
	}
	if err := s.snapshotSubvolume(target, s.snapshotPath(in.Safety), true); err != nil {
		return err
	}
	if err := s.step(opRestore, "safety-created"); err != nil {
		return err
	}
	if err := btrfs.Exchange(tmp, target); err != nil {
		return err
	}
	if err := s.step(opRestore, "exchanged"); err != nil {
		return err
	}
	if err := btrfs.Delete(tmp); err != nil {
		return err
	}
	return s.step(opRestore, "old-deleted")
}

// refreshAfter brings the index in line with the disk for the volume and
// safety snapshot of a resolved operation.
func (s *Store) refreshAfter(in *intent) {
	if isSubvolume(s.volumePath(in.Volume)) {
		s.addVolume(in.Volume)
		if !in.Existed {
			s.emit(VolumeNew, in.Volume)
		}
	}
	if in.Safety == "" {
		return
	}
	if isSubvolume(s.snapshotPath(in.Safety)) {
		s.addSnapshot(in.Safety)
		return
	}
	s.mu.Lock()
	delete(s.snapshots, in.Safety)
	s.mu.Unlock()
}

func (s *Store) volumeUUIDIs(volume, uuid string) bool {
	if uuid == "" {
		return false
	}
	info, err := btrfs.GetInfo(s.volumePath(volume))
	return err == nil && info.UUID == uuid
}

// restoreSource resolves a snapshot name, or a volume name to its latest
// snapshot.
func (s *Store) restoreSource(source string) (string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if strings.Contains(source, "@") {
		if _, ok := s.snapshots[source]; !ok {
			return "", noSuchSnapshot(source)
		}
		return source, nil
	}
	e, ok := s.latestLocked(source)
	if !ok {
		return "", &kindError{kinds: []error{ErrNotFound, ErrNoSuchSnapshot},
			msg: fmt.Sprintf("volume %q has no snapshot to restore (restore's safety snapshots are not used): name a snapshot instead", source)}
	}
	return e.name, nil
}

// Clone makes a new volume NEW as a writable snapshot of volume VOL.
func (s *Store) Clone(volume, newName string) (Volume, error) {
	if err := ValidateName(volume); err != nil {
		return Volume{}, err
	}
	if err := ValidateName(newName); err != nil {
		return Volume{}, err
	}
	if volume == newName {
		return Volume{}, errorf(ErrInvalidArg, "cannot clone volume %q onto itself: name a new volume", volume)
	}
	defer s.lockVolumes(volume, newName)()
	if _, err := s.GetVolume(volume); err != nil {
		return Volume{}, err
	}
	if _, err := s.GetVolume(newName); err == nil {
		return Volume{}, errorf(ErrExists, "volume %q already exists: pick another name or remove it first", newName)
	}
	if err := s.snapshotSubvolume(s.volumePath(volume), s.volumePath(newName), false); err != nil {
		if isExist(err) {
			return Volume{}, errorf(ErrExists, "%q already exists on disk: pick another name", s.volumePath(newName))
		}
		return Volume{}, s.noSpace(fmt.Sprintf("clone of volume %q into %q", volume, newName), err)
	}
	s.log.Info("volume cloned", "volume", volume, "clone", newName)
	v := s.addVolume(newName)
	s.emit(VolumeNew, newName)
	return v, nil
}

// lockVolumes locks several volume names in a fixed order.
func (s *Store) lockVolumes(names ...string) func() {
	sorted := append([]string(nil), names...)
	sort.Strings(sorted)
	var unlocks []func()
	for i, n := range sorted {
		if i > 0 && n == sorted[i-1] {
			continue
		}
		unlocks = append(unlocks, s.locks.lock(n))
	}
	return func() {
		for i := len(unlocks) - 1; i >= 0; i-- {
			unlocks[i]()
		}
	}
}
