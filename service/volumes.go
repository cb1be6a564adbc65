package service

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"butterd/btrfs"
)

// CreateVolume makes a volume, or returns it unchanged when it exists
// (repeating a create is safe; with opts.Strict, only when the options
// given are those it has). Options not given come from opts.Policy;
// the schedules the options ask for are set up with the volume (a volume
// that exists keeps its own). Where no systemd is reachable, schedule
// options fail before anything is created.
func (s *Store) CreateVolume(name string, opts CreateOptions) (Volume, bool, error) {
	return s.createVolume(name, opts, s.waitLock)
}

// CreateVolumeContext is CreateVolume for a client waiting for the answer
// (the Docker plugin): when the volume's name is held by another operation
// it answers busy (callerLock), and when ctx ends before the name is free,
// nothing is created.
func (s *Store) CreateVolumeContext(ctx context.Context, name string, opts CreateOptions) (Volume, bool, error) {
	return s.createVolume(name, opts, s.callerLock(ctx, "create"))
}

func (s *Store) createVolume(name string, opts CreateOptions, lock lockFunc) (Volume, bool, error) {
	if err := ValidateName(name); err != nil {
		return Volume{}, false, err
	}
	if opts.From != "" {
		if err := validateSource(opts.From); err != nil {
			return Volume{}, false, err
		}
	}
	opts, err := s.withPolicy(opts)
	if err != nil {
		return Volume{}, false, err
	}
	scheds, err := s.prepareVolumeSchedules(name, opts)
	if err != nil {
		return Volume{}, false, err
	}
	unlock, err := lock(name)
	if err != nil {
		return Volume{}, false, err
	}
	defer unlock()
	if v, err := s.GetVolume(name); err == nil {
		if !opts.Strict {
			return v, false, nil
		}
		if unapplied := s.unappliedOptions(name, opts); len(unapplied) > 0 {
			what := "option " + unapplied[0] + " was"
			if len(unapplied) > 1 {
				what = "options " + strings.Join(unapplied, ", ") + " were"
			}
			return Volume{}, false, errorf(ErrExists, "volume %q exists: %s not applied; remove it first or use restore", name, what)
		}
		return v, false, nil
	}
	src := ""
	if opts.From != "" {
		var err error
		if src, err = s.sourcePath(opts.From); err != nil {
			return Volume{}, false, fmt.Errorf("option from=%q: %w", opts.From, err)
		}
	}
	// Exactly what is asked, whatever a removal cut short left behind:
	// a new volume never inherits the settings of an earlier one.
	if err := s.meta.update(func(d *metaData) { setFlag(&d.NoFinalSnapshot, name, opts.NoFinalSnapshot) }); err != nil {
		return Volume{}, false, s.noSpace(fmt.Sprintf("create volume %q", name), err)
	}
	if opts.NoCOW {
		err = s.createNoCOW(name, src)
	} else {
		err = s.makeVolume(src, s.volumePath(name))
	}
	err = s.noSpace(fmt.Sprintf("create volume %q", name), err)
	var timers []string
	if err == nil && len(scheds) > 0 {
		if timers, err = s.setVolumeSchedules(scheds); err != nil {
			if derr := btrfs.Delete(s.volumePath(name)); derr != nil {
				err = fmt.Errorf("%w (and the new volume was not removed: %v)", err, derr)
			}
		}
	}
	if err != nil {
		s.meta.update(func(d *metaData) { setFlag(&d.NoFinalSnapshot, name, false) })
		return Volume{}, false, err
	}
	s.log.Info("volume created", "volume", name, "from", opts.From, "nocow", opts.NoCOW, "policy", opts.Policy, "schedules", timers)
	v := s.addVolume(name)
	s.emit(VolumeNew, name)
	return v, true, nil
}

// makeVolume creates an empty subvolume at dst, or a writable snapshot of
// src there. Either is atomic.
func (s *Store) makeVolume(src, dst string) error {
	if src == "" {
		return btrfs.Create(dst)
	}
	return s.snapshotSubvolume(src, dst, false)
}

