package btrfs

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Error is the error returned by every function of this package:
// btrfs delete "/p": holds nested subvolumes: "a". errors.Is sees through it
// to ErrNested, ErrNotSubvolume, ErrNotBtrfs or the errno (unix.EEXIST, ...).
type Error struct {
	Op   string // create, snapshot, delete, nested, info, set-readonly, ...
	Path string // the path the failure is about, as given by the caller
	Err  error
}

func (e *Error) Error() string {
	return "btrfs " + e.Op + " " + strconv.Quote(e.Path) + ": " + fmt.Sprint(e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

var (
	// ErrNested: a subvolume holds nested subvolumes (Delete refuses, naming them).
	ErrNested = errors.New("holds nested subvolumes")
	// ErrNotSubvolume: the path is not the root of a subvolume.
	ErrNotSubvolume = errors.New("not a subvolume")
	// ErrNotBtrfs: the path is not on a BTRFS filesystem.
	ErrNotBtrfs = errors.New("not on btrfs")
	// ErrNotReadOnly: send needs read-only snapshots.
	ErrNotReadOnly = errors.New("not a read-only snapshot")
)

// nestedError names the nested subvolumes that stop a delete.
func nestedError(paths []string) error {
	q := make([]string, len(paths))
	for i, p := range paths {
		q[i] = strconv.Quote(p)
	}
	return fmt.Errorf("%w: %s", ErrNested, strings.Join(q, ", "))
}
