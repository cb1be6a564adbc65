package units

import (
	"math"
	"strconv"
	"strings"
	"time"
)

// formatUnits are the units FormatSpan writes, largest first. Months and
// years are left out: systemd counts them as 30.44 and 365.25 days.
var formatUnits = []struct {
	name string
	d    time.Duration
}{
	{"w", 7 * 24 * time.Hour}, {"d", 24 * time.Hour}, {"h", time.Hour},
	{"min", time.Minute}, {"s", time.Second}, {"ms", time.Millisecond}, {"us", time.Microsecond},
}

// FormatSpan writes d as a systemd time span ("1h 30min", "3s", "1w 2d");
// below a microsecond is dropped, and 0 or less is "0".
func FormatSpan(d time.Duration) string {
	if d < time.Microsecond {
		return "0"
	}
	var parts []string
	for _, u := range formatUnits {
		if n := d / u.d; n > 0 {
			parts = append(parts, strconv.FormatInt(int64(n), 10)+u.name)
			d -= n * u.d
		}
	}
	return strings.Join(parts, " ")
}

// spanUnits are systemd's time span units (systemd.time(7)).
var spanUnits = map[string]time.Duration{
	"us": time.Microsecond, "usec": time.Microsecond, "µs": time.Microsecond, "μs": time.Microsecond,
	"ms": time.Millisecond, "msec": time.Millisecond,
	"s": time.Second, "sec": time.Second, "second": time.Second, "seconds": time.Second,
	"m": time.Minute, "min": time.Minute, "minute": time.Minute, "minutes": time.Minute,
	"h": time.Hour, "hr": time.Hour, "hour": time.Hour, "hours": time.Hour,
	"d": 24 * time.Hour, "day": 24 * time.Hour, "days": 24 * time.Hour,
	"w": 7 * 24 * time.Hour, "week": 7 * 24 * time.Hour, "weeks": 7 * 24 * time.Hour,
	"M": 2629800 * time.Second, "month": 2629800 * time.Second, "months": 2629800 * time.Second,
	"y": 31557600 * time.Second, "year": 31557600 * time.Second, "years": 31557600 * time.Second,
}

// ParseSpan reads a time span as butterd does everywhere: a bare integer
// means minutes (as in buttervolume), anything else is a systemd time span
// such as 90s, 1h, 2d or "1h 30min" (also as written by FormatSpan).
func ParseSpan(s string) (time.Duration, error) {
	bad := invalidf("time span %q: use minutes (a bare number) or a systemd time span such as 90s, 1h, 2d, \"1h 30min\"", s)
	in := strings.TrimSpace(s)
	if n, err := strconv.ParseUint(in, 10, 32); err == nil {
		return time.Duration(n) * time.Minute, nil
	}
	if in == "" {
		return 0, bad
	}
	var total time.Duration
	for rest := in; rest != ""; {
		rest = strings.TrimLeft(rest, " ")
		i := strings.IndexFunc(rest, func(r rune) bool { return r < '0' || r > '9' })
		if i == 0 || i < 0 {
			return 0, bad
		}
		n, err := strconv.ParseUint(rest[:i], 10, 32)
		if err != nil {
			return 0, bad
		}
		rest = strings.TrimLeft(rest[i:], " ")
		j := strings.IndexFunc(rest, func(r rune) bool { return r == ' ' || r >= '0' && r <= '9' })
		if j < 0 {
			j = len(rest)
		}
		unit, ok := spanUnits[rest[:j]]
		if !ok || time.Duration(n) > (math.MaxInt64-total)/unit {
			return 0, bad
		}
		total += time.Duration(n) * unit
		rest = rest[j:]
	}
	return total, nil
}
