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
)

// kindError is an error of one kind with its own message.
type kindError struct {
	kind error
	msg  string
}

func (e *kindError) Error() string        { return e.msg }
func (e *kindError) Is(target error) bool { return target == e.kind }

func errorf(kind error, format string, args ...any) error {
	return &kindError{kind: kind, msg: fmt.Sprintf(format, args...)}
}

func noSuchVolume(name string) error {
	return errorf(ErrNotFound, "no such volume %q", name)
}

func noSuchSnapshot(name string) error {
	return errorf(ErrNotFound, "no such snapshot %q", name)
}
