package main

import (
	"bufio"
	"context"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/godbus/dbus/v5"

	"butterd/dbusapi"
)

// manager is what butterctl needs of butterd: dbusapi.Client, or a fake in
// tests.
type manager interface {
	CreateVolume(name string, options map[string]string) (dbus.ObjectPath, error)
	RemoveVolumeReport(name string, flags uint64) (string, []string, error)
	GetVolume(name string) (dbus.ObjectPath, error)
	ListVolumes() ([]dbusapi.VolumeRow, error)
	CloneVolume(name, newName string) (dbus.ObjectPath, error)
	ForgetMounts(name string) (uint32, error)
	CreateSnapshot(volume string) (string, error)
	CreateGroupSnapshot(group, project string, volumes []string) (uint32, dbus.ObjectPath, error)
	RestoreGroup(group, project, timestamp string, flags uint64) (string, []dbusapi.RestoredRow, error)
	ListGroups() ([]dbusapi.GroupRow, error)
	RemoveGroup(name string) ([]string, error)
	ListSnapshots(volume string) ([]dbusapi.SnapshotRow, error)
	RemoveSnapshot(name string) error
	Restore(source, target string, flags uint64) (snapshot, volume, safety string, err error)
	Properties(path dbus.ObjectPath, iface string) (map[string]dbus.Variant, error)
	GetSnapshot(name string) (dbus.ObjectPath, error)
	ExportSnapshot(snapshot, parent string, f *os.File, compress bool) (uint32, dbus.ObjectPath, error)
	ImportSnapshot(f *os.File) (uint32, dbus.ObjectPath, error)
	SyncVolume(volume string, hosts []string, force bool) (uint32, dbus.ObjectPath, error)
	ListJobs() ([]dbusapi.JobRow, error)
	JobsProperties(ids []uint32) ([]map[string]dbus.Variant, error)
	CancelJob(id uint32) error
	WaitJob(id uint32, interval time.Duration, progress func(dbusapi.JobInfo)) (dbusapi.JobInfo, error)
	PurgeWarned(volume, pattern string, dryRun bool, at time.Time) (uint32, dbus.ObjectPath, []dbusapi.PurgeRow, []dbusapi.PurgeRow, []string, error)
	PinSnapshot(name string) error
	UnpinSnapshot(name string) error
	ListSchedules() ([]dbusapi.ScheduleRow, bool, error)
	SetSchedule(action, volume, arg string, every time.Duration, onCalendar string) (string, error)
	RemoveSchedule(action, volume, arg string) error
	PauseSchedule(action, volume, arg string) error
	ResumeSchedule(action, volume, arg string) error
	PauseAllSchedules() error
	ResumeAllSchedules() error
	SendSnapshot(host, snapshot string, bwlimit uint64, compress bool) (uint32, dbus.ObjectPath, error)
	ReplicateVolume(volume, host string, bwlimit uint64, compress bool) (uint32, dbus.ObjectPath, error)
	AddRemote(name, address, publicKey string, volumes []string, flags uint64) error
	ListRemotes() ([]dbusapi.RemoteRow, error)
	RemoveRemote(name string) (endpointStopped bool, err error)
	TrustRemoteHost(host, fingerprint string, replace bool) (string, error)
	GetOwnKeys() (clientKey, hostFingerprint string, err error)
	ListReplicas(volume string) ([]dbusapi.ReplicaRow, error)
	Close() error
}

var _ manager = (*dbusapi.Client)(nil)

type dialFunc func() (manager, error)

func dialBus() (manager, error) {
	c, err := dbusapi.Dial()
	if err != nil {
		return nil, err
	}
	return c, nil
}

// app is what every verb shares: the output, the --json switch and the
// connection, made on first use so that usage errors and help need no bus.
type app struct {
	out    *bufio.Writer
	json   bool
	dial   dialFunc
	client manager
	// stdout is the raw standard output (export - writes the stream into
	// it when it is an *os.File); stderr takes job messages and progress.
	stdout io.Writer
	stderr io.Writer
}

// bus connects to butterd's bus on first use.
func (a *app) bus() (manager, error) {
	if a.client == nil {
		c, err := a.dial()
		if err != nil {
			return nil, &unreachableError{err}
		}
		a.client = c
	}
	return a.client, nil
}

// dispatch finds the verb and runs it.
func (a *app) dispatch(ctx context.Context, args []string) error {
	args, json, err := globalFlags(args)
	if err != nil {
		return err
	}
	a.json = json
	if len(args) == 0 {
		return &usageError{full: mainUsage()}
	}
	if args[0] == "help" || isHelpFlag(args[0]) {
		return a.help(args[1:])
	}
	if isGroup(args[0]) && len(args) > 1 && isHelpFlag(args[1]) {
		a.out.WriteString(groupUsage(args[0]))
		return nil
	}
	c, rest, err := findCommand(args)
	if err != nil {
		return err
	}
	return a.runCommand(ctx, c, rest)
}

func (a *app) runCommand(ctx context.Context, c *command, args []string) error {
	v := c.new(a)
	fs := newFlagSet(c, v)
	pos, err := parseInterspersed(fs, args)
	if err == errHelp {
		a.out.WriteString(verbHelp(c, fs))
		return nil
	}
	if err != nil {
		return &usageError{msg: err.Error(), verb: c}
	}
	err = v.Run(ctx, pos)
	if ue, ok := err.(*usageError); ok && ue.verb == nil {
		ue.verb = c
	}
	if err != nil && c.buttervolume {
		if code, _ := classify(err); code == exitNotFound {
			return &buttervolumeError{err}
		}
	}
	return err
}

// help answers `butterctl help [VERB...]`.
func (a *app) help(args []string) error {
	if len(args) == 0 && a.json {
		return a.helpJSON()
	}
	if len(args) == 0 {
		a.out.WriteString(mainUsage())
		return nil
	}
	if len(args) == 1 && isGroup(args[0]) {
		a.out.WriteString(groupUsage(args[0]))
		return nil
	}
	c, rest, err := findCommand(args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usagef("help takes one verb, not %q", strings.Join(args, " "))
	}
	a.out.WriteString(verbHelp(c, newFlagSet(c, c.new(a))))
	return nil
}

// globalFlags takes --json out of the command line, wherever it stands
// before a "--".
func globalFlags(args []string) ([]string, bool, error) {
	var out []string
	json := false
	for i, arg := range args {
		if arg == "--" {
			out = append(out, args[i:]...)
			break
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(arg, "-"), "=")
		if name != "json" || !strings.HasPrefix(arg, "-") || strings.HasPrefix(arg, "---") {
			out = append(out, arg)
			continue
		}
		json = true
		if hasValue {
			b, err := strconv.ParseBool(value)
			if err != nil {
				return nil, false, usagef("--json=%q: use true or false", value)
			}
			json = b
		}
	}
	return out, json, nil
}
