package server

import (
	"errors"

	"github.com/godbus/dbus/v5"

	"butterd/dbusapi"
	"butterd/service"
)

// toDBus maps a service error to a named D-Bus error carrying the service's
// message.
func toDBus(err error) *dbus.Error {
	if err == nil {
		return nil
	}
	name := dbusapi.ErrFailed
	switch {
	case errors.Is(err, service.ErrNoSuchVolume):
		name = dbusapi.ErrNoSuchVolume
	case errors.Is(err, service.ErrNoSuchSnapshot):
		name = dbusapi.ErrNoSuchSnapshot
	case errors.Is(err, service.ErrNoSuchJob):
		name = dbusapi.ErrNoSuchJob
	case errors.Is(err, service.ErrNotFound):
		name = dbusapi.ErrNotFound
	case errors.Is(err, service.ErrNoSystemd):
		name = dbusapi.ErrNoSystemd
	case errors.Is(err, service.ErrInvalidName):
		name = dbusapi.ErrInvalidName
	case errors.Is(err, service.ErrInvalidArg):
		name = dbusapi.ErrInvalidArgument
	case errors.Is(err, service.ErrBusy):
		name = dbusapi.ErrBusy
	case errors.Is(err, service.ErrInUse):
		name = dbusapi.ErrInUse
	case errors.Is(err, service.ErrExists):
		name = dbusapi.ErrExists
	case errors.Is(err, service.ErrAccessDenied):
		name = dbusapi.ErrAccessDenied
	case errors.Is(err, service.ErrNoSpace):
		name = dbusapi.ErrNoSpace
	}
	return dbus.NewError(name, []any{err.Error()})
}

func invalidArg(msg string) *dbus.Error {
	return dbus.NewError(dbusapi.ErrInvalidArgument, []any{msg})
}
