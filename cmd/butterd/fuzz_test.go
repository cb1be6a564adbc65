package main

import (
	"errors"
	"fmt"
	"maps"
	"sort"
	"strings"
	"testing"

	"butterd/service"
)

// FuzzConfigFile reads any text as the config file, for its keys and for
// its [policy NAME] sections. Whatever the text: no panic; an error names
// the file; accepted keys are known ones; written out again as KEY =
// "value" lines, the keys and policies read back the same; and the
// options of each policy are checked by the service without panicking,
// refused only as invalid.
func FuzzConfigFile(f *testing.F) {
	for _, s := range []string{
		"DATA_ROOT = /srv/butterd\nLOG_LEVEL=debug\n",
		"data_root = \"/srv/b d\"\n# c\n; c\n\n",
		"DATA_ROOT = /srv\n[policy nightly]\nsnapshot = 1d\nPurge = \"1d:4w:1y\"\ncopyonwrite=false\n[policy empty]\n",
		"[policy a]\nsnapshot = 1h\n[policy a]\n",
		"[policy a]\nsnapshot = 1h\nsnapshot = 2h\n",
		"[policy a]\nfrom = v1@x\npolicy = b\n",
		"[peer x]\n", "[policy]\n", "[policy a b]\n", "[policy a]]\n", "[\n",
		"NOPE = 1\n", "= 1\n", "DATA_ROOT\n", "DATA_ROOT = \"\"\"\n",
		"DATA_ROOT = a\rb\r\n", "\xff\xfe=\x00\n",
		"[policy a]\nsnapshot = " + strings.Repeat("9", 70000) + "\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		const name = "/etc/butterd/butterd.conf"
		keys, kerr := parseConfig(strings.NewReader(string(data)), name)
		pols, perr := parsePolicies(strings.NewReader(string(data)), name)
		for _, err := range []error{kerr, perr} {
			if err != nil && !strings.HasPrefix(err.Error(), name+":") {
				t.Fatalf("error %q does not name the file", err)
			}
		}
		if kerr == nil {
			for k := range keys {
				if !known(k) {
					t.Fatalf("unknown key %q accepted", k)
				}
			}
			again, err := parseConfig(strings.NewReader(writeConfig(keys, nil)), name)
			if err != nil || !maps.Equal(again, keys) {
				t.Fatalf("keys %q written out read back as %q, %v", keys, again, err)
			}
		}
		if perr != nil {
			return
		}
		again, err := parsePolicies(strings.NewReader(writeConfig(nil, pols)), name)
		if err != nil || !maps.EqualFunc(again, pols, maps.Equal) {
			t.Fatalf("policies %q written out read back as %q, %v", pols, again, err)
		}
		for p, opts := range pols {
			if p == "" || strings.ContainsAny(p, " \t[") {
				t.Fatalf("policy name %q accepted", p)
			}
			if _, err := service.ParseCreateOptions(opts); err != nil &&
				!errors.Is(err, service.ErrInvalidArg) && !errors.Is(err, service.ErrInvalidName) {
				t.Fatalf("policy %q options %q: %v is not an invalid-argument error", p, opts, err)
			}
		}
	})
}

func known(key string) bool {
	for _, k := range configKeys {
		if k.name == key {
			return true
		}
	}
	return false
}

// writeConfig writes keys and policies as a config file, every value in
// double quotes.
func writeConfig(keys map[string]string, pols map[string]map[string]string) string {
	var b strings.Builder
	for _, k := range sortedKeys(keys) {
		fmt.Fprintf(&b, "%s = \"%s\"\n", k, keys[k])
	}
	for _, p := range sortedKeys(pols) {
		fmt.Fprintf(&b, "[policy %s]\n", p)
		for _, k := range sortedKeys(pols[p]) {
			fmt.Fprintf(&b, "%s = \"%s\"\n", k, pols[p][k])
		}
	}
	return b.String()
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
