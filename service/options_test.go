package service

import (
	"errors"
	"strings"
	"testing"
)

func TestParseCreateOptions(t *testing.T) {
	o, err := ParseCreateOptions(map[string]string{"copyonwrite": "false", "from": "v1@2026-11-22T20:57:08.947340", "finalsnapshot": "no"})
	if err != nil {
		t.Fatal(err)
	}
	if !o.NoCOW || o.From != "v1@2026-11-22T20:57:08.947340" || !o.NoFinalSnapshot {
		t.Fatalf("got %+v", o)
	}
	if o, err := ParseCreateOptions(nil); err != nil || o != (CreateOptions{}) {
		t.Fatalf("no options: %+v, %v", o, err)
	}
	bad := map[string]map[string]string{
		"allowed options are copyonwrite, finalsnapshot, from":         {"bogus": "1"},
		"must be true or false":                                        {"copyonwrite": "maybe"},
		"must start with a letter":                                     {"from": "../../etc"},
		`options "CopyOnWrite" and "copyonwrite" name the same option`: {"copyonwrite": "true", "CopyOnWrite": "false"},
		`options "FROM" and "from" name the same option`:               {"from": "a1", "FROM": "b1"},
	}
	for want, opts := range bad {
		_, err := ParseCreateOptions(opts)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%v: got %v, want %q", opts, err, want)
		}
		if !errors.Is(err, ErrInvalidArg) {
			t.Errorf("%v: %v is not ErrInvalidArg", opts, err)
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"20G": 20 << 30, "512m": 512 << 20, "1T": 1 << 40} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "G", "-1G", "10", "1M", "lots"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) = nil error", in)
		}
	}
}
