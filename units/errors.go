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
