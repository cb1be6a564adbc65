package main

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"

	"butterd/dbusapi"
)

func TestExitCode(t *testing.T) {
	for name, want := range map[string]int{
		dbusapi.ErrNoSuchVolume:                    exitNotFound,
		dbusapi.ErrNoSuchSnapshot:                  exitNotFound,
		dbusapi.ErrNotFound:                        exitNotFound,
		dbusapi.ErrAccessDenied:                    exitDenied,
		busAccessDenied:                            exitDenied,
		busServiceUnknown:                          exitUnreachable,
		busNameHasNoOwner:                          exitUnreachable,
		busSpawnPrefix + "Failed":                  exitUnreachable,
		dbusapi.ErrInvalidName:                     exitUsage,
		dbusapi.ErrInvalidArgument:                 exitUsage,
		dbusapi.ErrBusy:                            exitFailed,
		dbusapi.ErrInUse:                           exitFailed,
		dbusapi.ErrExists:                          exitFailed,
		dbusapi.ErrFailed:                          exitFailed,
		busNoReply:                                 exitFailed,
		"org.freedesktop.DBus.Error.UnknownMethod": exitFailed,
		"": exitFailed,
	} {
		if got := exitCode(name); got != want {
			t.Errorf("exitCode(%q) = %d, want %d", name, got, want)
		}
	}
}

