package service

import (
	"strings"

	"butterd/btrfs"
)

// Details are what BTRFS knows of a volume's or snapshot's subvolume, read
// on demand.
type Details struct {
	UUID         string
	ParentUUID   string
	ReceivedUUID string
	ReadOnly     bool
	Generation   uint64
}

// VolumeDetails reads the subvolume of a volume.
func (s *Store) VolumeDetails(name string) (Details, error) {
	v, err := s.GetVolume(name)
	if err != nil {
		return Details{}, err
	}
	return details(v.Path)
}

// SnapshotDetails reads the subvolume of a snapshot.
func (s *Store) SnapshotDetails(name string) (Details, error) {
	sn, err := s.GetSnapshot(name)
	if err != nil {
		return Details{}, err
	}
	return details(sn.Path)
}

func details(path string) (Details, error) {
	info, err := btrfs.GetInfo(path)
	if err != nil {
		return Details{}, err
	}
	return Details{
		UUID:         info.UUID,
		ParentUUID:   info.ParentUUID,
		ReceivedUUID: info.ReceivedUUID,
		ReadOnly:     info.ReadOnly,
		Generation:   info.Generation,
	}, nil
}

// Usage is the space a volume's or snapshot's subvolume takes, as BTRFS
// quotas count it. butterd never turns quotas on (they cost on every
// write); while they are off, Known is false.
type Usage struct {
	Referenced uint64 // bytes it references, shared with other subvolumes or not
	Exclusive  uint64 // bytes only it references: about what removing it frees
	Known      bool   // false: quotas are off, the subvolume has no qgroup, or a rescan has not finished
}

// VolumeUsage reads a volume's usage: a few ioctls, so it is read when
// asked for, never by listings.
func (s *Store) VolumeUsage(name string) (Usage, error) {
	v, err := s.GetVolume(name)
	if err != nil {
		return Usage{}, err
	}
	return usage(v.Path)
}

// SnapshotUsage reads a snapshot's usage, as VolumeUsage does.
func (s *Store) SnapshotUsage(name string) (Usage, error) {
	sn, err := s.GetSnapshot(name)
	if err != nil {
		return Usage{}, err
	}
	return usage(sn.Path)
}

func usage(path string) (Usage, error) {
	u, err := btrfs.GetUsage(path)
	if err != nil {
		return Usage{}, err
	}
	return Usage{Referenced: u.Referenced, Exclusive: u.Exclusive, Known: u.Known}, nil
}

// IsSnapshotName tells a snapshot name (VOLUME@...) from a volume name.
func IsSnapshotName(name string) bool { return strings.Contains(name, "@") }
