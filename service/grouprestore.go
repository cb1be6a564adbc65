package service

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"butterd/btrfs"
)

// Group restores, all or none. One journal entry lists every volume. The
// restored copies are prepared first, beside the volumes, with a safety
// snapshot of each volume that exists; then each is switched in
// atomically; once all are, the entry is marked committed and the replaced
// data deleted. Until that mark, any failure or crash rolls every volume
// back: the replaced data is switched back in (or, if it went missing, a
// copy of the volume's safety snapshot), copies of new volumes are
// deleted, and so are the safety snapshots. After it, the restore is
// finished.

// GroupRestored says what a group restore did.
type GroupRestored struct {
	Timestamp string     // the timestamp of every snapshot restored
	Volumes   []Restored // one per volume, by name
}

// RestoreGroup restores every volume of a group, or of a compose project,
// to its snapshot VOLUME@TIMESTAMP; an empty timestamp means the newest one
// all the volumes have (restores' safety snapshots aside). Volumes in use
// are refused unless force is set.
func (s *Store) RestoreGroup(ctx context.Context, group, project, timestamp string, force bool) (GroupRestored, error) {
	if group == "" && project == "" {
		return GroupRestored{}, errorf(ErrInvalidArg, "name a group or a compose project to restore")
	}
	_, volumes, err := s.resolveTarget(ctx, SnapshotRequest{Group: group, Project: project}, false)
	if err != nil {
		return GroupRestored{}, err
	}
	name := group + project
	defer s.lockVolumes(volumes...)()

	stamp, err := s.groupTimestamp(name, volumes, timestamp)
	if err != nil {
		return GroupRestored{}, err
	}
	in := &intent{Op: opRestoreGroup, Volume: name}
	var existing []string
	for _, v := range volumes {
		it := groupItem{Volume: v, Source: v + "@" + stamp}
		if cur, err := s.GetVolume(v); err == nil {
			if cur.Mounts > 0 && !force {
				return GroupRestored{}, errorf(ErrInUse, "volume %q is in use (%s): stop the containers using it, or force the restore", v, mountCount(cur.Mounts))
			}
			it.Existed = true
			existing = append(existing, v)
		}
		in.Items = append(in.Items, it)
	}
	safeties := s.newSnapshotNames(existing)
	for i, j := 0, 0; i < len(in.Items); i++ {
		if in.Items[i].Existed {
			in.Items[i].Safety = safeties[j]
			j++
		}
	}
	if err := s.beginIntent(in); err != nil {
		return GroupRestored{}, err
	}
	err = s.groupRestoreSteps(in)
	rerr := s.resolve(in)
	s.refreshGroup(in)
	if !in.Committed {
		if err == nil {
			err = rerr
		}
		return GroupRestored{}, fmt.Errorf("restore of %q to %s rolled back, every volume as it was: %w", name, stamp, err)
	}
	res := GroupRestored{Timestamp: stamp}
	for _, it := range in.Items {
		res.Volumes = append(res.Volumes, Restored{Snapshot: it.Source, Volume: it.Volume, Safety: it.Safety})
	}
	s.log.Info("group restored", "group", name, "timestamp", stamp, "volumes", volumes)
	return res, nil
}

// groupTimestamp checks the timestamp asked for, or finds the newest one
// every volume has a snapshot of.
func (s *Store) groupTimestamp(name string, volumes []string, stamp string) (string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	has := func(v, stamp string) bool {
		e, ok := s.snapshots[v+"@"+stamp]
		return ok && !s.meta.isSafety(e.name)
	}
	if stamp != "" {
		if _, err := parseLocal(stamp); err != nil {
			return "", errorf(ErrInvalidArg, "timestamp %q is not of the form %s", stamp, TimestampLayout)
		}
		var missing []string
		for _, v := range volumes {
			if !has(v, stamp) {
				missing = append(missing, v+"@"+stamp)
			}
		}
		if len(missing) > 0 {
			return "", &kindError{kinds: []error{ErrNotFound, ErrNoSuchSnapshot},
				msg: fmt.Sprintf("%q has no complete snapshot at %s: %s missing", name, stamp, strings.Join(missing, ", "))}
		}
		return stamp, nil
	}
	first := s.snapshotsOfLocked(volumes[0])
	for _, e := range slices.Backward(first) {
		_, stamp, _ := strings.Cut(e.name, "@")
		if e.nameTime.IsZero() || s.meta.isSafety(e.name) {
			continue
		}
		all := true
		for _, v := range volumes[1:] {
			all = all && has(v, stamp)
		}
		if all {
			return stamp, nil
		}
	}
	return "", &kindError{kinds: []error{ErrNotFound, ErrNoSuchSnapshot},
		msg: fmt.Sprintf("the volumes of %q (%s) have no snapshots with one timestamp: take them with 'butterctl snapshot --group' or --project", name, strings.Join(volumes, ", "))}
}

func (in *intent) itemTmp(s *Store, it groupItem) string {
	return filepath.Join(s.volumesDir, "."+it.Volume+"."+in.Op+"-"+in.ID)
}

