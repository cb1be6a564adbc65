package service

import (
	"os"
	"sort"
	"strings"
	"time"

	"butterd/btrfs"
)

// Volume is what callers learn about a volume.
type Volume struct {
	Name      string
	Path      string
	CreatedAt time.Time
	Mounts    int // mount references held (Docker mount ids)
}

// Snapshot is what callers learn about a snapshot.
type Snapshot struct {
	Name   string
	Volume string    // the part before '@'
	Path   string    //
	Time   time.Time // see snapshotTime; zero when the name does not parse
	Safety bool      // taken by a restore of its volume; never "latest"
	Pinned bool      // purge never deletes it
}

type volumeEntry struct {
	name    string
	created time.Time
}

type snapshotEntry struct {
	name     string
	volume   string
	nameTime time.Time // zero when the name does not parse
	otime    time.Time // creation time read from BTRFS; zero if unknown
}

// snapshotClockSlack is how far a snapshot's name time may lie from its
// creation time for the creation time to be trusted (DESIGN.md "On disk").
const snapshotClockSlack = 5 * time.Second

// time is the snapshot's time for ordering, "latest" and age: the creation
// time when the name's local time is within a few seconds of it (local time
// repeats when clocks go back), otherwise the time in its name.
func (e *snapshotEntry) time() time.Time {
	if e.nameTime.IsZero() {
		return e.otime
	}
	if !e.otime.IsZero() {
		d := e.otime.Sub(e.nameTime)
		if d < snapshotClockSlack && d > -snapshotClockSlack {
			return e.otime
		}
		// The name may be an ambiguous local time read as the earlier
		// instant; try the later one too.
		if later := e.nameTime.Add(time.Hour); absDur(e.otime.Sub(later)) < snapshotClockSlack &&
			later.Format(TimestampLayout) == e.nameTime.Format(TimestampLayout) {
			return e.otime
		}
	}
	return e.nameTime
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// loadIndex reads volumes/ and snapshots/ and adopts every subvolume there.
// Entries that are not subvolumes, and temporaries no journal claims, are
// reported and left alone.
func (s *Store) loadIndex() error {
	s.volumes = map[string]*volumeEntry{}
	s.snapshots = map[string]*snapshotEntry{}
	vols, err := s.readSubvolumes(s.volumesDir, ValidateName)
	if err != nil {
		return err
	}
	for _, name := range vols {
		e := &volumeEntry{name: name}
		if info, err := btrfs.GetInfo(s.volumePath(name)); err == nil {
			e.created = info.OTime
		}
		s.volumes[name] = e
	}
	snaps, err := s.readSubvolumes(s.snapshotsDir, ValidateSnapshotName)
	if err != nil {
		return err
	}
	for _, name := range snaps {
		var otime time.Time
		if info, err := btrfs.GetInfo(s.snapshotPath(name)); err == nil {
			otime = info.OTime
		}
		s.snapshots[name] = newSnapshotEntry(name, otime)
	}
	s.log.Info("index loaded", "volumes", len(s.volumes), "snapshots", len(s.snapshots))
	return nil
}

func newSnapshotEntry(name string, otime time.Time) *snapshotEntry {
	e := &snapshotEntry{name: name, otime: otime}
	e.volume, _, _ = strings.Cut(name, "@")
	if _, t, err := ParseSnapshotName(name); err == nil {
		e.nameTime = t
	}
	return e
}

// readSubvolumes lists the subvolumes directly in dir whose names pass valid.
func (s *Store) readSubvolumes(dir string, valid func(string) error) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, de := range entries {
		name := de.Name()
		if strings.HasPrefix(name, ".") {
			s.log.Warn("leftover temporary not claimed by the journal; left alone", "path", dir+"/"+name)
			continue
		}
		if !de.IsDir() {
			s.log.Warn("not a directory; ignored", "path", dir+"/"+name)
			continue
		}
		if err := valid(name); err != nil {
			s.log.Warn("name not valid; ignored", "path", dir+"/"+name, "error", err)
			continue
		}
		ok, err := btrfs.IsSubvolume(dir + "/" + name)
		if err != nil || !ok {
			s.log.Warn("not a subvolume; ignored", "path", dir+"/"+name, "error", err)
			continue
		}
		names = append(names, name)
	}
	return names, nil
}

// snapshotsOfLocked returns the snapshots of a volume (all when volume is
// ""), oldest first. Callers hold s.mu.
func (s *Store) snapshotsOfLocked(volume string) []*snapshotEntry {
	var out []*snapshotEntry
	for _, e := range s.snapshots {
		if volume == "" || e.volume == volume {
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		ti, tj := out[i].time(), out[j].time()
		if !ti.Equal(tj) {
			return ti.Before(tj)
		}
		return out[i].name < out[j].name
	})
	return out
}

func (s *Store) snapshotOf(e *snapshotEntry) Snapshot {
	return Snapshot{
		Name:   e.name,
		Volume: e.volume,
		Path:   s.snapshotPath(e.name),
		Time:   e.time(),
		Safety: s.meta.isSafety(e.name),
		Pinned: s.meta.isPinned(e.name),
	}
}

func (s *Store) volumeOf(e *volumeEntry) Volume {
	return Volume{
		Name:      e.name,
		Path:      s.volumePath(e.name),
		CreatedAt: e.created,
		Mounts:    s.mounts.count(e.name),
	}
}
