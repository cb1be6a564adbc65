package units

import (
	"testing"
	"time"
)

func TestFormatSpan(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0", time.Nanosecond: "0", time.Microsecond: "1us", 3 * time.Second: "3s", time.Minute: "1min",
		90 * time.Minute: "1h 30min", 24 * time.Hour: "1d", 9 * 24 * time.Hour: "1w 2d",
		1500 * time.Millisecond: "1s 500ms", time.Hour + 1001*time.Microsecond: "1h 1ms 1us",
	} {
		if got := FormatSpan(d); got != want {
			t.Errorf("FormatSpan(%v) = %q, want %q", d, got, want)
		}
		if d >= time.Microsecond {
			if back, err := ParseSpan(want); err != nil || back != d.Truncate(time.Microsecond) {
				t.Errorf("ParseSpan(%q) = %v, %v; want %v", want, back, err, d)
			}
		}
	}
}

func TestParseSpan(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"60": time.Hour, "90s": 90 * time.Second, "1h 30min": 90 * time.Minute, "1h30m": 90 * time.Minute,
		"2 days": 48 * time.Hour, "500ms": 500 * time.Millisecond, "1w": 7 * 24 * time.Hour,
	} {
		if got, err := ParseSpan(in); err != nil || got != want {
			t.Errorf("ParseSpan(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "h", "1x", "-5", "1.5h", "1h junk", "4294967295y", "99999999999"} {
		if _, err := ParseSpan(in); err == nil {
			t.Errorf("ParseSpan(%q) accepted", in)
		}
	}
}
