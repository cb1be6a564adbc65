package service

import (
	"fmt"

	"butterd/btrfs"
)

// reconcile resolves every operation the journal says was begun and not
// finished. Anything else it does not recognise is left alone (and
// reported when the index is read).
func (s *Store) reconcile() error {
	ins, err := s.loadIntents()
	if err != nil {
		return err
	}
	for _, in := range ins {
		forward, err := s.resolveIntent(in)
		if err != nil {
			s.log.Error("interrupted operation could not be resolved; it stays in the journal for the next start",
				"op", in.Op, "volume", in.Volume, "journal", in.file(s), "error", err)
			continue
		}
		s.log.Warn("interrupted operation resolved", "op", in.Op, "volume", in.Volume, "finished", forward, "rolled_back", !forward)
	}
	return nil
}

// resolveIntent finishes an operation whose switch happened (the volume
// carries the temporary subvolume's UUID) and rolls back any other. It
// deletes only what the intent names, and the replaced data only when its
// safety snapshot exists. It reports whether the operation was finished.
func (s *Store) resolveIntent(in *intent) (forward bool, err error) {
	switch in.Op {
	case opImport:
		return s.resolveImport(in)
	case opSync:
		return s.resolveSync(in)
	case opRestoreGroup:
		return s.resolveGroupRestore(in)
	case opSched:
		return s.resolveSchedule(in)
	}
	tmp := in.tmpPath(s)
	if in.TmpUUID != "" {
		if info, err := btrfs.GetInfo(s.volumePath(in.Volume)); err == nil && info.UUID == in.TmpUUID {
			forward = true
		}
	}
	tmpExists := isSubvolume(tmp)
	if forward {
		if tmpExists {
			if in.Safety == "" || !isSubvolume(s.snapshotPath(in.Safety)) {
				return true, fmt.Errorf("replaced data of volume %q kept at %q: its safety snapshot %q is missing", in.Volume, tmp, in.Safety)
			}
			if err := btrfs.Delete(tmp); err != nil {
				return true, err
			}
		}
	} else {
		if tmpExists {
			if err := btrfs.Delete(tmp); err != nil {
				return false, err
			}
		}
		if in.Safety != "" {
			if isSubvolume(s.snapshotPath(in.Safety)) && isSubvolume(s.volumePath(in.Volume)) {
				if err := btrfs.Delete(s.snapshotPath(in.Safety)); err != nil {
					return false, err
				}
			}
			if err := s.meta.update(func(d *metaData) { setFlag(&d.Safety, in.Safety, false) }); err != nil {
				return false, err
			}
		}
	}
	return forward, s.endIntent(in)
}

// resolve is resolveIntent for an operation running now: failures are
// logged with the operation.
func (s *Store) resolve(in *intent) error {
	forward, err := s.resolveIntent(in)
	if err != nil {
		s.log.Error("operation left in the journal for the next start", "op", in.Op, "volume", in.Volume, "error", err)
		return err
	}
	s.log.Debug("operation resolved", "op", in.Op, "volume", in.Volume, "finished", forward)
	return nil
}

func isSubvolume(path string) bool {
	ok, err := btrfs.IsSubvolume(path)
	return err == nil && ok
}
