package btrfs

import (
	"encoding/hex"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Info describes one subvolume, read with BTRFS_IOC_GET_SUBVOL_INFO on an fd.
type Info struct {
	ID           uint64    // tree id
	ParentID     uint64    // tree id of the subvolume holding it
	UUID         string    // canonical 36-char form; "" when all zero
	ParentUUID   string    // UUID of the snapshot's source; "" for a plain subvolume
	ReceivedUUID string    // UUID of the sent subvolume it was received from; "" if none
	Generation   uint64    // latest transaction id of the subvolume
	OTime        time.Time // creation time; zero when the kernel has none (top level)
	ReadOnly     bool
}

// GetInfo reads the information of the subvolume at path.
func GetInfo(path string) (Info, error) {
	const op = "info"
	fd, err := openSubvolume(op, path)
	if err != nil {
		return Info{}, err
	}
	defer unix.Close(fd)
	var a subvolInfoArgs
	if err := ioctl(op, path, fd, iocGetSubvolInfo, unsafe.Pointer(&a)); err != nil {
		return Info{}, &Error{op, path, err}
	}
	info := Info{
		ID:           a.TreeID,
		ParentID:     a.ParentID,
		UUID:         formatUUID(a.UUID),
		ParentUUID:   formatUUID(a.ParentUUID),
		ReceivedUUID: formatUUID(a.ReceivedUUID),
		Generation:   a.Generation,
		ReadOnly:     a.Flags&rootSubvolRdonly != 0,
	}
	if a.OTime.Sec != 0 || a.OTime.Nsec != 0 {
		info.OTime = time.Unix(int64(a.OTime.Sec), int64(a.OTime.Nsec))
	}
	return info, nil
}

// formatUUID writes u as xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx, or "" when
// it is all zero.
func formatUUID(u [16]byte) string {
	if u == [16]byte{} {
		return ""
	}
	var b [36]byte
	hex.Encode(b[0:8], u[0:4])
	hex.Encode(b[9:13], u[4:6])
	hex.Encode(b[14:18], u[6:8])
	hex.Encode(b[19:23], u[8:10])
	hex.Encode(b[24:36], u[10:16])
	b[8], b[13], b[18], b[23] = '-', '-', '-', '-'
	return string(b[:])
}