// An error from butterd ends the command with one line on stderr holding
// butterd's message, and the exit code of its name.
func TestErrorsFromButterd(t *testing.T) {
	t.Setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/run/test-bus")
	for _, tc := range []struct {
		args   []string
		err    error
		code   int
		stderr string
	}{
		// buttervolume's verbs exit 1 where the volume or snapshot is
		// missing, as buttervolume did; the others 3.
		{[]string{"snapshot", "nope"}, dbusErr(dbusapi.ErrNoSuchVolume, `no such volume "nope"`),
			exitFailed, `butterctl: no such volume "nope"`},
		{[]string{"rm", "v1@2026-01-01T00:00:00.000000"}, dbusErr(dbusapi.ErrNoSuchSnapshot, `no such snapshot "v1@2026-01-01T00:00:00.000000"`),
			exitFailed, `butterctl: no such snapshot "v1@2026-01-01T00:00:00.000000"`},
		{[]string{"restore", "nope"}, dbusErr(dbusapi.ErrNoSuchVolume, `no such volume "nope"`), exitFailed, "butterctl: no such volume"},
		{[]string{"clone", "nope", "v2"}, dbusErr(dbusapi.ErrNoSuchVolume, `no such volume "nope"`), exitFailed, "butterctl: no such volume"},
		{[]string{"purge", "1d", "nope"}, dbusErr(dbusapi.ErrNoSuchVolume, `no such volume "nope"`), exitFailed, "butterctl: no such volume"},
		{[]string{"send", "hostb", "v1@2026-01-01T00:00:00.000000"}, dbusErr(dbusapi.ErrNoSuchSnapshot, "no such snapshot"), exitFailed, "butterctl: no such snapshot"},
		{[]string{"sync", "nope", "hostb"}, dbusErr(dbusapi.ErrNoSuchVolume, `no such volume "nope"`), exitFailed, "butterctl: no such volume"},
		{[]string{"schedule", "snapshot", "60", "nope"}, dbusErr(dbusapi.ErrNoSuchVolume, `no such volume "nope"`), exitFailed, "butterctl: no such volume"},
		{[]string{"scheduled", "pause"}, dbusErr(dbusapi.ErrNotFound, "not found"), exitFailed, "butterctl: not found"},
		{[]string{"volume", "inspect", "nope"}, dbusErr(dbusapi.ErrNoSuchVolume, `no such volume "nope"`), exitNotFound, "butterctl: no such volume"},
		{[]string{"export", "v1@2026-01-01T00:00:00.000000", "/dev/null"}, dbusErr(dbusapi.ErrNoSuchSnapshot, "no such snapshot"), exitNotFound, "butterctl: no such snapshot"},
		{[]string{"pin", "v1@2026-01-01T00:00:00.000000"}, dbusErr(dbusapi.ErrNoSuchSnapshot, "no such snapshot"), exitNotFound, "butterctl: no such snapshot"},
		{[]string{"job", "9"}, dbusErr(dbusapi.ErrNoSuchJob, "no such job 9"), exitNotFound, "butterctl: no such job 9"},
		{[]string{"remote", "rm", "nope"}, dbusErr(dbusapi.ErrNotFound, `no such peer "nope"`), exitNotFound, "butterctl: no such peer"},
		// Every refusal of bad input is exit 2: a name, an option, a pattern
		// or a host butterd refuses.
		{[]string{"volume", "create", "-o", "colour=blue", "v1"}, dbusErr(dbusapi.ErrInvalidArgument, `unknown option "colour": allowed options are ...`),
			exitUsage, `butterctl: unknown option "colour"`},
		{[]string{"send", "no/such", "v1@2026-01-01T00:00:00.000000"}, dbusErr(dbusapi.ErrInvalidArgument, `"no/such" is neither a peer nor a host`),
			exitUsage, `butterctl: "no/such" is neither a peer`},
		// No systemd: its own error name; the input was fine.
		{[]string{"schedule", "snapshot", "60", "v1"}, dbusErr(dbusapi.ErrNoSystemd, "no systemd reachable: schedules need systemd (butterd runs schedules as systemd timers)"),
			exitFailed, "butterctl: no systemd reachable"},
		{[]string{"volume", "create", "a@b"}, dbusErr(dbusapi.ErrInvalidName, "volume name \"a@b\" includes invalid character '@'"),
			exitUsage, "butterctl: volume name \"a@b\" includes invalid character '@'"},
		{[]string{"volume", "rm", "v1"}, dbusErr(dbusapi.ErrInUse, "volume \"v1\" is in use (1 mount):\nstop its containers"),
			exitFailed, `butterctl: volume "v1" is in use (1 mount): stop its containers`},
		{[]string{"snapshot", "v1"}, dbusErr(dbusapi.ErrAccessDenied, `CreateSnapshot changes volumes: only root and members of group "butterd" may call it (caller uid 65534)`),
			exitDenied, `butterctl: CreateSnapshot changes volumes: only root and members of group "butterd" may call it (caller uid 65534)`},
		{[]string{"snapshot", "v1"}, dbusErr(busAccessDenied, `Rejected send message, 2 matched rules; type="method_call"`),
			exitDenied, `butterctl: access denied by the system bus policy: changes need root or membership in group "butterd"`},
		{[]string{"volume", "ls"}, dbusErr(busServiceUnknown, "The name io.butterd.volumes1 was not provided by any .service files"),
			exitUnreachable, "butterctl: butterd is not running: nothing serves io.butterd.volumes1 on the system bus at unix:path=/run/test-bus (start butterd.service, or run 'butterd run')"},
		{[]string{"volume", "ls"}, dbusErr(busNameHasNoOwner, "no owner"),
			exitUnreachable, "butterctl: butterd is not running"},
		{[]string{"snapshots"}, dbusErr(busNoReply, "Did not receive a reply."),
			exitFailed, "butterctl: butterd did not answer in time: Did not receive a reply."},
		{[]string{"volume", "ls"}, errors.New("dbus: connection closed by user"),
			exitFailed, "butterctl: dbus: connection closed by user"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			r := runWith(t, &fake{err: tc.err}, tc.args...)
			if r.code != tc.code {
				t.Errorf("exit %d, want %d", r.code, tc.code)
			}
			if !strings.HasPrefix(r.stderr, tc.stderr) || strings.Count(r.stderr, "\n") != 1 || !strings.HasSuffix(r.stderr, "\n") {
				t.Errorf("stderr %q, want one line starting %q", r.stderr, tc.stderr)
			}
			if r.stdout != "" {
				t.Errorf("stdout %q, want nothing", r.stdout)
			}
		})
	}
}

// A bus that cannot be reached is exit 5, one that refuses the
// connection exit 4.
func TestDialErrors(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code int
		want string
	}{
		{fmt.Errorf("cannot reach the system bus at unix:path=/x: %w (is butterd running with a bus?)", syscall.ENOENT),
			exitUnreachable, "butterctl: butterd is not reachable: cannot reach the system bus at unix:path=/x"},
		{fmt.Errorf("cannot reach the system bus at unix:path=/x: %w", syscall.EACCES),
			exitDenied, "butterctl: access denied: cannot reach the system bus"},
	} {
		var out, errb strings.Builder
		code := run(t.Context(), []string{"volume", "ls"}, &out, &errb, func() (manager, error) { return nil, tc.err })
		if code != tc.code || !strings.HasPrefix(errb.String(), tc.want) || strings.Count(errb.String(), "\n") != 1 {
			t.Errorf("%v: exit %d, stderr %q; want %d, %q", tc.err, code, errb.String(), tc.code, tc.want)
		}
	}
}
