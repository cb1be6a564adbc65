// Package dbusapi exports butterd on the system bus (io.butterd.volumes1)
// and holds the client butterctl uses. It decodes, authorizes, calls the
// service and maps errors; nothing more.
package dbusapi

import (
	"strings"

	"github.com/godbus/dbus/v5"
)

// ManageGroup is the group whose members may change volumes besides root.
const ManageGroup = "butterd"

const (
	BusName      = "io.butterd.volumes1"
	RootPath     = dbus.ObjectPath("/io/butterd/volumes1")
	ManagerIface = BusName + ".Manager"
	VolumeIface  = BusName + ".Volume"
	SnapIface    = BusName + ".Snapshot"
	JobIface     = BusName + ".Job"
	errorPrefix  = BusName + ".Error."

	// VolumePrefix and SnapshotPrefix are the parents of volume and
	// snapshot objects.
	VolumePrefix   = RootPath + "/volume/"
	SnapshotPrefix = RootPath + "/snapshot/"
)

// VolumePath is the object path of a volume.
func VolumePath(name string) dbus.ObjectPath { return VolumePrefix + dbus.ObjectPath(EscapePath(name)) }

// SnapshotPath is the object path of a snapshot.
func SnapshotPath(name string) dbus.ObjectPath {
	return SnapshotPrefix + dbus.ObjectPath(EscapePath(name))
}

// EscapePath escapes a name into one object path element as systemd's
// bus_label_escape does: every byte but [A-Za-z0-9] becomes _XX (hex), and
// the empty string becomes "_".
func EscapePath(s string) string {
	if s == "" {
		return "_"
	}
	const hex = "0123456789abcdef"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('_')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// UnescapePath reverses EscapePath; ok is false for anything EscapePath
// cannot have produced (so that each name has one object path).
func UnescapePath(s string) (string, bool) {
	name, ok := unescapePath(s)
	return name, ok && EscapePath(name) == s
}

func unescapePath(s string) (string, bool) {
	if s == "_" {
		return "", true
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '_' {
			b.WriteByte(c)
			continue
		}
		if i+2 >= len(s) {
			return "", false
		}
		hi, ok1 := unhex(s[i+1])
		lo, ok2 := unhex(s[i+2])
		if !ok1 || !ok2 {
			return "", false
		}
		b.WriteByte(hi<<4 | lo)
		i += 2
	}
	return b.String(), true
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
