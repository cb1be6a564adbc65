package btrfs

import "golang.org/x/sys/unix"

// Sync writes out the dirty data of every file on the filesystem holding
// path (syncfs(2)), so that a snapshot taken right after has little left
// to flush.
func Sync(path string) error {
	const op = "sync"
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &Error{op, path, err}
	}
	defer unix.Close(fd)
	start := debugStart()
	err = unix.Syncfs(fd)
	debugDone(op, "syncfs", path, start, err)
	if err != nil {
		return &Error{op, path, err}
	}
	return nil
}
