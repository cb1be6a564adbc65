package main

import (
	"maps"
	"strings"
	"testing"
)

func TestReadPolicies(t *testing.T) {
	conf := writeConf(t, `DATA_ROOT = /srv/butterd
[policy nightly]
snapshot = 1d
Purge = "1d:4w:1y"
; a comment
copyonwrite=false

[policy scratch]
finalsnapshot = false
[policy empty]
`)
	got, err := readPolicies(conf)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]string{
		"nightly": {"snapshot": "1d", "purge": "1d:4w:1y", "copyonwrite": "false"},
		"scratch": {"finalsnapshot": "false"},
		"empty":   {},
	}
	if len(got) != len(want) {
		t.Fatalf("policies %v, want %v", got, want)
	}
	for name, opts := range want {
		if !maps.Equal(got[name], opts) {
			t.Errorf("policy %s: %v, want %v", name, got[name], opts)
		}
	}
	// The top-level keys still resolve as before.
	if cfg, err := loadConfig(testFlags(t), conf, true, envOf(nil)); err != nil || cfg["DATA_ROOT"] != "/srv/butterd" {
		t.Fatalf("config with policies: %v %v", cfg, err)
	}
	for content, msg := range map[string]string{
		"[policy a]\nsnapshot = 1h\n[policy a]\n":    `:3: policy "a" is given twice`,
		"[policy a]\nsnapshot = 1h\nsnapshot = 2h\n": `:3: option "snapshot" is given twice`,
		"[policy a]\nsnapshot 1h\n":                  ":2: expected option = value",
		"[peer x]\n":                                 ":1: section [peer x]: the only sections are [policy NAME]",
		"[policy]\n":                                 "the only sections are [policy NAME]",
		"[policy a b]\n":                             "the only sections are [policy NAME]",
	} {
		_, err := readPolicies(writeConf(t, content))
		if err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%q: %v, want %q", content, err, msg)
		}
	}
}
