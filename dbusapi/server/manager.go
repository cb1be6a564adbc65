package server

import (
	"fmt"
	"math"
	"time"

	"github.com/godbus/dbus/v5"

	"butterd/dbusapi"
	"butterd/service"
)

var managerSpec = ifaceSpec{
	name: dbusapi.ManagerIface,
	methods: []methodSpec{
		{name: "CreateVolume", in: []arg{{"name", "s"}, {"options", "a{ss}"}}, out: []arg{{"path", "o"}}, changes: true},
		{name: "RemoveVolume", in: []arg{{"name", "s"}, {"flags", "t"}}, out: []arg{{"final_snapshot", "s"}, {"schedules_removed", "as"}}, changes: true},
		{name: "GetVolume", in: []arg{{"name", "s"}}, out: []arg{{"path", "o"}}},
		{name: "ListVolumes", out: []arg{{"volumes", "a(sostu)"}}},
		{name: "CloneVolume", in: []arg{{"name", "s"}, {"new_name", "s"}}, out: []arg{{"path", "o"}}, changes: true},
		{name: "ForgetMounts", in: []arg{{"name", "s"}}, out: []arg{{"forgotten", "u"}}, changes: true},
		{name: "CreateSnapshot", in: []arg{{"volume", "s"}}, out: []arg{{"name", "s"}, {"path", "o"}}, changes: true},
		{name: "CreateGroupSnapshot", in: []arg{{"group", "s"}, {"project", "s"}, {"volumes", "as"}, {"flags", "t"}},
			out: []arg{{"job_id", "u"}, {"job_path", "o"}}, changes: true},
		{name: "RestoreGroup", in: []arg{{"group", "s"}, {"project", "s"}, {"timestamp", "s"}, {"flags", "t"}},
			out: []arg{{"timestamp", "s"}, {"restored", "a(sss)"}}, changes: true},
		{name: "ListGroups", out: []arg{{"groups", "a(sas)"}}},
		{name: "RemoveGroup", in: []arg{{"name", "s"}}, out: []arg{{"schedules_removed", "as"}}, changes: true},
		{name: "GetSnapshot", in: []arg{{"name", "s"}}, out: []arg{{"path", "o"}}},
		{name: "ListSnapshots", in: []arg{{"volume", "s"}}, out: []arg{{"snapshots", "a(sostb)"}}},
		{name: "RemoveSnapshot", in: []arg{{"name", "s"}}, changes: true},
		{name: "RestoreSnapshot", in: []arg{{"source", "s"}, {"target", "s"}, {"flags", "t"}},
			out: []arg{{"snapshot", "s"}, {"volume", "s"}, {"safety_snapshot", "s"}}, changes: true},
		{name: "Purge", in: []arg{{"volume", "s"}, {"pattern", "s"}, {"flags", "t"}, {"at", "t"}},
			out: []arg{{"job_id", "u"}, {"job_path", "o"}, {"delete", "a(sts)"}, {"keep", "a(sts)"}, {"warnings", "as"}}, changes: true},
		{name: "PinSnapshot", in: []arg{{"name", "s"}}, changes: true},
		{name: "UnpinSnapshot", in: []arg{{"name", "s"}}, changes: true},
		{name: "ImportSnapshot", in: []arg{{"fd", "h"}, {"flags", "t"}},
			out: []arg{{"job_id", "u"}, {"job_path", "o"}}, changes: true},
		{name: "ExportSnapshot", in: []arg{{"snapshot", "s"}, {"parent", "s"}, {"fd", "h"}, {"flags", "t"}},
			out: []arg{{"job_id", "u"}, {"job_path", "o"}}, changes: true},
		{name: "SyncVolume", in: []arg{{"volume", "s"}, {"hosts", "as"}, {"flags", "t"}},
			out: []arg{{"job_id", "u"}, {"job_path", "o"}}, changes: true},
		{name: "SendSnapshot", in: []arg{{"host", "s"}, {"snapshot", "s"}, {"bandwidth_limit", "t"}, {"flags", "t"}},
			out: []arg{{"job_id", "u"}, {"job_path", "o"}}, changes: true},
		{name: "ReplicateVolume", in: []arg{{"volume", "s"}, {"host", "s"}, {"bandwidth_limit", "t"}, {"flags", "t"}},
			out: []arg{{"job_id", "u"}, {"job_path", "o"}}, changes: true},
		{name: "AddRemote", in: []arg{{"name", "s"}, {"address", "s"}, {"public_key", "s"}, {"volumes", "as"}, {"flags", "t"}}, changes: true},
		{name: "ListRemotes", out: []arg{{"remotes", "a(ssssbbas)"}}},
		{name: "RemoveRemote", in: []arg{{"name", "s"}}, out: []arg{{"endpoint_stopped", "b"}}, changes: true},
		{name: "TrustRemoteHost", in: []arg{{"host", "s"}, {"fingerprint", "s"}, {"flags", "t"}}, out: []arg{{"host_key", "s"}}, changes: true},
		{name: "GetOwnKeys", out: []arg{{"client_key", "s"}, {"host_key_fingerprint", "s"}}},
		{name: "ListReplicas", in: []arg{{"volume", "s"}}, out: []arg{{"replicas", "a(ssbbt)"}}},
		{name: "GetJob", in: []arg{{"id", "u"}}, out: []arg{{"path", "o"}}},
		{name: "ListJobs", out: []arg{{"jobs", "a(uosssd)"}}},
		{name: "CancelJob", in: []arg{{"id", "u"}}, changes: true},
		{name: "ListSchedules", out: []arg{{"schedules", "a(ssstsbstst)"}, {"all_paused", "b"}}},
		{name: "SetSchedule", in: []arg{{"action", "s"}, {"volume", "s"}, {"arg", "s"}, {"every_usec", "t"}, {"on_calendar", "s"}, {"flags", "t"}},
			out: []arg{{"unit", "s"}}, changes: true},
		{name: "RemoveSchedule", in: []arg{{"action", "s"}, {"volume", "s"}, {"arg", "s"}}, changes: true},
		{name: "PauseSchedule", in: []arg{{"action", "s"}, {"volume", "s"}, {"arg", "s"}}, changes: true},
		{name: "ResumeSchedule", in: []arg{{"action", "s"}, {"volume", "s"}, {"arg", "s"}}, changes: true},
		{name: "PauseAllSchedules", changes: true},
		{name: "ResumeAllSchedules", changes: true},
	},
	signals: []signalSpec{
		{"VolumeNew", []arg{{"name", "s"}, {"path", "o"}}},
		{"VolumeRemoved", []arg{{"name", "s"}, {"path", "o"}}},
		{"SnapshotNew", []arg{{"name", "s"}, {"path", "o"}}},
		{"SnapshotRemoved", []arg{{"name", "s"}, {"path", "o"}}},
		{"JobNew", []arg{{"id", "u"}, {"path", "o"}}},
		{"JobRemoved", []arg{{"id", "u"}, {"path", "o"}, {"result", "s"}}},
		{"JobFailed", []arg{{"id", "u"}, {"path", "o"}, {"kind", "s"}, {"target", "s"}, {"error", "s"}}},
	},
}

