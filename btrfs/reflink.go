package btrfs

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// The calls on open files (named by name in errors and logs): a sync
// writes through descriptors it opened without following symlinks, never
// through paths.

// Reflink makes the file open as dst (for writing, empty) share all the
// data of the file open as src (FICLONE): no data is copied. BTRFS refuses
// (unix.EINVAL) when one file is NOCOW and the other is not, and
// (unix.EXDEV) across filesystems: then the bytes must be copied.
func Reflink(name string, dst, src int) error {
	start := debugStart()
	err := unix.IoctlFileClone(dst, src)
	debugDone("reflink", "FICLONE", name, start, err)
	if err != nil {
		return &Error{"reflink", name, err}
	}
	return nil
}

// FileNoCOW reports whether copy-on-write is off for the open file or
// directory fd (FS_IOC_GETFLAGS & FS_NOCOW_FL).
func FileNoCOW(name string, fd int) (bool, error) {
	var flags uint32
	if err := ioctl("nocow", name, fd, iocFsGetflags, unsafe.Pointer(&flags)); err != nil {
		return false, &Error{"nocow", name, err}
	}
	return flags&fsNocowFl != 0, nil
}

// SetFileNoCOW turns copy-on-write off (on=true) or on for the open
// directory or empty file fd. Nothing is written when it already is so.
func SetFileNoCOW(name string, fd int, on bool) error {
	const op = "set-nocow"
	var flags uint32
	if err := ioctl(op, name, fd, iocFsGetflags, unsafe.Pointer(&flags)); err != nil {
		return &Error{op, name, err}
	}
	want := flags &^ fsNocowFl
	if on {
		want |= fsNocowFl
	}
	if want == flags {
		return nil
	}
	if err := ioctl(op, name, fd, iocFsSetflags, unsafe.Pointer(&want)); err != nil {
		return &Error{op, name, err}
	}
	return nil
}
