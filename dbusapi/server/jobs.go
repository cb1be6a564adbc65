package server

import (
	"fmt"
	"os"

	"github.com/godbus/dbus/v5"

	"butterd/dbusapi"
	"butterd/service"
)

var jobSpec = ifaceSpec{
	name: dbusapi.JobIface,
	methods: []methodSpec{
		{name: "Cancel", changes: true},
	},
	props: []propSpec{
		{"Id", "u"}, {"Kind", "s"}, {"Target", "s"}, {"State", "s"}, {"Progress", "d"},
		{"BytesDone", "t"}, {"FilesDone", "t"}, {"Rate", "d"}, {"Created", "t"}, {"Started", "t"}, {"Finished", "t"},
		{"Result", "s"}, {"Error", "s"}, {"Summary", "s"},
		{"Snapshots", "as"}, {"Containers", "a(ssts)"}, {"Notes", "as"},
	},
}

// jobResult is the result JobRemoved carries: done, failed or canceled.
func jobResult(j service.Job) string { return string(j.State) }

func jobProps(j service.Job) map[string]dbus.Variant {
	result := ""
	if j.Done() {
		result = jobResult(j)
	}
	return map[string]dbus.Variant{
		"Id": dbus.MakeVariant(j.ID), "Kind": dbus.MakeVariant(j.Kind), "Target": dbus.MakeVariant(j.Target),
		"State": dbus.MakeVariant(string(j.State)), "Progress": dbus.MakeVariant(j.Progress),
		"BytesDone": dbus.MakeVariant(j.BytesDone), "FilesDone": dbus.MakeVariant(j.FilesDone), "Rate": dbus.MakeVariant(j.Rate),
		"Created": dbus.MakeVariant(usec(j.Created)), "Started": dbus.MakeVariant(usec(j.Started)),
		"Finished": dbus.MakeVariant(usec(j.Finished)), "Result": dbus.MakeVariant(result),
		"Error": dbus.MakeVariant(j.Error), "Summary": dbus.MakeVariant(j.Summary),
		"Snapshots": dbus.MakeVariant(nonNil(j.Snapshots)), "Containers": dbus.MakeVariant(containerRows(j.Containers)),
		"Notes": dbus.MakeVariant(nonNil(j.Notes)),
	}
}

func (m *Manager) ExportSnapshot(sender dbus.Sender, snapshot, parent string, fd dbus.UnixFD, flags uint64) (uint32, dbus.ObjectPath, *dbus.Error) {
	out := os.NewFile(uintptr(fd), "export stream")
	if err := m.auth.allowChange(sender, "ExportSnapshot"); err != nil {
		out.Close()
		return 0, "", err
	}
	if err := checkFlags(flags, dbusapi.ExportCompress); err != nil {
		out.Close()
		return 0, "", err
	}
	j, err := m.store.ExportSnapshot(snapshot, parent, out, service.ExportOptions{Compress: flags&dbusapi.ExportCompress != 0})
	if err != nil {
		return 0, "", toDBus(err)
	}
	return j.ID, dbusapi.JobPath(j.ID), nil
}

func (m *Manager) ImportSnapshot(sender dbus.Sender, fd dbus.UnixFD, flags uint64) (uint32, dbus.ObjectPath, *dbus.Error) {
	in := os.NewFile(uintptr(fd), "import stream")
	if err := m.auth.allowChange(sender, "ImportSnapshot"); err != nil {
		in.Close()
		return 0, "", err
	}
	if err := checkFlags(flags, 0); err != nil {
		in.Close()
		return 0, "", err
	}
	j, err := m.store.ImportSnapshot(in) // closes in itself, on error too
	if err != nil {
		return 0, "", toDBus(err)
	}
	return j.ID, dbusapi.JobPath(j.ID), nil
}

func (m *Manager) GetJob(id uint32) (dbus.ObjectPath, *dbus.Error) {
	if _, err := m.store.GetJob(id); err != nil {
		return "", toDBus(err)
	}
	return dbusapi.JobPath(id), nil
}

func (m *Manager) ListJobs() ([]dbusapi.JobRow, *dbus.Error) {
	jobs := m.store.ListJobs()
	rows := make([]dbusapi.JobRow, len(jobs))
	for i, j := range jobs {
		rows[i] = dbusapi.JobRow{ID: j.ID, Path: dbusapi.JobPath(j.ID), Kind: j.Kind, Target: j.Target, State: string(j.State), Progress: j.Progress}
	}
	return rows, nil
}

func (m *Manager) CancelJob(sender dbus.Sender, id uint32) *dbus.Error {
	if err := m.auth.allowChange(sender, "CancelJob"); err != nil {
		return err
	}
	return toDBus(m.store.CancelJob(id))
}

// cancelJobObject is Job.Cancel() on a job object.
func (o *objects) cancelJobObject(sender dbus.Sender, msg dbus.Message) *dbus.Error {
	id, ok := dbusapi.ParseJobPath(msg.Headers[dbus.FieldPath].Value().(dbus.ObjectPath))
	if !ok {
		return invalidArg(fmt.Sprintf("%v is not a job", msg.Headers[dbus.FieldPath].Value()))
	}
	return o.manager.CancelJob(sender, id)
}