// Manager is the object at dbusapi.RootPath. Each method that changes something
// checks the caller first.
type Manager struct {
	store *service.Store
	auth  *authorizer
}

func (m *Manager) CreateVolume(sender dbus.Sender, name string, options map[string]string) (dbus.ObjectPath, *dbus.Error) {
	if err := m.auth.allowChange(sender, "CreateVolume"); err != nil {
		return "", err
	}
	opts, err := service.ParseCreateOptions(options)
	if err != nil {
		return "", toDBus(err)
	}
	opts.Strict = true // options for an existing volume are refused, not dropped
	v, _, err := m.store.CreateVolume(name, opts)
	if err != nil {
		return "", toDBus(err)
	}
	return dbusapi.VolumePath(v.Name), nil
}

// RemoveVolume answers the final snapshot ("" when none) and the timers
// of the schedules removed with the volume (units butterd could not read
// back included; a service without its timer by its own name).
func (m *Manager) RemoveVolume(sender dbus.Sender, name string, flags uint64) (string, []string, *dbus.Error) {
	if err := m.auth.allowChange(sender, "RemoveVolume"); err != nil {
		return "", nil, err
	}
	if err := checkFlags(flags, dbusapi.RemoveNoFinalSnapshot); err != nil {
		return "", nil, err
	}
	r, err := m.store.RemoveVolumeReport(name, service.RemoveOptions{NoFinalSnapshot: flags&dbusapi.RemoveNoFinalSnapshot != 0})
	if err != nil {
		return "", nil, toDBus(err)
	}
	return r.FinalSnapshot, nonNil(r.Schedules), nil
}

