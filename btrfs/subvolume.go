package btrfs

import (
	"fmt"
	"path/filepath"
	"sort"
	"unsafe"

	cbtrfs "github.com/containerd/btrfs/v2"
	"golang.org/x/sys/unix"
)

// Create makes an empty subvolume at path (BTRFS_IOC_SUBVOL_CREATE in the
// parent directory, which must exist).
func Create(path string) error {
	const op = "create"
	dir, name, err := split(path)
	if err != nil {
		return &Error{op, path, err}
	}
	start := debugStart()
	err = cbtrfs.SubvolCreate(filepath.Join(dir, name))
	debugDone(op, "BTRFS_IOC_SUBVOL_CREATE", path, start, err)
	if err != nil {
		return &Error{op, path, reason(dir, err)}
	}
	return nil
}

// Snapshot makes dst a snapshot of the subvolume src, read-only if asked
// (BTRFS_IOC_SNAP_CREATE_V2). It commits a transaction: milliseconds. src
// must be the root of a subvolume, not a symbolic link to one: given a
// plain directory, the kernel would snapshot the subvolume holding it.
func Snapshot(src, dst string, readonly bool) error {
	const op = "snapshot"
	dir, name, err := split(dst)
	if err != nil {
		return &Error{op, dst, err}
	}
	sfd, err := openSubvolume(op, src)
	if err != nil {
		return err
	}
	defer unix.Close(sfd)
	dfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &Error{op, dst, fmt.Errorf("from %q: %w", src, err)}
	}
	defer unix.Close(dfd)
	args := volArgsV2{Fd: int64(sfd)}
	if readonly {
		args.Flags = subvolRdonly
	}
	copy(args.Name[:], name)
	if err := ioctl(op, dst, dfd, iocSnapCreateV2, unsafe.Pointer(&args)); err != nil {
		return &Error{op, dst, fmt.Errorf("from %q: %w", src, reason(dir, err))}
	}
	return nil
}

// Delete deletes the subvolume at path, read-only or not
// (BTRFS_IOC_SNAP_DESTROY; the space is freed in the background). It never
// deletes recursively: a subvolume holding nested subvolumes is refused with
// ErrNested, naming them.
func Delete(path string) error {
	const op = "delete"
	dir, name, err := split(path)
	if err != nil {
		return &Error{op, path, err}
	}
	fd, err := openSubvolume(op, path)
	if err != nil {
		return err
	}
	paths, err := nested(op, path, fd)
	unix.Close(fd)
	if err != nil {
		return &Error{op, path, err}
	}
	if len(paths) > 0 {
		return &Error{op, path, nestedError(paths)}
	}
	dfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &Error{op, path, err}
	}
	defer unix.Close(dfd)
	var args volArgs
	copy(args.Name[:], name)
	err = ioctl(op, path, dfd, iocSnapDestroy, unsafe.Pointer(&args))
	if err == unix.ENOTEMPTY { // a nested subvolume appeared meanwhile
		err = fmt.Errorf("%w (%w)", ErrNested, err)
	}
	if err != nil {
		return &Error{op, path, err}
	}
	return nil
}

// Nested lists the subvolumes directly inside the subvolume at path (not
// those inside them), as paths relative to path, sorted. It reads the
// subvolume's root references (BTRFS_IOC_GET_SUBVOL_ROOTREF) and looks each
// one up (BTRFS_IOC_INO_LOOKUP_USER): no walk of the tree.
func Nested(path string) ([]string, error) {
	const op = "nested"
	fd, err := openSubvolume(op, path)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	paths, err := nested(op, path, fd)
	if err != nil {
		return nil, &Error{op, path, err}
	}
	return paths, nil
}

// nested lists the subvolumes directly inside the subvolume whose root
// directory is open as fd.
func nested(op, path string, fd int) ([]string, error) {
	var refs rootrefArgs
	var paths []string
	for {
		// EOVERFLOW: the buffer is full and min_treeid is set for the next call.
		err := ioctl(op, path, fd, iocGetSubvolRootref, unsafe.Pointer(&refs))
		if err != nil && err != unix.EOVERFLOW {
			return nil, err
		}
		for _, r := range refs.Rootref[:refs.NumItems] {
			args := inoLookupUserArgs{DirID: r.DirID, TreeID: r.TreeID}
			if err := ioctl(op, path, fd, iocInoLookupUser, unsafe.Pointer(&args)); err != nil {
				return nil, err
			}
			// path is "" or "dir/sub/", relative to fd.
			paths = append(paths, cstring(args.Path[:])+cstring(args.Name[:]))
		}
		if err == nil {
			break
		}
	}
	sort.Strings(paths)
	return paths, nil
}
