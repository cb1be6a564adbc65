package service

import (
	"strconv"
	"strings"
	"time"
	"unicode"
)

// spanUnits are systemd's time span units (systemd.time(7)).
var spanUnits = map[string]time.Duration{
	"us": time.Microsecond, "usec": time.Microsecond,
	"ms": time.Millisecond, "msec": time.Millisecond,
	"s": time.Second, "sec": time.Second, "second": time.Second, "seconds": time.Second,
	"m": time.Minute, "min": time.Minute, "minute": time.Minute, "minutes": time.Minute,
	"h": time.Hour, "hr": time.Hour, "hour": time.Hour, "hours": time.Hour,
	"d": 24 * time.Hour, "day": 24 * time.Hour, "days": 24 * time.Hour,
	"w": 7 * 24 * time.Hour, "week": 7 * 24 * time.Hour, "weeks": 7 * 24 * time.Hour,
	"M": 2629800 * time.Second, "month": 2629800 * time.Second, "months": 2629800 * time.Second,
	"y": 31557600 * time.Second, "year": 31557600 * time.Second, "years": 31557600 * time.Second,
}

// ParseSpan reads a time span: a bare integer means minutes (as in
// buttervolume); otherwise a systemd time span such as 90s, 1h, 2d or
// "1h 30min".
func ParseSpan(s string) (time.Duration, error) {
	in := strings.TrimSpace(s)
	if n, err := strconv.ParseUint(in, 10, 32); err == nil {
		return time.Duration(n) * time.Minute, nil
	}
	bad := errorf(ErrInvalidArg, "time span %q: use minutes (a bare number) or a systemd time span such as 90s, 1h, 2d, \"1h 30min\"", s)
	var total time.Duration
	rest := in
	if rest == "" {
		return 0, bad
	}
	for rest != "" {
		rest = strings.TrimLeft(rest, " ")
		i := strings.IndexFunc(rest, func(r rune) bool { return !unicode.IsDigit(r) })
		if i <= 0 {
			return 0, bad
		}
		n, err := strconv.ParseUint(rest[:i], 10, 32)
		if err != nil {
			return 0, bad
		}
		rest = strings.TrimLeft(rest[i:], " ")
		j := strings.IndexFunc(rest, func(r rune) bool { return !unicode.IsLetter(r) })
		if j < 0 {
			j = len(rest)
		}
		unit, ok := spanUnits[rest[:j]]
		if !ok {
			return 0, bad
		}
		total += time.Duration(n) * unit
		rest = rest[j:]
	}
	return total, nil
}
