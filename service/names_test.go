package service

import (
	"errors"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
	_ "time/tzdata"
)

func TestValidateName(t *testing.T) {
	good := []string{"ab", "v1", "my_db-data.2", "A9", strings.Repeat("a", 96)}
	for _, n := range good {
		if err := ValidateName(n); err != nil {
			t.Errorf("ValidateName(%q) = %v, want nil", n, err)
		}
	}
	bad := map[string]string{
		"":                      "empty",
		"a":                     "too short",
		strings.Repeat("a", 97): "at most 96",
		"../x":                  "start with a letter",
		"a/b":                   "invalid character '/'",
		"x@y":                   "invalid character '@'",
		".hidden":               "reserved",
		"-opt":                  "start with a letter",
		"a..b":                  "'..'",
		"nul\x00x":              "invalid character",
		"café":                  "invalid character",
		"sp ace":                "invalid character ' '",
		"a\nb":                  "invalid character",
	}
	for n, want := range bad {
		err := ValidateName(n)
		if err == nil {
			t.Errorf("ValidateName(%q) = nil, want error", n)
			continue
		}
		if !errors.Is(err, ErrInvalidName) {
			t.Errorf("ValidateName(%q) = %v, not ErrInvalidName", n, err)
		}
		if !strings.Contains(err.Error(), want) {
			t.Errorf("ValidateName(%q) = %q, want it to mention %q", n, err, want)
		}
	}
}

func TestSnapshotNameRoundTrip(t *testing.T) {
	at := time.Date(2026, 11, 22, 20, 57, 8, 947340000, time.Local)
	name := SnapshotName("v1", at)
	if name != "v1@2026-11-22T20:57:08.947340" {
		t.Fatalf("SnapshotName = %q", name)
	}
	vol, got, err := ParseSnapshotName(name)
	if err != nil || vol != "v1" || !got.Equal(at) {
		t.Fatalf("ParseSnapshotName(%q) = %q, %v, %v", name, vol, got, err)
	}
	for _, bad := range []string{"v1", "v1@", "v1@yesterday", "../x@2026-11-22T20:57:08.947340", "v1@2026-11-22 20:57:08",
		"v1@2026-11-22T20:57:08,947340", "v1@2026-11-22T0:57:08.947340", "v1@2026-11-22T20:57:08.9473400"} {
		if _, _, err := ParseSnapshotName(bad); !errors.Is(err, ErrInvalidName) {
			t.Errorf("ParseSnapshotName(%q) = %v, want ErrInvalidName", bad, err)
		}
	}
}

func TestValidateSnapshotName(t *testing.T) {
	for _, n := range []string{"v1@2026-11-22T20:57:08.947340", "v1@2026-11-22T20:57:08.947340@host2"} {
		if err := ValidateSnapshotName(n); err != nil {
			t.Errorf("ValidateSnapshotName(%q) = %v", n, err)
		}
	}
	for _, n := range []string{"v1", "v1@", "v1@a/b", "v1@..", "x/y@1", "v1@a b", "v1@" + strings.Repeat("1", 300)} {
		if err := ValidateSnapshotName(n); err == nil {
			t.Errorf("ValidateSnapshotName(%q) = nil, want error", n)
		}
	}
}

// An ambiguous local time (clocks going back) means the earlier instant.
func TestParseLocalAmbiguous(t *testing.T) {
	loc, err := time.LoadLocation("Europe/Paris") // tzdata is embedded in the test
	if err != nil {
		t.Fatal(err)
	}
	old := time.Local
	time.Local = loc
	defer func() { time.Local = old }()
	got, err := parseLocal("2026-10-25T02:30:00.000000")
	if err != nil {
		t.Fatal(err)
	}
	want := time.Date(2026, 10, 25, 0, 30, 0, 0, time.UTC) // 02:30 CEST
	if !got.Equal(want) {
		t.Fatalf("parseLocal = %v, want %v (the earlier instant)", got.UTC(), want)
	}
}

func TestSnapshotTime(t *testing.T) {
	name := time.Date(2026, 1, 2, 3, 4, 5, 0, time.Local)
	e := &snapshotEntry{nameTime: name, otime: name.Add(2 * time.Second)}
	if !e.time().Equal(e.otime) {
		t.Errorf("otime within slack: got %v, want otime", e.time())
	}
	e = &snapshotEntry{nameTime: name, otime: name.Add(48 * time.Hour)} // received or copied
	if !e.time().Equal(name) {
		t.Errorf("otime far from name: got %v, want name time", e.time())
	}
	e = &snapshotEntry{otime: name}
	if !e.time().Equal(name) {
		t.Errorf("unparsed name: got %v, want otime", e.time())
	}
}

