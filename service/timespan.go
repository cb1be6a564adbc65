package service

import (
	"time"

	"butterd/units"
)

// ParseSpan reads a time span: a bare integer means minutes (as in
// buttervolume); otherwise a systemd time span such as 90s, 1h, 2d or
// "1h 30min".
func ParseSpan(s string) (time.Duration, error) {
	d, err := units.ParseSpan(s)
	if err != nil {
		return 0, errorf(ErrInvalidArg, "%v", err)
	}
	return d, nil
}
