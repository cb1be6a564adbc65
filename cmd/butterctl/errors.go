package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"butterd/dbusapi"
)

// Exit codes, documented in `butterctl --help`.
const (
	exitOK          = 0
	exitFailed      = 1 // the operation failed
	exitUsage       = 2 // the command line is wrong
	exitNotFound    = 3 // no such volume or snapshot
	exitDenied      = 4 // the bus or butterd refused the caller
	exitUnreachable = 5 // no bus, or butterd is not on it
	// exitCanceled is a job that ended canceled: 128 + SIGINT, as a shell
	// reports a command stopped by Ctrl-C.
	exitCanceled = 130
)

// jobVerbs are the verbs that start a butterd job and wait for it.
const jobVerbs = "export, import, purge, send, replicate, sync and snapshot --group/--project"

// buttervolumeVerbs are the verbs buttervolume had: where butterd finds no
// such volume or snapshot, they exit 1 as buttervolume did, not 3.
const buttervolumeVerbs = "snapshot, snapshots, restore, clone, rm, purge, send, sync, schedule and scheduled"

// exitCodesHelp is the "Exit codes:" section of `butterctl --help`.
func exitCodesHelp() string {
	var b strings.Builder
	b.WriteString("Exit codes:\n")
	for _, c := range []struct {
		code int
		text string
	}{
		{exitOK, "success; for a verb that waits for a job (" + jobVerbs + "): the job is done"},
		{exitFailed, "the operation failed (butterd's message says why); for a verb that waits for a job: " +
			"the job failed (its error follows the job id), or a local file could not be written " +
			"(export never overwrites an existing FILE without --force); for buttervolume's verbs (" +
			buttervolumeVerbs + ") also: no such volume or snapshot, as buttervolume exited"},
		{exitUsage, "bad input, refused before anything changed: an unknown verb or flag, wrong arguments, " +
			"or a name, option, pattern, host or other value butterd refuses"},
		{exitNotFound, "not found, for the verbs not buttervolume's: no such volume, snapshot, job or peer"},
		{exitDenied, `access denied: changes need root or group "` + dbusapi.ManageGroup + `"`},
		{exitUnreachable, "butterd is not reachable: no system bus, or butterd is not running on it"},
		{exitCanceled, "the job was canceled (Ctrl-C, SIGTERM, or 'butterctl cancel ID')"},
	} {
		for i, line := range wrap(strings.Fields(c.text), helpWidth-5) {
			if i == 0 {
				fmt.Fprintf(&b, "%3d  %s\n", c.code, line)
			} else {
				fmt.Fprintf(&b, "     %s\n", line)
			}
		}
	}
	return b.String()
}

// usageError is a wrong command line. verb, when set, names the command
// whose usage line is added to the message; full, when set, is printed
// after the message (the verb list).
type usageError struct {
	msg  string
	verb *command
	full string
}

func (e *usageError) Error() string {
	if e.verb == nil {
		return e.msg
	}
	return fmt.Sprintf("%s: %s (usage: butterctl %s)", e.verb.name, e.msg, e.verb.synopsis())
}

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// jobError is a job that ended without success.
type jobError struct {
	kind   string // export, ...
	id     uint32
	result string // failed or canceled
	msg    string // the job's error text
}

func (e *jobError) Error() string {
	s := fmt.Sprintf("%s job %d %s", e.kind, e.id, e.result)
	if e.msg != "" && e.msg != e.result {
		s += ": " + e.msg
	}
	return s
}

// notFoundError is a thing butterctl itself found missing, such as the
// volume of 'snapshots VOL' that neither exists nor has snapshots.
type notFoundError struct{ msg string }

func (e *notFoundError) Error() string { return e.msg }

// buttervolumeError is an error of one of buttervolume's verbs: not found
// exits 1 there, as buttervolume did.
type buttervolumeError struct{ err error }

func (e *buttervolumeError) Error() string { return e.err.Error() }
func (e *buttervolumeError) Unwrap() error { return e.err }

// localError is a failure on this side of the bus: a file butterctl opens
// with the caller's rights.
type localError struct{ msg string }

func (e *localError) Error() string { return e.msg }

// unreachableError is a failure to connect to the system bus.
type unreachableError struct{ err error }

func (e *unreachableError) Error() string { return e.err.Error() }
func (e *unreachableError) Unwrap() error { return e.err }

// D-Bus errors the bus itself sends.
const (
	busAccessDenied   = "org.freedesktop.DBus.Error.AccessDenied"
	busServiceUnknown = "org.freedesktop.DBus.Error.ServiceUnknown"
	busNameHasNoOwner = "org.freedesktop.DBus.Error.NameHasNoOwner"
	busSpawnPrefix    = "org.freedesktop.DBus.Error.Spawn."
	// systemd's errors when bus activation of butterd.service fails.
	systemdPrefix = "org.freedesktop.systemd1."
	busNoReply    = "org.freedesktop.DBus.Error.NoReply"
	busTimeout    = "org.freedesktop.DBus.Error.Timeout"
)

// exitCode maps a D-Bus error name to an exit code.
func exitCode(name string) int {
	switch {
	case name == dbusapi.ErrNoSuchVolume, name == dbusapi.ErrNoSuchSnapshot,
		name == dbusapi.ErrNoSuchJob, name == dbusapi.ErrNotFound:
		return exitNotFound
	case name == dbusapi.ErrAccessDenied, name == busAccessDenied:
		return exitDenied
	case name == busServiceUnknown, name == busNameHasNoOwner,
		strings.HasPrefix(name, busSpawnPrefix), strings.HasPrefix(name, systemdPrefix):
		return exitUnreachable
	case name == dbusapi.ErrInvalidName, name == dbusapi.ErrInvalidArgument:
		return exitUsage
	}
	return exitFailed
}

// classify picks the exit code and the message for an error.
func classify(err error) (int, string) {
	var be *buttervolumeError
	if errors.As(err, &be) {
		code, msg := classify(be.err)
		if code == exitNotFound {
			code = exitFailed
		}
		return code, msg
	}
	var nf *notFoundError
	if errors.As(err, &nf) {
		return exitNotFound, nf.Error()
	}
	var ue *usageError
	if errors.As(err, &ue) {
		return exitUsage, ue.Error()
	}
	var je *jobError
	if errors.As(err, &je) {
		if je.result == "canceled" {
			return exitCanceled, je.Error()
		}
		return exitFailed, je.Error()
	}
	var le *localError
	if errors.As(err, &le) {
		return exitFailed, le.Error()
	}
	var ne *unreachableError
	if errors.As(err, &ne) {
		if errors.Is(err, fs.ErrPermission) {
			return exitDenied, "access denied: " + err.Error()
		}
		return exitUnreachable, "butterd is not reachable: " + err.Error()
	}
	name := dbusapi.ErrorName(err)
	code := exitCode(name)
	switch {
	case code == exitUnreachable:
		return code, fmt.Sprintf("butterd is not running: nothing serves %s on the system bus at %s (start butterd.service, or run 'butterd run')", dbusapi.BusName, busAddress())
	case name == busAccessDenied:
		return code, fmt.Sprintf("access denied by the system bus policy: changes need root or membership in group %q", dbusapi.ManageGroup)
	case name == busNoReply || name == busTimeout:
		return code, "butterd did not answer in time: " + dbusapi.Message(err)
	}
	return code, dbusapi.Message(err)
}

// busAddress is the system bus address clients use.
func busAddress() string {
	if a := os.Getenv("DBUS_SYSTEM_BUS_ADDRESS"); a != "" {
		return a
	}
	return "unix:path=/run/dbus/system_bus_socket"
}
