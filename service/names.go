package service

import (
	"fmt"
	"strings"
	"time"
)

// Name rules (DESIGN.md): [a-zA-Z0-9][a-zA-Z0-9_.-]+, 2 to 96 characters.
// Names starting with "." are butterd's own temporaries and never valid here.
const (
	minNameLen = 2
	maxNameLen = 96
	nameChars  = "[a-zA-Z0-9][a-zA-Z0-9_.-]"
)

// TimestampLayout is buttervolume's %Y-%m-%dT%H:%M:%S.%f, in local time.
const TimestampLayout = "2006-01-02T15:04:05.000000"

// ValidateName checks a volume name and says what is allowed when it fails.
func ValidateName(name string) error {
	switch {
	case name == "":
		return errorf(ErrInvalidName, "volume name is empty: names are %d to %d characters of %s+", minNameLen, maxNameLen, nameChars)
	case len(name) > maxNameLen:
		return errorf(ErrInvalidName, "volume name %.20q... is %d characters long: at most %d are allowed", name, len(name), maxNameLen)
	case len(name) < minNameLen:
		return errorf(ErrInvalidName, "volume name %q is too short: names are %d to %d characters of %s+", name, minNameLen, maxNameLen, nameChars)
	case name[0] == '.' || name[0] == '_' || name[0] == '-':
		return errorf(ErrInvalidName, "volume name %q must start with a letter or digit (names starting with '.' are reserved)", name)
	case strings.Contains(name, ".."):
		return errorf(ErrInvalidName, "volume name %q must not contain '..'", name)
	}
	for i := 0; i < len(name); i++ {
		if !nameByte(name[i]) {
			return errorf(ErrInvalidName, "volume name %q includes invalid character %q: only %s+ is allowed (no '@', '/', spaces or non-ASCII)", name, rune(name[i]), nameChars)
		}
	}
	return nil
}

// stampForm reports whether stamp is laid out as TimestampLayout: digits
// where it has digits, its separators elsewhere.
func stampForm(stamp string) bool {
	if len(stamp) != len(TimestampLayout) {
		return false
	}
	for i := 0; i < len(stamp); i++ {
		c, l := stamp[i], TimestampLayout[i]
		if l >= '0' && l <= '9' {
			if c < '0' || c > '9' {
				return false
			}
		} else if c != l {
			return false
		}
	}
	return true
}

func nameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '_' || c == '.' || c == '-'
}

// SnapshotName is VOLUME@TIMESTAMP for a moment t, in local time.
func SnapshotName(volume string, t time.Time) string {
	return volume + "@" + t.Local().Format(TimestampLayout)
}

// ParseSnapshotName splits VOLUME@TIMESTAMP. The timestamp is read in local
// time; an ambiguous local time (clocks going back) gives the earlier instant.
func ParseSnapshotName(name string) (volume string, t time.Time, err error) {
	volume, stamp, ok := strings.Cut(name, "@")
	if !ok {
		return "", time.Time{}, errorf(ErrInvalidName, "snapshot name %q has no '@': snapshots are named VOLUME@%s", name, TimestampLayout)
	}
	if err := ValidateName(volume); err != nil {
		return "", time.Time{}, errorf(ErrInvalidName, "snapshot name %q: %v", name, err)
	}
	t, err = parseLocal(stamp)
	if err != nil {
		return "", time.Time{}, errorf(ErrInvalidName, "snapshot name %q: timestamp %q is not of the form %s", name, stamp, TimestampLayout)
	}
	return volume, t, nil
}

// ValidateSnapshotName checks a name given for an existing snapshot. It is
// looser than ParseSnapshotName so that adopted snapshots with other suffixes
// (buttervolume's NAME@TIMESTAMP@HOST) can still be named, but it never lets a
// path through.
func ValidateSnapshotName(name string) error {
	volume, rest, ok := strings.Cut(name, "@")
	if !ok {
		return errorf(ErrInvalidName, "snapshot name %q has no '@': snapshots are named VOLUME@%s", name, TimestampLayout)
	}
	if err := ValidateName(volume); err != nil {
		return errorf(ErrInvalidName, "snapshot name %q: %v", name, err)
	}
	if rest == "" || len(name) > 255 {
		return errorf(ErrInvalidName, "snapshot name %q: the part after '@' must be 1 to %d characters", name, 255-len(volume)-1)
	}
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		if !nameByte(c) && c != ':' && c != '@' {
			return errorf(ErrInvalidName, "snapshot name %q includes invalid character %q", name, rune(c))
		}
	}
	if strings.Contains(rest, "..") {
		return errorf(ErrInvalidName, "snapshot name %q must not contain '..'", name)
	}
	return nil
}

// parseLocal reads a buttervolume timestamp in local time. When clocks went
// back and the local time happened twice, it means the earlier instant.
// Only the exact form is read (time.Parse alone also takes one-digit hours
// and a comma before the microseconds).
func parseLocal(stamp string) (time.Time, error) {
	if !stampForm(stamp) {
		return time.Time{}, fmt.Errorf("timestamp %q is not of the form %s", stamp, TimestampLayout)
	}
	t, err := time.ParseInLocation(TimestampLayout, stamp, time.Local)
	if err != nil {
		return t, err
	}
	for _, back := range []time.Duration{time.Hour, 30 * time.Minute} {
		if earlier := t.Add(-back); earlier.Format(TimestampLayout) == stamp {
			return earlier, nil
		}
	}
	return t, nil
}

// MaxAhead is how far in the future a snapshot name made elsewhere (a
// pushed or imported snapshot, whose time is the one in its name) may be
// dated, beyond this host's clock: names carry local time without a zone,
// and two zones lie up to 26 hours apart (UTC+14, UTC-12), so 48 hours
// leave room for drift too, and not for a future-dated name to stay the
// volume's latest snapshot for long.
const MaxAhead = 48 * time.Hour

// checkNotAhead refuses a snapshot name dated t more than MaxAhead after
// now; fix says what to do, e.g. "check the sending host's clock".
func checkNotAhead(name string, t, now time.Time, fix string) error {
	if d := t.Sub(now); d > MaxAhead {
		return errorf(ErrInvalidName, "snapshot name %q is dated %s ahead of this host's clock (at most %s allowed): %s", name, roughSpan(d), roughSpan(MaxAhead), fix)
	}
	return nil
}

// roughSpan writes a long duration as whole years, days or hours.
func roughSpan(d time.Duration) string {
	const day, year = 24 * time.Hour, 365 * 24 * time.Hour
	plural := func(n int64, unit string) string {
		if n == 1 {
			return "1 " + unit
		}
		return fmt.Sprintf("%d %ss", n, unit)
	}
	switch {
	case d >= year:
		return plural(int64(d/year), "year")
	case d >= 2*day:
		return plural(int64(d/day), "day")
	}
	return fmt.Sprintf("%dh", int64(d/time.Hour))
}
