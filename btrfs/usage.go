package btrfs

import (
	"encoding/binary"
	"math"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Usage is the space of one subvolume as its level-0 qgroup (0/ID) counts
// it. BTRFS counts it only while quotas are enabled on the filesystem
// (btrfs quota enable): an operator's choice, since they cost on every
// write, and never made here.
type Usage struct {
	Referenced uint64 // bytes the subvolume references, shared with other subvolumes or not
	Exclusive  uint64 // bytes no other subvolume references: about what deleting it frees
	// Known is false when quotas are off, the subvolume has no qgroup, or
	// the numbers are being rescanned or marked inconsistent.
	Known bool
}

// GetUsage reads the qgroup of the subvolume at path: its tree id
// (BTRFS_IOC_GET_SUBVOL_INFO), then two single items of the quota tree
// (BTRFS_IOC_TREE_SEARCH): the quota status and the qgroup's counters. No
// scan; the numbers are those of the last committed transaction. It needs
// CAP_SYS_ADMIN (unix.EPERM otherwise).
func GetUsage(path string) (Usage, error) {
	const op = "usage"
	fd, err := openSubvolume(op, path)
	if err != nil {
		return Usage{}, err
	}
	defer unix.Close(fd)
	var info subvolInfoArgs
	if err := ioctl(op, path, fd, iocGetSubvolInfo, unsafe.Pointer(&info)); err != nil {
		return Usage{}, &Error{op, path, err}
	}
	status, err := searchQuotaItem(op, path, fd, qgroupStatusKey, 0)
	if err == unix.ENOENT { // no quota tree: quotas are off
		return Usage{}, nil
	}
	if err != nil {
		return Usage{}, &Error{op, path, err}
	}
	if !qgroupsCounted(status) {
		return Usage{}, nil
	}
	item, err := searchQuotaItem(op, path, fd, qgroupInfoKey, info.TreeID) // qgroupid 0/ID is ID
	if err != nil {
		return Usage{}, &Error{op, path, err}
	}
	return parseQgroupInfo(item), nil
}

// qgroupsCounted tells from a struct btrfs_qgroup_status_item (__le64
// version, generation, flags, rescan, ...) whether quotas are on and their
// numbers can be trusted: no rescan running, not inconsistent. A missing
// item (nil) means no.
func qgroupsCounted(item []byte) bool {
	if len(item) < 24 {
		return false
	}
	flags := binary.LittleEndian.Uint64(item[16:24])
	return flags&qgroupStatusOn != 0 && flags&(qgroupStatusRescan|qgroupStatusInconsistent) == 0
}

// parseQgroupInfo reads a struct btrfs_qgroup_info_item (__le64
// generation, rfer, rfer_cmpr, excl, excl_cmpr). A missing item (nil)
// gives an unknown Usage.
func parseQgroupInfo(item []byte) Usage {
	if len(item) < 40 {
		return Usage{}
	}
	return Usage{
		Referenced: binary.LittleEndian.Uint64(item[8:16]),
		Exclusive:  binary.LittleEndian.Uint64(item[24:32]),
		Known:      true,
	}
}

// searchQuotaItem returns the data of the quota tree's item (0, typ,
// offset), or nil when there is none. unix.ENOENT: the filesystem has no
// quota tree.
func searchQuotaItem(op, path string, fd int, typ uint32, offset uint64) ([]byte, error) {
	args := searchArgs{Key: searchKey{
		TreeID:     quotaTreeObjectID,
		MinOffset:  offset,
		MaxOffset:  offset,
		MaxTransID: math.MaxUint64,
		MinType:    typ,
		MaxType:    typ,
		NrItems:    1,
	}}
	if err := ioctl(op, path, fd, iocTreeSearch, unsafe.Pointer(&args)); err != nil {
		return nil, err
	}
	return firstItem(&args, typ, offset), nil
}

// firstItem is the data of the first item a search found if its key is
// (0, typ, offset), else nil.
func firstItem(args *searchArgs, typ uint32, offset uint64) []byte {
	if args.Key.NrItems == 0 {
		return nil
	}
	b := args.Buf[:]
	h := binary.NativeEndian
	objectID, off := h.Uint64(b[8:16]), h.Uint64(b[16:24])
	itemType, n := h.Uint32(b[24:28]), h.Uint32(b[28:32])
	if objectID != 0 || itemType != typ || off != offset || int(n) > len(b)-searchHeaderSize {
		return nil
	}
	return b[searchHeaderSize : searchHeaderSize+int(n)]
}
