package server

import (
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
