package service

import (
	"errors"
	"fmt"
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
