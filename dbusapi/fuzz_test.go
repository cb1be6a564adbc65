package dbusapi

import (
	"testing"

	"github.com/godbus/dbus/v5"
)

// FuzzEscapePath: any name escapes to one valid object path element that
// unescapes to it, and an element unescapes only when it is the one
// escaping of its name (no two paths for one object).
func FuzzEscapePath(f *testing.F) {
	for _, s := range []string{"v1", "my-db", "v1@2026-11-22T20:57:08.947340", "", "_", "_2F", "_41", "a_2fb", "é/\x00", "_5f"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e := EscapePath(s)
		if !dbus.ObjectPath("/x/" + e).IsValid() {
			t.Fatalf("EscapePath(%q) = %q: not a path element", s, e)
		}
		if back, ok := UnescapePath(e); !ok || back != s {
			t.Fatalf("UnescapePath(EscapePath(%q)) = %q, %v", s, back, ok)
		}
		if name, ok := UnescapePath(s); ok && EscapePath(name) != s {
			t.Fatalf("UnescapePath(%q) = %q, which escapes to %q", s, name, EscapePath(name))
		}
	})
}

// FuzzParseJobPath: a job path reads back only in the form JobPath writes.
func FuzzParseJobPath(f *testing.F) {
	for _, s := range []string{string(JobPath(7)), string(JobPrefix) + "007", string(JobPrefix) + "+7", string(JobPrefix) + "4294967296", string(JobPrefix), "/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if id, ok := ParseJobPath(dbus.ObjectPath(s)); ok && string(JobPath(id)) != s {
			t.Fatalf("ParseJobPath(%q) = %d, whose path is %q", s, id, JobPath(id))
		}
	})
}
