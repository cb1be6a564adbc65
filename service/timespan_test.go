package service

import (
	"testing"
	"time"
)

func TestParseSpan(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"60": time.Hour, "0": 0, "90s": 90 * time.Second, "1h": time.Hour, "2d": 48 * time.Hour,
		"1h 30min": 90 * time.Minute, "1h30m": 90 * time.Minute, "500ms": 500 * time.Millisecond, "1w": 7 * 24 * time.Hour,
	} {
		if got, err := ParseSpan(in); err != nil || got != want {
			t.Errorf("ParseSpan(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "h", "1x", "-5", "1.5h", "1h junk", "99999999999"} {
		if _, err := ParseSpan(in); err == nil {
			t.Errorf("ParseSpan(%q) accepted", in)
		}
	}
}
