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
	restore := blockSignals()
	err = ioctl("send", path, fd, iocSend, unsafe.Pointer(&args))
	restore()
	runtime.KeepAlive(out)
	runtime.KeepAlive(&clone)
	if err != nil {
		return &Error{"send", path, err}
	}
	return nil
}

// blockSignals blocks every signal on the calling goroutine's thread, which
// it keeps, until the returned function restores the mask and lets the
// thread go. The send ioctl must run so: a signal caught while it waits on a
// full pipe fails it with ERESTARTSYS, the kernel then restarts it from the
// beginning of the stream (SA_RESTART), and the reader gets the stream's
// start again after what it already had, over and over while signals keep
// coming. Signals pending meanwhile are delivered after.
func blockSignals() (restore func()) {
	runtime.LockOSThread()
	var all, old unix.Sigset_t
	for i := range all.Val {
		all.Val[i] = ^uint64(0)
	}
	if err := unix.PthreadSigmask(unix.SIG_BLOCK, &all, &old); err != nil {
		runtime.UnlockOSThread()
		return func() {}
	}
	return func() {
		unix.PthreadSigmask(unix.SIG_SETMASK, &old, nil)
		runtime.UnlockOSThread()
	}
}
