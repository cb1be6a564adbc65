package btrfs

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// SetReadOnly makes the subvolume at path read-only or writable
// (BTRFS_IOC_SUBVOL_SETFLAGS). Nothing is written when it already is.
func SetReadOnly(path string, ro bool) error {
	const op = "set-readonly"
	fd, err := openSubvolume(op, path)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var flags uint64
	if err := ioctl(op, path, fd, iocSubvolGetflags, unsafe.Pointer(&flags)); err != nil {
		return &Error{op, path, err}
	}
	want := flags &^ subvolRdonly
	if ro {
		want |= subvolRdonly
	}
	if want == flags {
		return nil
	}
	if err := ioctl(op, path, fd, iocSubvolSetflags, unsafe.Pointer(&want)); err != nil {
		return &Error{op, path, err}
	}
	return nil
}

// SetNoCOW turns copy-on-write (and checksums) off for a directory, whose
// new files inherit it, or for an empty file (FS_IOC_SETFLAGS |=
// FS_NOCOW_FL). A file holding data is refused with EINVAL: BTRFS would
// silently ignore the flag.
func SetNoCOW(path string) error {
	const op = "set-nocow"
	fd, st, err := openAttr(op, path)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if st.Mode&unix.S_IFMT == unix.S_IFREG && st.Size > 0 {
		if on, err := FileNoCOW(path, fd); err != nil || on {
			return err
		}
		return &Error{op, path, fmt.Errorf("NOCOW needs an empty file: %w", unix.EINVAL)}
	}
	return SetFileNoCOW(path, fd, true)
}

// NoCOW reports whether copy-on-write is off for a file or directory
// (FS_IOC_GETFLAGS & FS_NOCOW_FL).
func NoCOW(path string) (bool, error) {
	fd, _, err := openAttr("nocow", path)
	if err != nil {
		return false, err
	}
	defer unix.Close(fd)
	return FileNoCOW(path, fd)
}

// openAttr opens a regular file or a directory for FS_IOC_*FLAGS; other
// kinds (devices, fifos) would route the ioctl elsewhere and are refused,
// and a symbolic link is not followed (ELOOP).
func openAttr(op, path string) (int, unix.Stat_t, error) {
	var st unix.Stat_t
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, st, &Error{op, path, err}
	}
	err = unix.Fstat(fd, &st)
	if err == nil && st.Mode&unix.S_IFMT != unix.S_IFREG && st.Mode&unix.S_IFMT != unix.S_IFDIR {
		err = unix.EINVAL
	}
	if err != nil {
		unix.Close(fd)
		return -1, st, &Error{op, path, err}
	}
	return fd, st, nil
}