// createNoCOW builds the volume under a temporary name, sets NOCOW on its
// empty root and renames it into place, so a crash never leaves a volume
// without the attribute it was asked for.
func (s *Store) createNoCOW(name, src string) error {
	in := &intent{Op: opCreate, Volume: name}
	if err := s.beginIntent(in); err != nil {
		return err
	}
	err := s.makeVolume(src, in.tmpPath(s))
	if err == nil {
		err = s.recordTmpUUID(in)
	}
	if err == nil {
		err = s.step(opCreate, "tmp-created")
	}
	if err == nil {
		err = btrfs.SetNoCOW(in.tmpPath(s))
	}
	if err == nil {
		err = s.step(opCreate, "nocow-set")
	}
	if err == nil {
		err = btrfs.RenameNoReplace(in.tmpPath(s), s.volumePath(name))
	}
	if err == nil {
		err = s.step(opCreate, "renamed")
	}
	if rerr := s.resolve(in); rerr != nil && err == nil {
		err = rerr
	}
	if err != nil && !s.volumeOnDisk(name) {
		return err
	}
	return nil
}

func (s *Store) addVolume(name string) Volume {
	e := &volumeEntry{name: name}
	if info, err := btrfs.GetInfo(s.volumePath(name)); err == nil {
		e.created = info.OTime
	}
	s.mu.Lock()
	s.volumes[name] = e
	v := s.volumeOf(e)
	s.mu.Unlock()
	return v
}

func (s *Store) volumeOnDisk(name string) bool {
	ok, err := btrfs.IsSubvolume(s.volumePath(name))
	return err == nil && ok
}

// sourcePath resolves a volume or snapshot name to its subvolume.
func (s *Store) sourcePath(name string) (string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if strings.Contains(name, "@") {
		if _, ok := s.snapshots[name]; ok {
			return s.snapshotPath(name), nil
		}
		return "", noSuchSnapshot(name)
	}
	if _, ok := s.volumes[name]; ok {
		return s.volumePath(name), nil
	}
	return "", noSuchVolume(name)
}

