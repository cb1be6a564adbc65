package units

import (
	"errors"
	"fmt"
)

// ErrInvalid matches (errors.Is) every error about a schedule or a unit file
// that this package refuses: bad names, hosts, spans, characters, or a timer
// that does not carry a readable definition.
var ErrInvalid = errors.New("invalid schedule")

type invalidError struct{ msg string }

func (e *invalidError) Error() string        { return e.msg }
func (e *invalidError) Is(target error) bool { return target == ErrInvalid }

func invalidf(format string, args ...any) error {
	return &invalidError{msg: fmt.Sprintf(format, args...)}
}

// CalendarError is the error of a calendar expression systemd refuses;
// why is what systemd said.
func CalendarError(expr, why string) error {
	if why != "" {
		why = " (" + why + ")"
	}
	return invalidf("calendar expression %q is not one systemd takes%s: use e.g. daily, weekly or \"Mon *-*-* 03:00\" (see systemd.time(7))", expr, why)
}
