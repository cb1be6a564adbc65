package server

import (
	"context"

	"github.com/godbus/dbus/v5"

	"butterd/dbusapi"
	"butterd/service"
)

// CreateGroupSnapshot starts a snapshot job: a consistent snapshot, with
// one timestamp, of volumes, of a group or of a compose project's volumes.
// No flag is known yet.
func (m *Manager) CreateGroupSnapshot(sender dbus.Sender, group, project string, volumes []string, flags uint64) (uint32, dbus.ObjectPath, *dbus.Error) {
	if err := m.auth.allowChange(sender, "CreateGroupSnapshot"); err != nil {
		return 0, "/", err
	}
	if err := checkFlags(flags, 0); err != nil {
		return 0, "/", err
	}
	j, err := m.store.StartSnapshot(service.SnapshotRequest{Group: group, Project: project, Volumes: volumes})
	if err != nil {
		return 0, "/", toDBus(err)
	}
	return j.ID, dbusapi.JobPath(j.ID), nil
}

// containerRows is a snapshot job's Containers property: a(ssts), each
// container's name, action, time held in µs and note.
func containerRows(rs []service.ContainerReport) []dbusapi.ContainerRow {
	rows := make([]dbusapi.ContainerRow, len(rs))
	for i, r := range rs {
		rows[i] = dbusapi.ContainerRow{Name: r.Name, Action: r.Action, Held: uint64(r.Held.Microseconds()), Note: r.Note}
	}
	return rows
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// RestoreGroup restores every volume of a group or compose project to its
// snapshot of one timestamp ("": the newest all have), all or none. It
// answers the timestamp and, per volume, the snapshot restored, the volume
// and its safety snapshot. Flag: RestoreForce.
func (m *Manager) RestoreGroup(sender dbus.Sender, group, project, timestamp string, flags uint64) (string, []dbusapi.RestoredRow, *dbus.Error) {
	if err := m.auth.allowChange(sender, "RestoreGroup"); err != nil {
		return "", nil, err
	}
	if err := checkFlags(flags, dbusapi.RestoreForce); err != nil {
		return "", nil, err
	}
	res, err := m.store.RestoreGroup(context.Background(), group, project, timestamp, flags&dbusapi.RestoreForce != 0)
	if err != nil {
		return "", nil, toDBus(err)
	}
	rows := make([]dbusapi.RestoredRow, len(res.Volumes))
	for i, r := range res.Volumes {
		rows[i] = dbusapi.RestoredRow{Snapshot: r.Snapshot, Volume: r.Volume, Safety: r.Safety}
	}
	return res.Timestamp, rows, nil
}

func (m *Manager) ListGroups() ([]dbusapi.GroupRow, *dbus.Error) {
	groups := m.store.ListGroups()
	rows := make([]dbusapi.GroupRow, len(groups))
	for i, g := range groups {
		rows[i] = dbusapi.GroupRow{Name: g.Name, Volumes: g.Volumes}
	}
	return rows, nil
}

// RemoveGroup forgets a group (its volumes and snapshots stay) and removes
// its schedules, whose timers it answers.
func (m *Manager) RemoveGroup(sender dbus.Sender, name string) ([]string, *dbus.Error) {
	if err := m.auth.allowChange(sender, "RemoveGroup"); err != nil {
		return nil, err
	}
	timers, err := m.store.RemoveGroup(name)
	return nonNil(timers), toDBus(err)
}
