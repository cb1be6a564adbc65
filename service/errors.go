package service

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// Error kinds. Edges (plugin, D-Bus, CLI) map them to their own answers with
// errors.Is; messages stay the service's own.
var (
	ErrNotFound     = errors.New("not found")
	ErrInvalidName  = errors.New("invalid name")
	ErrInvalidArg   = errors.New("invalid argument")
	ErrExists       = errors.New("already exists")
	ErrBusy         = errors.New("busy")
	ErrInUse        = errors.New("in use")
	ErrAccessDenied = errors.New("access denied")
	// ErrNoSpace: the pool (the filesystem of the data root) is full.
	ErrNoSpace = errors.New("no space left")

	// ErrNoSuchVolume, ErrNoSuchSnapshot and ErrNoSuchJob are ErrNotFound too.
	ErrNoSuchVolume   = errors.New("no such volume")
	ErrNoSuchSnapshot = errors.New("no such snapshot")
	ErrNoSuchJob      = errors.New("no such job")
)

// kindError is an error of one or more kinds with its own message.
type kindError struct {
	kinds []error
	msg   string
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Is(target error) bool {
	for _, k := range e.kinds {
		if target == k {
			return true
		}
	}
	return false
}

func errorf(kind error, format string, args ...any) error {
	return &kindError{kinds: []error{kind}, msg: fmt.Sprintf(format, args...)}
}

func noSuchVolume(name string) error {
	return &kindError{kinds: []error{ErrNotFound, ErrNoSuchVolume}, msg: fmt.Sprintf("no such volume %q", name)}
}

func noSuchSnapshot(name string) error {
	return &kindError{kinds: []error{ErrNotFound, ErrNoSuchSnapshot}, msg: fmt.Sprintf("no such snapshot %q", name)}
}

// noSpace turns a failure of what for lack of room on the pool (ENOSPC, or
// EDQUOT under a quota) into an ErrNoSpace error that says so and what to
// do. Other errors, and nil, pass unchanged.
func (s *Store) noSpace(what string, err error) error {
	code := "ENOSPC"
	switch {
	case err == nil || errors.Is(err, ErrNoSpace):
		return err
	case errors.Is(err, unix.EDQUOT):
		code = "EDQUOT: over its quota"
	case !errors.Is(err, unix.ENOSPC):
		return err
	}
	return &kindError{kinds: []error{ErrNoSpace}, msg: fmt.Sprintf(
		"%s: no space left on the pool (%s) of data root %q: free space (remove snapshots or volumes no longer needed) or grow the pool, then try again (%v)",
		what, code, s.cfg.Root, err)}
}
