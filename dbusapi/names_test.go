package dbusapi

import (
	"testing"

	"github.com/godbus/dbus/v5"
)

func TestEscapePath(t *testing.T) {
	for in, want := range map[string]string{
		"v1": "v1", "my-db": "my_2ddb", "db_1.x": "db_5f1_2ex", "": "_",
		"v1@2026-11-22T20:57:08.947340": "v1_402026_2d11_2d22T20_3a57_3a08_2e947340",
	} {
		got := EscapePath(in)
		if got != want {
			t.Errorf("EscapePath(%q) = %q, want %q", in, got, want)
		}
		if back, ok := UnescapePath(got); !ok || back != in {
			t.Errorf("UnescapePath(%q) = %q, %v", got, back, ok)
		}
		if !dbus.ObjectPath("/x/" + got).IsValid() {
			t.Errorf("%q is not a valid path element", got)
		}
	}
	for _, bad := range []string{"a_", "a_4", "a_zz"} {
		if _, ok := UnescapePath(bad); ok {
			t.Errorf("UnescapePath(%q) accepted", bad)
		}
	}
}
