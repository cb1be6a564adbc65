package retention

import (
	"strings"
	"testing"
	"time"
)

func TestParsePattern(t *testing.T) {
	good := []struct {
		in, canon string
		items     []time.Duration
	}{
		{"1h", "1h", []time.Duration{time.Hour}},
		{"4h:1d:2w:2y", "4h:1d:2w:2y", []time.Duration{4 * time.Hour, 24 * time.Hour, 14 * 24 * time.Hour, 2 * 365 * 24 * time.Hour}},
		{"1d:4w:1y", "1d:4w:1y", nil},
		{"90m:48h:14d:730d", "90m:2d:2w:2y", nil},
		{"60m:1440m", "1h:1d", nil},
		{"01h:007d", "1h:1w", nil},
		{"1m", "1m", []time.Duration{time.Minute}},
		{"100y", "100y", nil},
		{"52w:1y", "52w:1y", nil},
	}
	for _, c := range good {
		p, warns, err := ParsePattern(c.in)
		if err != nil || len(warns) != 0 {
			t.Errorf("ParsePattern(%q) = %v, %v; want no error nor warning", c.in, warns, err)
			continue
		}
		if got := p.String(); got != c.canon {
			t.Errorf("ParsePattern(%q).String() = %q, want %q", c.in, got, c.canon)
		}
		if c.items != nil && !equalDurations(p.Items(), c.items) {
			t.Errorf("ParsePattern(%q).Items() = %v, want %v", c.in, p.Items(), c.items)
		}
	}
}

func TestParsePatternOldSpelling(t *testing.T) {
	for in, canon := range map[string]string{"2h:2h": "2h", "1d:1d:1d": "1d", "60m:1h": "1h"} {
		p, warns, err := ParsePattern(in)
		if err != nil {
			t.Errorf("ParsePattern(%q) = %v", in, err)
			continue
		}
		if p.String() != canon {
			t.Errorf("ParsePattern(%q) = %q, want %q", in, p, canon)
		}
		if len(warns) != 1 || !strings.Contains(warns[0], "read as \""+canon+"\"") || !strings.Contains(warns[0], "write \""+canon+"\"") {
			t.Errorf("ParsePattern(%q) warnings = %q", in, warns)
		}
	}
	_, warns, _ := ParsePattern("2h:2h")
	want := `purge pattern "2h:2h": read as "2h" (buttervolume's old spelling of one item: delete snapshots 2h old or older); write "2h"`
	if len(warns) != 1 || warns[0] != want {
		t.Errorf("warning = %q, want %q", warns, want)
	}
}

func TestParsePatternErrors(t *testing.T) {
	bad := map[string]string{
		"1h:30m":                   `purge pattern "1h:30m": items must be strictly increasing: 30m (30 minutes) is not longer than 1h (60 minutes)`,
		"2x":                       `purge pattern "2x": item "2x": use a positive number with a unit m, h, d, w or y (a bare number means minutes)`,
		"":                         `purge pattern "": no items: write T1[:T2...] such as 1d:4w:1y (units m, h, d, w, y)`,
		"1h::1d":                   `purge pattern "1h::1d": item 2 is empty: use a positive number with a unit m, h, d, w or y`,
		"0":                        `purge pattern "0": item "0": use a positive number with a unit m, h, d, w or y (a bare number means minutes)`,
		"0h":                       `purge pattern "0h": item "0h": use a positive number with a unit m, h, d, w or y (a bare number means minutes)`,
		"101y":                     `purge pattern "101y": item "101y": at most 100y (52560000 minutes)`,
		"1h:1h:1d":                 `purge pattern "1h:1h:1d": items must be strictly increasing: 1h (60 minutes) is not longer than 1h (60 minutes)`,
		"1d:24h:1w":                `purge pattern "1d:24h:1w": items must be strictly increasing: 24h (1440 minutes) is not longer than 1d (1440 minutes)`,
		"1d:1m":                    `purge pattern "1d:1m": items must be strictly increasing: 1m (1 minute) is not longer than 1d (1440 minutes)`,
		"99999999999999999999999y": `purge pattern "99999999999999999999999y": item "99999999999999999999999y": at most 100y (52560000 minutes)`,
	}
	for in, want := range bad {
		p, warns, err := ParsePattern(in)
		if err == nil {
			t.Errorf("ParsePattern(%q) = %q, %q; want error", in, p, warns)
			continue
		}
		if err.Error() != want {
			t.Errorf("ParsePattern(%q)\n got %q\nwant %q", in, err, want)
		}
	}
	for _, in := range []string{"h", "-1h", "+1h", "1.5h", "1H", "1M", "1 h", " 1h", "1h ", "1h:", ":1h", "1min", "2days", "1s", "1hh", "1h,1d", "١h"} {
		if _, _, err := ParsePattern(in); err == nil || !strings.HasPrefix(err.Error(), "purge pattern ") {
			t.Errorf("ParsePattern(%q) = %v, want a purge pattern error", in, err)
		}
	}
}

func TestZeroPattern(t *testing.T) {
	var p Pattern
	if !p.IsZero() || p.String() != "" || len(p.Items()) != 0 {
		t.Fatalf("zero Pattern: IsZero %v, String %q, Items %v", p.IsZero(), p, p.Items())
	}
}

func equalDurations(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// A bare number means minutes, as everywhere in butterd.
func TestParsePatternBareMinutes(t *testing.T) {
	p, warns, err := ParsePattern("60:1d")
	if err != nil || len(warns) != 0 || p.String() != "1h:1d" {
		t.Fatalf("ParsePattern(\"60:1d\") = %v, %v, %v; want 1h:1d", p, warns, err)
	}
}
