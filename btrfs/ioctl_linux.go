package btrfs

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// Kernel structures of <linux/btrfs.h>, laid out as the kernel lays them out
// (sizes checked in ioctl_linux_test.go).

// struct btrfs_ioctl_vol_args { __s64 fd; char name[BTRFS_PATH_NAME_MAX + 1]; }; (4096 bytes)
type volArgs struct {
	Fd   int64
	Name [4088]byte
}

// struct btrfs_ioctl_vol_args_v2 { __s64 fd; __u64 transid; __u64 flags;
// union { struct { __u64 size; struct btrfs_qgroup_inherit *qgroup_inherit; };
// __u64 unused[4]; }; union { char name[BTRFS_SUBVOL_NAME_MAX + 1]; ... }; };
// (4096 bytes)
type volArgsV2 struct {
	Fd      int64
	TransID uint64
	Flags   uint64
	Unused  [4]uint64
	Name    [4040]byte
}

// struct btrfs_ioctl_send_args { __s64 send_fd; __u64 clone_sources_count;
// __u64 *clone_sources; __u64 parent_root; __u64 flags; __u32 version;
// __u8 reserved[28]; }; (72 bytes)
type sendArgs struct {
	SendFD            int64
	CloneSourcesCount uint64
	CloneSources      *uint64
	ParentRoot        uint64
	Flags             uint64
	Version           uint32
	Reserved          [28]byte
}

// struct btrfs_ioctl_timespec { __u64 sec; __u32 nsec; }; (16 bytes)
type ioctlTimespec struct {
	Sec  uint64
	Nsec uint32
}

// struct btrfs_ioctl_get_subvol_info_args (504 bytes):
//
//	__u64 treeid; char name[BTRFS_VOL_NAME_MAX + 1];
//	__u64 parent_id, dirid, generation, flags;
//	__u8 uuid[16], parent_uuid[16], received_uuid[16];
//	__u64 ctransid, otransid, stransid, rtransid;
//	struct btrfs_ioctl_timespec ctime, otime, stime, rtime;
//	__u64 reserved[8];
type subvolInfoArgs struct {
	TreeID       uint64
	Name         [256]byte
	ParentID     uint64
	DirID        uint64
	Generation   uint64
	Flags        uint64
	UUID         [16]byte
	ParentUUID   [16]byte
	ReceivedUUID [16]byte
	CTransID     uint64
	OTransID     uint64
	STransID     uint64
	RTransID     uint64
	CTime        ioctlTimespec
	OTime        ioctlTimespec
	STime        ioctlTimespec
	RTime        ioctlTimespec
	Reserved     [8]uint64
}

// struct btrfs_ioctl_get_subvol_rootref_args (4096 bytes):
//
//	__u64 min_treeid;
//	struct { __u64 treeid; __u64 dirid; } rootref[BTRFS_MAX_ROOTREF_BUFFER_NUM];
//	__u8 num_items; __u8 align[7];
type rootrefArgs struct {
	MinTreeID uint64
	Rootref   [255]rootref
	NumItems  uint8
	Align     [7]uint8
}

type rootref struct {
	TreeID uint64
	DirID  uint64
}

// struct btrfs_ioctl_ino_lookup_user_args (4096 bytes):
//
//	__u64 dirid; __u64 treeid;
//	char name[BTRFS_VOL_NAME_MAX + 1];
//	char path[BTRFS_INO_LOOKUP_USER_PATH_MAX]; (4080 - 255 - 1)
type inoLookupUserArgs struct {
	DirID  uint64
	TreeID uint64
	Name   [256]byte
	Path   [3824]byte
}

// struct btrfs_ioctl_search_key (104 bytes):
//
//	__u64 tree_id, min_objectid, max_objectid, min_offset, max_offset,
//	      min_transid, max_transid;
//	__u32 min_type, max_type, nr_items, unused;
//	__u64 unused1, unused2, unused3, unused4;
type searchKey struct {
	TreeID      uint64
	MinObjectID uint64
	MaxObjectID uint64
	MinOffset   uint64
	MaxOffset   uint64
	MinTransID  uint64
	MaxTransID  uint64
	MinType     uint32
	MaxType     uint32
	NrItems     uint32
	Unused      uint32
	Unused1     [4]uint64
}

// struct btrfs_ioctl_search_args { struct btrfs_ioctl_search_key key;
// char buf[4096 - sizeof(key)]; }; (4096 bytes). buf holds, for each item
// found, a struct btrfs_ioctl_search_header { __u64 transid, objectid,
// offset; __u32 type, len; } (32 bytes, host byte order) and then the
// item's len bytes (little endian on disk).
type searchArgs struct {
	Key searchKey
	Buf [4096 - 104]byte
}

const searchHeaderSize = 32