// GetVolume answers from memory.
func (s *Store) GetVolume(name string) (Volume, error) {
	if err := ValidateName(name); err != nil {
		return Volume{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	e, ok := s.volumes[name]
	if !ok {
		return Volume{}, noSuchVolume(name)
	}
	return s.volumeOf(e), nil
}

// ListVolumes answers from memory, sorted by name.
func (s *Store) ListVolumes() []Volume {
	s.mu.RLock()
	out := make([]Volume, 0, len(s.volumes))
	for _, e := range s.volumes {
		out = append(out, s.volumeOf(e))
	}
	s.mu.RUnlock()
	slices.SortFunc(out, func(a, b Volume) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// RemoveOptions change what RemoveVolume does.
type RemoveOptions struct {
	NoFinalSnapshot bool // skip the final snapshot even if the volume wants one
}

// RemovedVolume is what removing a volume did.
type RemovedVolume struct {
	FinalSnapshot string   // "" when none was taken
	Schedules     []string // the timers of the volume's schedules, removed with it (or a service left without its timer)
}

// RemoveVolume deletes a volume that no container holds. Unless turned off
// (for the volume at create, or here), it first takes a final snapshot so
// the removal can be undone; its name is returned. The volume's schedules
// go with it (its snapshots stay); RemoveVolumeReport says which.
func (s *Store) RemoveVolume(name string, opts RemoveOptions) (string, error) {
	r, err := s.RemoveVolumeReport(name, opts)
	return r.FinalSnapshot, err
}

// RemoveVolumeReport is RemoveVolume, reporting the schedules removed too.
//
// Everything that can refuse the removal (the volume in use, the final
// snapshot failing, e.g. on a full pool) comes before the schedules go;
// the schedules go before the volume: a kill in between leaves a volume
// without schedules (they can be set again), never schedules without a
// volume. If the volume stays after all (the delete fails, a container
// mounted it meanwhile), its schedules are set again as they were.
func (s *Store) RemoveVolumeReport(name string, opts RemoveOptions) (RemovedVolume, error) {
	return s.removeVolume(name, opts, s.waitLock)
}

// RemoveVolumeContext is RemoveVolume for a client waiting for the answer
// (the Docker plugin): when the volume is held by another operation it
// answers busy (callerLock), and when ctx ends before the volume is free,
// nothing is removed.
func (s *Store) RemoveVolumeContext(ctx context.Context, name string, opts RemoveOptions) (string, error) {
	r, err := s.removeVolume(name, opts, s.callerLock(ctx, "removal"))
	return r.FinalSnapshot, err
}

func (s *Store) removeVolume(name string, opts RemoveOptions, lock lockFunc) (RemovedVolume, error) {
	if err := ValidateName(name); err != nil {
		return RemovedVolume{}, err
	}
	unlock, err := lock(name)
	if err != nil {
		return RemovedVolume{}, err
	}
	snap, err := s.finalSnapshot(name, !opts.NoFinalSnapshot && s.meta.finalSnapshot(name))
	takenSince, unwatch := s.locks.watch(name)
	defer unwatch()
	unlock()
	if err != nil {
		return RemovedVolume{}, err
	}
	// The volume is not locked while its schedules go: a run under way,
	// stopped and waited for, may be waiting for it.
	removed := s.removeVolumeSchedules(name)
	kept := func(err error) (RemovedVolume, error) {
		s.restoreSchedules(name, removed)
		return RemovedVolume{FinalSnapshot: snap}, err
	}
	unlock, err = lock(name)
	if err != nil {
		return kept(err)
	}
	defer unlock()
	if err := s.removable(name); err != nil {
		return kept(err)
	}
	if snap != "" && takenSince() {
		// Someone held the volume meanwhile: what it holds may have
		// changed since the final snapshot.
		again, err := s.finalSnapshot(name, true)
		if err != nil {
			return kept(err)
		}
		s.log.Info("volume changed while its schedules were removed: final snapshot taken again", "volume", name, "earlier", snap, "final_snapshot", again)
		snap = again
	}
	if err := btrfs.Delete(s.volumePath(name)); err != nil {
		if errors.Is(err, btrfs.ErrNested) {
			return kept(errorf(ErrInUse, "volume %q holds nested subvolumes: %v; delete them first", name, err))
		}
		return kept(fmt.Errorf("remove volume %q: %w", name, err))
	}
	s.mu.Lock()
	delete(s.volumes, name)
	s.mu.Unlock()
	s.emit(VolumeRemoved, name)
	if err := s.meta.update(func(d *metaData) { setFlag(&d.NoFinalSnapshot, name, false) }); err != nil {
		s.log.Warn("volume settings not cleared: they are dropped at the next start", "volume", name, "error", err)
	}
	timers := append(timersOf(removed), s.removeUnreadableSchedules(name)...)
	s.log.Info("volume removed", "volume", name, "final_snapshot", snap, "schedules_removed", timers)
	return RemovedVolume{FinalSnapshot: snap, Schedules: timers}, nil
}

// finalSnapshot checks that a volume whose lock the caller holds can be
// removed and, when take, takes its final snapshot and returns its name.
func (s *Store) finalSnapshot(name string, take bool) (string, error) {
	if err := s.removable(name); err != nil || !take {
		return "", err
	}
	snap, err := s.snapshotLocked(name, false)
	if errors.Is(err, ErrNoSpace) {
		return "", fmt.Errorf("%w; or remove volume %q without its final snapshot", err, name)
	}
	if err != nil {
		return "", fmt.Errorf("final snapshot before removing volume %q: %w", name, err)
	}
	return snap.Name, nil
}

// removable checks that a volume exists and no container holds it.
func (s *Store) removable(name string) error {
	v, err := s.GetVolume(name)
	if err != nil {
		return err
	}
	if v.Mounts > 0 {
		return errorf(ErrInUse, "volume %q is in use (%s): stop the containers using it first", name, mountCount(v.Mounts))
	}
	return nil
}

// Path is the volume's directory.
func (s *Store) Path(name string) (string, error) {
	v, err := s.GetVolume(name)
	return v.Path, err
}

// Mount takes a reference on a volume for a Docker mount id and returns its
// directory. A `.nocow` file at the volume root makes new files NOCOW.
func (s *Store) Mount(name, id string) (string, error) {
	return s.mount(name, id, s.waitLock)
}

// MountContext is Mount for a client waiting for the answer (the Docker
// plugin): when the volume is held by another operation (a sync merging
// into it) it answers busy (callerLock), and when ctx ends before the
// volume is free, no reference is taken: Docker never unmounts a mount
// that failed on its side.
func (s *Store) MountContext(ctx context.Context, name, id string) (string, error) {
	return s.mount(name, id, s.callerLock(ctx, "mount"))
}

func (s *Store) mount(name, id string, lock lockFunc) (string, error) {
	if err := ValidateName(name); err != nil {
		return "", err
	}
	if id == "" {
		return "", errorf(ErrInvalidArg, "mount of volume %q without a mount id", name)
	}
	unlock, err := lock(name)
	if err != nil {
		return "", err
	}
	defer unlock()
	v, err := s.GetVolume(name)
	if err != nil {
		return "", err
	}
	if !isSubvolume(v.Path) {
		return "", fmt.Errorf("volume %q cannot be mounted: %q is no longer its subvolume (moved or replaced behind butterd's back); put it back", name, v.Path)
	}
	if err := honourNoCOWFile(v.Path); err != nil {
		return "", fmt.Errorf("volume %q has .nocow: %w", name, err)
	}
	err = s.changeMounts(false, func(m map[string]map[string]int) {
		if m[name] == nil {
			m[name] = map[string]int{}
		}
		m[name][id]++
	})
	return v.Path, s.noSpace(fmt.Sprintf("mount of volume %q", name), err)
}

// honourNoCOWFile sets NOCOW on a volume root holding a .nocow entry, so
// files created from now on are NOCOW. The entry is not followed: what it
// may point to is not looked at.
func honourNoCOWFile(root string) error {
	if _, err := os.Lstat(root + "/.nocow"); err != nil {
		return nil
	}
	if on, err := btrfs.NoCOW(root); err == nil && on {
		return nil
	}
	return btrfs.SetNoCOW(root)
}

// Unmount drops a mount id's reference. An unknown id is not an error.
// It does not wait for the volume's lock: dropping a reference never
// undoes what an operation holding the lock checked (that the volume is
// not in use), and Docker does not send Unmount again when one fails, so
// it must not fail or wait behind a sync.
func (s *Store) Unmount(name, id string) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	return s.changeMounts(true, func(m map[string]map[string]int) {
		if m[name][id] > 1 {
			m[name][id]--
			return
		}
		delete(m[name], id)
		if len(m[name]) == 0 {
			delete(m, name)
		}
	})
}

// ForgetMounts drops every reference on a volume (after a container died
// without Docker unmounting) and says how many there were.
func (s *Store) ForgetMounts(name string) (int, error) {
	if err := ValidateName(name); err != nil {
		return 0, err
	}
	defer s.locks.lock(name)()
	n := 0
	err := s.changeMounts(true, func(m map[string]map[string]int) {
		for _, c := range m[name] {
			n += c
		}
		delete(m, name)
	})
	return n, err
}

// changeMounts applies fn to the mount table and persists it. The write
// happens outside s.mu so readers never wait for the disk; mountWrite keeps
// writes in order. When the table cannot be written (a full pool), a change
// that takes references is undone and fails: a restart would lose them. A
// change that releases references (release) stays in memory and is only
// logged: the table on disk then holds more references than there are,
// which errs on the safe side, and the next write records it.
func (s *Store) changeMounts(release bool, fn func(map[string]map[string]int)) error {
	s.mountWrite.Lock()
	defer s.mountWrite.Unlock()
	s.mu.Lock()
	old := cloneMounts(s.mounts.data.Mounts)
	fn(s.mounts.data.Mounts)
	data := mountData{BootID: s.mounts.data.BootID, Mounts: cloneMounts(s.mounts.data.Mounts)}
	s.mu.Unlock()
	if err := writeJSON(s.mounts.path, data); err != nil {
		if release {
			s.log.Warn("released mount references not recorded yet; they are the next time the mount table is written", "error", err)
			return nil
		}
		s.mu.Lock()
		s.mounts.data.Mounts = old
		s.mu.Unlock()
		return fmt.Errorf("record mount references: %w", err)
	}
	return nil
}

func cloneMounts(m map[string]map[string]int) map[string]map[string]int {
	c := make(map[string]map[string]int, len(m))
	for vol, ids := range m {
		c[vol] = make(map[string]int, len(ids))
		for id, n := range ids {
			c[vol][id] = n
		}
	}
	return c
}

// isExist reports an EEXIST from BTRFS.
func isExist(err error) bool { return errors.Is(err, unix.EEXIST) }

func mountCount(n int) string {
	if n == 1 {
		return "1 mount"
	}
	return fmt.Sprintf("%d mounts", n)
}
