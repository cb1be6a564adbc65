package service

import (
	"errors"
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
	for _, bad := range []string{"v1", "v1@", "v1@yesterday", "../x@2026-11-22T20:57:08.947340", "v1@2026-11-22 20:57:08"} {
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

func FuzzValidateName(f *testing.F) {
	for _, s := range []string{"ab", "../x", "a/b", "x@y", "", ".a", "a..b", "é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if ValidateName(s) != nil {
			return
		}
		if strings.ContainsAny(s, "/@\x00 ") || strings.Contains(s, "..") || s[0] == '.' || len(s) > maxNameLen {
			t.Fatalf("ValidateName accepted %q", s)
		}
	})
}