const (
	btrfsIoctlMagic = 0x94
	iocWrite        = 1
	iocRead         = 2

	firstFreeObjectID = 256        // BTRFS_FIRST_FREE_OBJECTID: inode of every subvolume's root directory
	subvolRdonly      = 1 << 1     // BTRFS_SUBVOL_RDONLY, in BTRFS_IOC_SUBVOL_{GET,SET}FLAGS
	rootSubvolRdonly  = 1 << 0     // BTRFS_ROOT_SUBVOL_RDONLY, in btrfs_ioctl_get_subvol_info_args.flags
	fsNocowFl         = 0x00800000 // FS_NOCOW_FL, in FS_IOC_{GET,SET}FLAGS
	volNameMax        = 255        // BTRFS_VOL_NAME_MAX

	quotaTreeObjectID = 8   // BTRFS_QUOTA_TREE_OBJECTID
	qgroupStatusKey   = 240 // BTRFS_QGROUP_STATUS_KEY: (0, 240, 0)
	qgroupInfoKey     = 242 // BTRFS_QGROUP_INFO_KEY: (0, 242, qgroupid)

	qgroupStatusOn           = 1 << 0 // BTRFS_QGROUP_STATUS_FLAG_ON
	qgroupStatusRescan       = 1 << 1 // BTRFS_QGROUP_STATUS_FLAG_RESCAN
	qgroupStatusInconsistent = 1 << 2 // BTRFS_QGROUP_STATUS_FLAG_INCONSISTENT
)

// ioc is the kernel's _IOC(dir, 0x94, nr, size) in the generic encoding
// (x86, arm, riscv, s390; powerpc, mips and sparc differ).
func ioc(dir, nr, size uintptr) uintptr {
	return dir<<30 | size<<16 | btrfsIoctlMagic<<8 | nr
}

var (
	iocSnapDestroy      = ioc(iocWrite, 15, unsafe.Sizeof(volArgs{}))                   // _IOW(0x94, 15, struct btrfs_ioctl_vol_args)
	iocTreeSearch       = ioc(iocRead|iocWrite, 17, unsafe.Sizeof(searchArgs{}))        // _IOWR(0x94, 17, struct btrfs_ioctl_search_args)
	iocSnapCreateV2     = ioc(iocWrite, 23, unsafe.Sizeof(volArgsV2{}))                 // _IOW(0x94, 23, struct btrfs_ioctl_vol_args_v2)
	iocSubvolGetflags   = ioc(iocRead, 25, 8)                                           // _IOR(0x94, 25, __u64)
	iocSubvolSetflags   = ioc(iocWrite, 26, 8)                                          // _IOW(0x94, 26, __u64)
	iocGetSubvolInfo    = ioc(iocRead, 60, unsafe.Sizeof(subvolInfoArgs{}))             // _IOR(0x94, 60, ...)
	iocGetSubvolRootref = ioc(iocRead|iocWrite, 61, unsafe.Sizeof(rootrefArgs{}))       // _IOWR(0x94, 61, ...)
	iocInoLookupUser    = ioc(iocRead|iocWrite, 62, unsafe.Sizeof(inoLookupUserArgs{})) // _IOWR(0x94, 62, ...)
	iocSend             = ioc(iocWrite, 38, unsafe.Sizeof(sendArgs{}))                  // _IOW(0x94, 38, struct btrfs_ioctl_send_args)
	iocFsGetflags       = uintptr(unix.FS_IOC_GETFLAGS)
	iocFsSetflags       = uintptr(unix.FS_IOC_SETFLAGS)
)

// ioctlName names a request for the debug log.
func ioctlName(req uintptr) string {
	switch req {
	case iocSnapDestroy:
		return "BTRFS_IOC_SNAP_DESTROY"
	case iocTreeSearch:
		return "BTRFS_IOC_TREE_SEARCH"
	case iocSnapCreateV2:
		return "BTRFS_IOC_SNAP_CREATE_V2"
	case iocSubvolGetflags:
		return "BTRFS_IOC_SUBVOL_GETFLAGS"
	case iocSubvolSetflags:
		return "BTRFS_IOC_SUBVOL_SETFLAGS"
	case iocGetSubvolInfo:
		return "BTRFS_IOC_GET_SUBVOL_INFO"
	case iocGetSubvolRootref:
		return "BTRFS_IOC_GET_SUBVOL_ROOTREF"
	case iocInoLookupUser:
		return "BTRFS_IOC_INO_LOOKUP_USER"
	case iocSend:
		return "BTRFS_IOC_SEND"
	case iocFsGetflags:
		return "FS_IOC_GETFLAGS"
	case iocFsSetflags:
		return "FS_IOC_SETFLAGS"
	}
	return "ioctl"
}

// ioctl issues one request on fd, retrying when interrupted, and logs it
// for op on path.
func ioctl(op, path string, fd int, req uintptr, arg unsafe.Pointer) error {
	start := debugStart()
	var err error
	for {
		_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(arg))
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			err = e
		}
		break
	}
	debugDone(op, ioctlName(req), path, start, err)
	return err
}

// cstring is the text of a NUL-terminated buffer.
func cstring(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}