func (m *Manager) GetVolume(name string) (dbus.ObjectPath, *dbus.Error) {
	v, err := m.store.GetVolume(name)
	if err != nil {
		return "", toDBus(err)
	}
	return dbusapi.VolumePath(v.Name), nil
}

func (m *Manager) ListVolumes() ([]dbusapi.VolumeRow, *dbus.Error) {
	vols := m.store.ListVolumes()
	rows := make([]dbusapi.VolumeRow, len(vols))
	for i, v := range vols {
		rows[i] = dbusapi.VolumeRow{Name: v.Name, Path: dbusapi.VolumePath(v.Name), Mountpoint: v.Path, Created: usec(v.CreatedAt), Mounts: uint32(v.Mounts)}
	}
	return rows, nil
}

func (m *Manager) CloneVolume(sender dbus.Sender, name, newName string) (dbus.ObjectPath, *dbus.Error) {
	if err := m.auth.allowChange(sender, "CloneVolume"); err != nil {
		return "", err
	}
	v, err := m.store.Clone(name, newName)
	if err != nil {
		return "", toDBus(err)
	}
	return dbusapi.VolumePath(v.Name), nil
}

func (m *Manager) ForgetMounts(sender dbus.Sender, name string) (uint32, *dbus.Error) {
	if err := m.auth.allowChange(sender, "ForgetMounts"); err != nil {
		return 0, err
	}
	if _, err := m.store.GetVolume(name); err != nil {
		return 0, toDBus(err)
	}
	n, err := m.store.ForgetMounts(name)
	return uint32(n), toDBus(err)
}

func (m *Manager) CreateSnapshot(sender dbus.Sender, volume string) (string, dbus.ObjectPath, *dbus.Error) {
	if err := m.auth.allowChange(sender, "CreateSnapshot"); err != nil {
		return "", "", err
	}
	name, err := m.store.SnapshotVolume(volume)
	if err != nil {
		return "", "", toDBus(err)
	}
	return name, dbusapi.SnapshotPath(name), nil
}

func (m *Manager) GetSnapshot(name string) (dbus.ObjectPath, *dbus.Error) {
	sn, err := m.store.GetSnapshot(name)
	if err != nil {
		return "", toDBus(err)
	}
	return dbusapi.SnapshotPath(sn.Name), nil
}

func (m *Manager) ListSnapshots(volume string) ([]dbusapi.SnapshotRow, *dbus.Error) {
	snaps, err := m.store.ListSnapshots(volume)
	if err != nil {
		return nil, toDBus(err)
	}
	rows := make([]dbusapi.SnapshotRow, len(snaps))
	for i, s := range snaps {
		rows[i] = dbusapi.SnapshotRow{Name: s.Name, Path: dbusapi.SnapshotPath(s.Name), Volume: s.Volume, Time: usec(s.Time), Safety: s.Safety}
	}
	return rows, nil
}

func (m *Manager) RemoveSnapshot(sender dbus.Sender, name string) *dbus.Error {
	if err := m.auth.allowChange(sender, "RemoveSnapshot"); err != nil {
		return err
	}
	return toDBus(m.store.RemoveSnapshot(name))
}

func (m *Manager) RestoreSnapshot(sender dbus.Sender, source, target string, flags uint64) (string, string, string, *dbus.Error) {
	if err := m.auth.allowChange(sender, "RestoreSnapshot"); err != nil {
		return "", "", "", err
	}
	if err := checkFlags(flags, dbusapi.RestoreForce); err != nil {
		return "", "", "", err
	}
	res, err := m.store.Restore(source, target, flags&dbusapi.RestoreForce != 0)
	if err != nil {
		return "", "", "", toDBus(err)
	}
	return res.Snapshot, res.Volume, res.Safety, nil
}

