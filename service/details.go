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

// IsSnapshotName tells a snapshot name (VOLUME@...) from a volume name.
func IsSnapshotName(name string) bool { return strings.Contains(name, "@") }
