package dbusapi

import (
	"errors"

	"github.com/godbus/dbus/v5"

	"butterd/service"
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
	ErrFailed          = errorPrefix + "Failed"
)

// toDBus maps a service error to a named D-Bus error carrying the service's
// message.
func toDBus(err error) *dbus.Error {
	if err == nil {
		return nil
	}
	name := ErrFailed
	switch {
	case errors.Is(err, service.ErrNoSuchVolume):
		name = ErrNoSuchVolume
	case errors.Is(err, service.ErrNoSuchSnapshot):
		name = ErrNoSuchSnapshot
	case errors.Is(err, service.ErrNoSuchJob):
		name = ErrNoSuchJob
	case errors.Is(err, service.ErrNotFound):
		name = ErrNotFound
	case errors.Is(err, service.ErrInvalidName):
		name = ErrInvalidName
	case errors.Is(err, service.ErrInvalidArg):
		name = ErrInvalidArgument
	case errors.Is(err, service.ErrBusy):
		name = ErrBusy
	case errors.Is(err, service.ErrInUse):
		name = ErrInUse
	case errors.Is(err, service.ErrExists):
		name = ErrExists
	case errors.Is(err, service.ErrAccessDenied):
		name = ErrAccessDenied
	}
	return dbus.NewError(name, []any{err.Error()})
}

func invalidArg(msg string) *dbus.Error {
	return dbus.NewError(ErrInvalidArgument, []any{msg})
}
