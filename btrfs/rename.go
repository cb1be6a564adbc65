package btrfs

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Exchange swaps a and b atomically (renameat2 RENAME_EXCHANGE): files,
// directories or subvolumes. Keep a and b in one directory: a read-only
// subvolume cannot move to another one.
func Exchange(a, b string) error {
	if err := renameat2("exchange", a, b, unix.RENAME_EXCHANGE); err != nil {
		return &Error{"exchange", a, fmt.Errorf("with %q: %w", b, err)}
	}
	return nil
}

// RenameNoReplace renames from to to, failing with EEXIST when to exists
// (renameat2 RENAME_NOREPLACE).
func RenameNoReplace(from, to string) error {
	if err := renameat2("rename", from, to, unix.RENAME_NOREPLACE); err != nil {
		return &Error{"rename", from, fmt.Errorf("to %q: %w", to, err)}
	}
	return nil
}

func renameat2(op, from, to string, flags uint) error {
	start := debugStart()
	err := unix.Renameat2(unix.AT_FDCWD, from, unix.AT_FDCWD, to, flags)
	debugDone(op, "renameat2", from, start, err)
	return err
}