// nameRule is DESIGN.md's name rule, written as a regular expression.
var nameRule = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{1,95}$`)

// FuzzValidateName: ValidateName accepts exactly DESIGN.md's rule, and an
// accepted name is one path element under volumes/.
func FuzzValidateName(f *testing.F) {
	for _, s := range []string{"ab", "../x", "a/b", "x@y", "", ".a", "a..b", "é", "a\x00", strings.Repeat("a", 97)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := ValidateName(s)
		want := nameRule.MatchString(s) && !strings.Contains(s, "..")
		if (err == nil) != want {
			t.Fatalf("ValidateName(%q) = %v, the rule says %v", s, err, want)
		}
		if err != nil {
			if !errors.Is(err, ErrInvalidName) {
				t.Fatalf("ValidateName(%q) = %v, not ErrInvalidName", s, err)
			}
			return
		}
		if p := "/data/volumes/" + s; filepath.Clean(p) != p || filepath.Dir(p) != "/data/volumes" {
			t.Fatalf("ValidateName accepted %q, which is not one path element", s)
		}
	})
}

// FuzzSnapshotName: an accepted snapshot name is one path element under
// snapshots/ whose volume part is a valid name; ParseSnapshotName accepts
// only what ValidateSnapshotName accepts, and SnapshotName of what it
// reads gives the same volume and moment back.
func FuzzSnapshotName(f *testing.F) {
	for _, s := range []string{"v1@2026-11-22T20:57:08.947340", "v1@2026-11-22T20:57:08.947340@host2", "v1@..", "v1@a/b",
		"x/y@1", "v1@", "@x", "v1@2026-10-25T02:30:00.000000", "v1@9999-12-31T23:59:59.999999", "v1@0000-01-01T00:00:00.000000"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		verr := ValidateSnapshotName(s)
		volume, at, perr := ParseSnapshotName(s)
		if perr == nil && verr != nil {
			t.Fatalf("ParseSnapshotName(%q) accepts what ValidateSnapshotName refuses: %v", s, verr)
		}
		for _, err := range []error{verr, perr} {
			if err != nil && !errors.Is(err, ErrInvalidName) {
				t.Fatalf("%q: %v is not ErrInvalidName", s, err)
			}
		}
		if verr != nil {
			return
		}
		v, _, _ := strings.Cut(s, "@")
		if p := "/data/snapshots/" + s; len(s) > 255 || filepath.Clean(p) != p || filepath.Dir(p) != "/data/snapshots" || ValidateName(v) != nil {
			t.Fatalf("ValidateSnapshotName accepted %q", s)
		}
		if perr != nil {
			return
		}
		back := SnapshotName(volume, at)
		v2, at2, err := ParseSnapshotName(back)
		if err != nil || v2 != volume || !at2.Equal(at) {
			t.Fatalf("ParseSnapshotName(%q) = %q, %v; SnapshotName of it %q reads %q, %v, %v", s, volume, at, back, v2, at2, err)
		}
	})
}

func TestCheckNotAhead(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.Local)
	for _, c := range []struct {
		ahead time.Duration
		want  string // "" when allowed
	}{
		{-1000 * time.Hour, ""},
		{0, ""},
		{MaxAhead, ""},
		{26 * time.Hour, ""},
		{MaxAhead + time.Second, "is dated 2 days ahead"},
		{30 * 24 * time.Hour, "is dated 30 days ahead"},
		{400 * 24 * time.Hour, "is dated 1 year ahead"},
		{73*365*24*time.Hour + time.Hour, "is dated 73 years ahead"},
	} {
		name := SnapshotName("pg", now.Add(c.ahead))
		_, ts, err := ParseSnapshotName(name)
		if err != nil {
			t.Fatal(err)
		}
		err = checkNotAhead(name, ts, now, "check the sending host's clock")
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s ahead: refused: %v", c.ahead, err)
		case c.want != "" && (!errors.Is(err, ErrInvalidName) || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s ahead: %v, want ErrInvalidName saying %q", c.ahead, err, c.want)
		}
	}
}
