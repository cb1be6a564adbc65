package btrfs

import (
	"os"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Send writes the send stream of the read-only snapshot at path into out
// (a file, pipe or socket; the kernel writes to its descriptor directly).
// With parent (a read-only snapshot on the same filesystem) the stream is
// incremental against it. It returns when the stream is complete, or fails
// when out is closed by its reader (EPIPE).
func Send(path, parent string, out *os.File) error {
	fd, err := openSubvolume("send", path)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	args := sendArgs{SendFD: int64(out.Fd())}
	var clone uint64
	if parent != "" {
		info, err := GetInfo(parent)
		if err != nil {
			return err
		}
		if !info.ReadOnly {
			return &Error{"send", parent, ErrNotReadOnly}
		}
		clone = info.ID
		args.ParentRoot = info.ID
		args.CloneSources, args.CloneSourcesCount = &clone, 1
	}
	err = ioctl("send", path, fd, iocSend, unsafe.Pointer(&args))
	runtime.KeepAlive(out)
	runtime.KeepAlive(&clone)
	if err != nil {
		return &Error{"send", path, err}
	}
	return nil
}
