package dbusapi

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/godbus/dbus/v5"

	"butterd/service"
)

const jobPrefix = RootPath + "/job/"

// JobPath is the object path of a job.
func JobPath(id uint32) dbus.ObjectPath {
	return jobPrefix + dbus.ObjectPath(strconv.FormatUint(uint64(id), 10))
}

// JobRow is one entry of ListJobs: a(uosssd).
type JobRow struct {
	ID       uint32
	Path     dbus.ObjectPath
	Kind     string
	Target   string
	State    string
	Progress float64
}

var jobSpec = ifaceSpec{
	name: JobIface,
	methods: []methodSpec{
		{name: "Cancel", changes: true},
	},
	props: []propSpec{
		{"Id", "u"}, {"Kind", "s"}, {"Target", "s"}, {"State", "s"}, {"Progress", "d"},
		{"BytesDone", "t"}, {"Rate", "d"}, {"Created", "t"}, {"Started", "t"}, {"Finished", "t"},
		{"Result", "s"}, {"Error", "s"},
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
		"BytesDone": dbus.MakeVariant(j.BytesDone), "Rate": dbus.MakeVariant(j.Rate),
		"Created": dbus.MakeVariant(usec(j.Created)), "Started": dbus.MakeVariant(usec(j.Started)),
		"Finished": dbus.MakeVariant(usec(j.Finished)), "Result": dbus.MakeVariant(result),
		"Error": dbus.MakeVariant(j.Error),
	}
}

// jobID reads the id from a job object path.
func jobID(path dbus.ObjectPath) (uint32, bool) {
	rest, ok := strings.CutPrefix(string(path), string(jobPrefix))
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(rest, 10, 32)
	return uint32(n), err == nil
}

func (m *Manager) ExportSnapshot(sender dbus.Sender, snapshot, parent string, fd dbus.UnixFD, flags uint64) (uint32, dbus.ObjectPath, *dbus.Error) {
	out := os.NewFile(uintptr(fd), "export stream")
	if err := m.auth.allowChange(sender, "ExportSnapshot"); err != nil {
		out.Close()
		return 0, "", err
	}
	if err := checkFlags(flags, 0); err != nil {
		out.Close()
		return 0, "", err
	}
	j, err := m.store.ExportSnapshot(snapshot, parent, out)
	if err != nil {
		return 0, "", toDBus(err)
	}
	return j.ID, JobPath(j.ID), nil
}

func (m *Manager) GetJob(id uint32) (dbus.ObjectPath, *dbus.Error) {
	if _, err := m.store.GetJob(id); err != nil {
		return "", toDBus(err)
	}
	return JobPath(id), nil
}

func (m *Manager) ListJobs() ([]JobRow, *dbus.Error) {
	jobs := m.store.ListJobs()
	rows := make([]JobRow, len(jobs))
	for i, j := range jobs {
		rows[i] = JobRow{ID: j.ID, Path: JobPath(j.ID), Kind: j.Kind, Target: j.Target, State: string(j.State), Progress: j.Progress}
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
	id, ok := jobID(msg.Headers[dbus.FieldPath].Value().(dbus.ObjectPath))
	if !ok {
		return invalidArg(fmt.Sprintf("%v is not a job", msg.Headers[dbus.FieldPath].Value()))
	}
	return o.manager.CancelJob(sender, id)
}