// groupRestoreSteps prepares every copy, switches each in and commits.
func (s *Store) groupRestoreSteps(in *intent) error {
	for i := range in.Items {
		it := &in.Items[i]
		tmp := in.itemTmp(s, *it)
		if err := btrfs.Snapshot(s.snapshotPath(it.Source), tmp, false); err != nil {
			return err
		}
		info, err := btrfs.GetInfo(tmp)
		if err != nil {
			return err
		}
		it.TmpUUID = info.UUID
		if err := s.saveIntent(in); err != nil {
			return err
		}
		if err := s.step(opRestoreGroup, "tmp-created "+it.Volume); err != nil {
			return err
		}
		if !it.Existed {
			continue
		}
		if err := s.meta.update(func(d *metaData) { setFlag(&d.Safety, it.Safety, true) }); err != nil {
			return err
		}
		if err := s.snapshotSubvolume(s.volumePath(it.Volume), s.snapshotPath(it.Safety), true); err != nil {
			return err
		}
		if err := s.step(opRestoreGroup, "safety-created "+it.Volume); err != nil {
			return err
		}
	}
	for _, it := range in.Items {
		var err error
		if it.Existed {
			err = btrfs.Exchange(in.itemTmp(s, it), s.volumePath(it.Volume))
		} else {
			err = btrfs.RenameNoReplace(in.itemTmp(s, it), s.volumePath(it.Volume))
		}
		if err != nil {
			return err
		}
		if err := s.step(opRestoreGroup, "switched "+it.Volume); err != nil {
			return err
		}
	}
	in.Committed = true
	if err := s.saveIntent(in); err != nil {
		in.Committed = false
		return err
	}
	if err := s.step(opRestoreGroup, "committed"); err != nil {
		return err
	}
	for _, it := range in.Items {
		if !it.Existed {
			continue
		}
		if err := btrfs.Delete(in.itemTmp(s, it)); err != nil {
			return err
		}
		if err := s.step(opRestoreGroup, "old-deleted "+it.Volume); err != nil {
			return err
		}
	}
	return nil
}

// resolveGroupRestore finishes a committed group restore and rolls back
// any other, volume by volume. It reports whether the restore finished.
func (s *Store) resolveGroupRestore(in *intent) (forward bool, err error) {
	for _, it := range in.Items {
		if ValidateName(it.Volume) != nil || ValidateSnapshotName(it.Source) != nil || (it.Safety != "" && ValidateSnapshotName(it.Safety) != nil) {
			return in.Committed, fmt.Errorf("journal entry %s of a group restore names %q, %q, %q: not understood, left alone", in.ID, it.Volume, it.Source, it.Safety)
		}
	}
	var errs []error
	if in.Committed {
		for _, it := range in.Items {
			tmp := in.itemTmp(s, it)
			if !it.Existed || !isSubvolume(tmp) {
				continue
			}
			if !isSubvolume(s.snapshotPath(it.Safety)) {
				errs = append(errs, fmt.Errorf("replaced data of volume %q kept at %q: its safety snapshot %q is missing", it.Volume, tmp, it.Safety))
				continue
			}
			if err := btrfs.Delete(tmp); err != nil {
				errs = append(errs, err)
			}
		}
	} else {
		for _, it := range slices.Backward(in.Items) {
			if err := s.rollBackItem(in, it); err != nil {
				errs = append(errs, fmt.Errorf("volume %q: %w", it.Volume, err))
			}
		}
	}
	if len(errs) > 0 {
		return in.Committed, errors.Join(errs...)
	}
	return in.Committed, s.endIntent(in)
}

// rollBackItem puts one volume of an uncommitted group restore back as it
// was, and drops its safety snapshot.
func (s *Store) rollBackItem(in *intent, it groupItem) error {
	tmp, target := in.itemTmp(s, it), s.volumePath(it.Volume)
	switched := s.volumeUUIDIs(it.Volume, it.TmpUUID)
	switch {
	case switched && !it.Existed:
		if err := btrfs.Delete(target); err != nil {
			return err
		}
	case switched:
		if !isSubvolume(tmp) {
			// The replaced data went missing: its safety snapshot stands in.
			if it.Safety == "" || !isSubvolume(s.snapshotPath(it.Safety)) {
				return fmt.Errorf("neither the replaced data (%s) nor the safety snapshot %q is there to roll back to", tmp, it.Safety)
			}
			if err := btrfs.Snapshot(s.snapshotPath(it.Safety), tmp, false); err != nil {
				return err
			}
		}
		if err := btrfs.Exchange(tmp, target); err != nil {
			return err
		}
		fallthrough
	default:
		if isSubvolume(tmp) {
			if err := btrfs.Delete(tmp); err != nil {
				return err
			}
		}
	}
	if it.Safety == "" {
		return nil
	}
	if isSubvolume(s.snapshotPath(it.Safety)) && isSubvolume(target) {
		if err := btrfs.Delete(s.snapshotPath(it.Safety)); err != nil {
			return err
		}
	}
	return s.meta.update(func(d *metaData) { setFlag(&d.Safety, it.Safety, false) })
}

// refreshGroup brings the index in line with the disk for the volumes and
// safety snapshots of a resolved group restore.
func (s *Store) refreshGroup(in *intent) {
	for _, it := range in.Items {
		s.refreshAfter(&intent{Volume: it.Volume, Existed: it.Existed, Safety: it.Safety})
	}
}
