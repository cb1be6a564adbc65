package btrfs

import (
	"errors"
	"fmt"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// IsBtrfs reports whether path lies on a BTRFS filesystem.
func IsBtrfs(path string) (bool, error) {
	var fs unix.Statfs_t
	if err := unix.Statfs(path, &fs); err != nil {
		return false, &Error{"is-btrfs", path, err}
	}
	return isBtrfs(&fs), nil
}

// IsSubvolume reports whether path is the root directory of a subvolume:
// a directory with inode 256 on BTRFS. A plain directory, a file or a path
// on another filesystem gives false and no error.
func IsSubvolume(path string) (bool, error) {
	switch err := checkPath(path); err {
	case nil:
		return true, nil
	case ErrNotSubvolume, ErrNotBtrfs:
		return false, nil
	default:
		return false, &Error{"is-subvolume", path, err}
	}
}

// checkPath says why path is not the root of a subvolume, or nil. A
// symbolic link is not one, whatever it points to.
func checkPath(path string) error {
	var st unix.Stat_t
	var fs unix.Statfs_t
	if err := unix.Lstat(path, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return ErrNotSubvolume
	}
	if err := unix.Statfs(path, &fs); err != nil {
		return err
	}
	return checkSubvolume(&st, &fs)
}

func isBtrfs(fs *unix.Statfs_t) bool {
	return uint32(fs.Type) == unix.BTRFS_SUPER_MAGIC
}

// checkSubvolume says why st and fs are not those of a subvolume's root, or nil.
func checkSubvolume(st *unix.Stat_t, fs *unix.Statfs_t) error {
	if !isBtrfs(fs) {
		return ErrNotBtrfs
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR || st.Ino != firstFreeObjectID {
		return ErrNotSubvolume
	}
	return nil
}

// openSubvolume opens the root directory of the subvolume at path for
// ioctls, refusing anything else with ErrNotSubvolume or ErrNotBtrfs: a
// symbolic link is not followed, so that nothing planted in the data root
// leads an ioctl outside it.
func openSubvolume(op, path string) (int, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err == unix.ENOTDIR || err == unix.ELOOP {
		var st unix.Stat_t
		if unix.Lstat(path, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
			err = fmt.Errorf("%w: it is a symbolic link", ErrNotSubvolume)
		} else {
			err = ErrNotSubvolume
		}
	}
	if err != nil {
		return -1, &Error{op, path, err}
	}
	var st unix.Stat_t
	var fs unix.Statfs_t
	err = unix.Fstat(fd, &st)
	if err == nil {
		err = unix.Fstatfs(fd, &fs)
	}
	if err == nil {
		err = checkSubvolume(&st, &fs)
	}
	if err != nil {
		unix.Close(fd)
		return -1, &Error{op, path, err}
	}
	return fd, nil
}

// split cuts path into its directory and a name a subvolume can have.
func split(path string) (dir, name string, err error) {
	dir, name = filepath.Split(filepath.Clean(path))
	switch {
	case name == "" || name == "." || name == "..":
		return "", "", unix.EINVAL
	case len(name) > volNameMax:
		return "", "", unix.ENAMETOOLONG
	case dir == "":
		dir = "."
	}
	return dir, name, nil
}

// reason reduces an error of containerd/btrfs to its errno, or to
// ErrNotBtrfs when dir is not on BTRFS (the ioctl then fails with ENOTTY).
func reason(dir string, err error) error {
	var errno unix.Errno
	if !errors.As(err, &errno) {
		return err
	}
	var fs unix.Statfs_t
	if unix.Statfs(dir, &fs) == nil && !isBtrfs(&fs) {
		return ErrNotBtrfs
	}
	return errno
}
