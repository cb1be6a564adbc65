package dbusapi

import (
	"errors"

	"github.com/godbus/dbus/v5"
)

// Error names, io.butterd.volumes1.Error.<Name>.
const (
	ErrNoSuchVolume    = errorPrefix + "NoSuchVolume"
	ErrNoSuchSnapshot  = errorPrefix + "NoSuchSnapshot"
	ErrNoSuchJob       = errorPrefix + "NoSuchJob"
	ErrNotFound        = errorPrefix + "NotFound"
	ErrInvalidName     = errorPrefix + "InvalidName"
	ErrInvalidArgument = errorPrefix + "InvalidArgument"
	ErrBusy            = errorPrefix + "Busy"
	ErrInUse           = errorPrefix + "InUse"
	ErrExists          = errorPrefix + "Exists"
	ErrAccessDenied    = errorPrefix + "AccessDenied"
	ErrNoSpace         = errorPrefix + "NoSpace"
	ErrNoSystemd       = errorPrefix + "NoSystemd" // schedules need systemd, and none is reachable
	ErrFailed          = errorPrefix + "Failed"
)

// Message is the human part of a D-Bus error: butterd's own message for
// its errors, the bus's text otherwise.
func Message(err error) string {
	var de dbus.Error
	if errors.As(err, &de) && len(de.Body) > 0 {
		if s, ok := de.Body[0].(string); ok {
			return s
		}
	}
	var dep *dbus.Error
	if errors.As(err, &dep) && len(dep.Body) > 0 {
		if s, ok := dep.Body[0].(string); ok {
			return s
		}
	}
	return err.Error()
}

// ErrorName is the D-Bus error name of err, or "".
func ErrorName(err error) string {
	var de dbus.Error
	if errors.As(err, &de) {
		return de.Name
	}
	var dep *dbus.Error
	if errors.As(err, &dep) {
		return dep.Name
	}
	return ""
}