// SyncVolume pulls into volume, as a job, the newer files of the
// same-named volume of each host (a peer's name or an address). A mounted
// volume needs the force flag.
func (m *Manager) SyncVolume(sender dbus.Sender, volume string, hosts []string, flags uint64) (uint32, dbus.ObjectPath, *dbus.Error) {
	if err := m.auth.allowChange(sender, "SyncVolume"); err != nil {
		return 0, "", err
	}
	if err := checkFlags(flags, dbusapi.SyncForce); err != nil {
		return 0, "", err
	}
	j, err := m.store.SyncVolume(volume, hosts, flags&dbusapi.SyncForce != 0)
	if err != nil {
		return 0, "", toDBus(err)
	}
	return j.ID, dbusapi.JobPath(j.ID), nil
}

// moment reads a time argument (µs since the epoch); 0 means now.
func moment(usec uint64, now time.Time) (time.Time, *dbus.Error) {
	switch {
	case usec == 0:
		return now, nil
	case usec > math.MaxInt64:
		return time.Time{}, invalidArg(fmt.Sprintf("time %d is out of range: give microseconds since 1970-01-01 UTC, or 0 for now", usec))
	}
	return time.UnixMicro(int64(usec)), nil
}

// span reads a duration argument in µs.
func span(name string, usec uint64) (time.Duration, *dbus.Error) {
	if usec > math.MaxInt64/uint64(time.Microsecond) {
		return 0, invalidArg(fmt.Sprintf("%s %d is too long", name, usec))
	}
	return time.Duration(usec) * time.Microsecond, nil
}

func checkFlags(flags, known uint64) *dbus.Error {
	if flags&^known != 0 {
		return invalidArg(fmt.Sprintf("unknown flag bits %#x (known: %#x)", flags&^known, known))
	}
	return nil
}

// Purge deletes a volume's snapshots by a retention pattern as a job. With
// the dry-run flag it deletes nothing and answers the plan at once
// (job_id 0, path "/"), evaluated at `at` (µs since the epoch; 0: now).
// warnings are the pattern's (an old spelling read another way).
func (m *Manager) Purge(sender dbus.Sender, volume, pattern string, flags, at uint64) (uint32, dbus.ObjectPath, []dbusapi.PurgeRow, []dbusapi.PurgeRow, []string, *dbus.Error) {
	if err := m.auth.allowChange(sender, "Purge"); err != nil {
		return 0, "/", nil, nil, nil, err
	}
	if err := checkFlags(flags, dbusapi.PurgeDryRun); err != nil {
		return 0, "/", nil, nil, nil, err
	}
	if flags&dbusapi.PurgeDryRun == 0 {
		if at != 0 {
			return 0, "/", nil, nil, nil, invalidArg("an evaluation time (at) is only for a dry run: a purge deletes by the present time")
		}
		j, warnings, err := m.store.Purge(volume, pattern)
		if err != nil {
			return 0, "/", nil, nil, nil, toDBus(err)
		}
		return j.ID, dbusapi.JobPath(j.ID), []dbusapi.PurgeRow{}, []dbusapi.PurgeRow{}, nonNil(warnings), nil
	}
	when, derr := moment(at, time.Now())
	if derr != nil {
		return 0, "/", nil, nil, nil, derr
	}
	plan, err := m.store.PlanPurge(volume, pattern, when)
	if err != nil {
		return 0, "/", nil, nil, nil, toDBus(err)
	}
	return 0, "/", purgeRows(plan.Delete), purgeRows(plan.Keep), nonNil(plan.Warnings), nil
}

func purgeRows(entries []service.PurgeEntry) []dbusapi.PurgeRow {
	rows := make([]dbusapi.PurgeRow, len(entries))
	for i, e := range entries {
		reason := e.Reason
		if e.Overridden != "" {
			reason += " (the pattern alone: " + e.Overridden + ")"
		}
		rows[i] = dbusapi.PurgeRow{Name: e.Name, Time: usec(e.Time), Reason: reason}
	}
	return rows
}

func (m *Manager) PinSnapshot(sender dbus.Sender, name string) *dbus.Error {
	if err := m.auth.allowChange(sender, "PinSnapshot"); err != nil {
		return err
	}
	return toDBus(m.store.Pin(name, true))
}

func (m *Manager) UnpinSnapshot(sender dbus.Sender, name string) *dbus.Error {
	if err := m.auth.allowChange(sender, "UnpinSnapshot"); err != nil {
		return err
	}
	return toDBus(m.store.Pin(name, false))
}
