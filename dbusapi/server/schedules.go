package server

import (
	"github.com/godbus/dbus/v5"

	"butterd/dbusapi"
	"butterd/service"
	"butterd/units"
)

// scheduleIface is the interface of schedule objects.
const scheduleIface = dbusapi.BusName + ".Schedule"

var scheduleSpec = ifaceSpec{name: scheduleIface, props: []propSpec{
	{"Action", "s"}, {"Volume", "s"}, {"Arg", "s"}, {"Every", "t"}, {"OnCalendar", "s"},
	{"Paused", "b"}, {"Unit", "s"}, {"LastRun", "t"}, {"LastResult", "s"}, {"NextRun", "t"},
}}

func scheduleRow(i service.ScheduleInfo) dbusapi.ScheduleRow {
	if i.Unreadable != "" { // see dbusapi.ScheduleRow
		return dbusapi.ScheduleRow{Arg: i.Unreadable, Paused: i.Paused, Unit: i.Timer,
			LastRun: usec(i.LastRun), LastResult: i.LastResult, NextRun: usec(i.NextRun)}
	}
	return dbusapi.ScheduleRow{
		Action: i.Action, Volume: i.Volume, Arg: i.Arg, Every: uint64(i.Every.Microseconds()),
		OnCalendar: i.OnCalendar, Paused: i.Paused, Unit: i.Timer,
		LastRun: usec(i.LastRun), LastResult: i.LastResult, NextRun: usec(i.NextRun),
	}
}

func scheduleProps(r dbusapi.ScheduleRow) map[string]dbus.Variant {
	return map[string]dbus.Variant{
		"Action": dbus.MakeVariant(r.Action), "Volume": dbus.MakeVariant(r.Volume), "Arg": dbus.MakeVariant(r.Arg),
		"Every": dbus.MakeVariant(r.Every), "OnCalendar": dbus.MakeVariant(r.OnCalendar), "Paused": dbus.MakeVariant(r.Paused),
		"Unit": dbus.MakeVariant(r.Unit), "LastRun": dbus.MakeVariant(r.LastRun), "LastResult": dbus.MakeVariant(r.LastResult),
		"NextRun": dbus.MakeVariant(r.NextRun),
	}
}

// ListSchedules answers every schedule, then the units butterd cannot read
// back (rows without an action), and whether all are paused.
func (m *Manager) ListSchedules() ([]dbusapi.ScheduleRow, bool, *dbus.Error) {
	list, allPaused, err := m.store.ListSchedules()
	if err != nil {
		return nil, false, toDBus(err)
	}
	rows := make([]dbusapi.ScheduleRow, len(list))
	for i, s := range list {
		rows[i] = scheduleRow(s)
	}
	return rows, allPaused, nil
}

// SetSchedule creates or replaces a schedule: every_usec (an interval) or
// on_calendar (a systemd calendar expression) says when. No flag is known
// yet. It answers the timer unit.
func (m *Manager) SetSchedule(sender dbus.Sender, action, volume, arg string, everyUsec uint64, onCalendar string, flags uint64) (string, *dbus.Error) {
	if err := m.auth.allowChange(sender, "SetSchedule"); err != nil {
		return "", err
	}
	if err := checkFlags(flags, 0); err != nil {
		return "", err
	}
	every, derr := span("every_usec", everyUsec)
	if derr != nil {
		return "", derr
	}
	unit, err := m.store.SetSchedule(units.Schedule{Action: action, Volume: volume, Arg: arg,
		Every: every, OnCalendar: onCalendar})
	return unit, toDBus(err)
}

func (m *Manager) RemoveSchedule(sender dbus.Sender, action, volume, arg string) *dbus.Error {
	if err := m.auth.allowChange(sender, "RemoveSchedule"); err != nil {
		return err
	}
	return toDBus(m.store.RemoveSchedule(action, volume, arg))
}

func (m *Manager) PauseSchedule(sender dbus.Sender, action, volume, arg string) *dbus.Error {
	if err := m.auth.allowChange(sender, "PauseSchedule"); err != nil {
		return err
	}
	return toDBus(m.store.PauseSchedule(action, volume, arg))
}

func (m *Manager) ResumeSchedule(sender dbus.Sender, action, volume, arg string) *dbus.Error {
	if err := m.auth.allowChange(sender, "ResumeSchedule"); err != nil {
		return err
	}
	return toDBus(m.store.ResumeSchedule(action, volume, arg))
}

func (m *Manager) PauseAllSchedules(sender dbus.Sender) *dbus.Error {
	if err := m.auth.allowChange(sender, "PauseAllSchedules"); err != nil {
		return err
	}
	return toDBus(m.store.PauseAllSchedules())
}

func (m *Manager) ResumeAllSchedules(sender dbus.Sender) *dbus.Error {
	if err := m.auth.allowChange(sender, "ResumeAllSchedules"); err != nil {
		return err
	}
	return toDBus(m.store.ResumeAllSchedules())
}

// scheduleChildren names the schedule objects; none where schedules are
// unavailable, so that walking the tree still works.
func (o *objects) scheduleChildren() []string {
	list, _, err := o.store.ListSchedules()
	if err != nil {
		return nil
	}
	kids := make([]string, 0, len(list))
	for _, s := range list {
		if s.Unreadable == "" { // no object: there is no schedule to show
			kids = append(kids, dbusapi.EscapePath(s.Timer))
		}
	}
	return kids
}

// scheduleObjectProps reads a schedule object's properties by its timer.
func (o *objects) scheduleObjectProps(timer string) (map[string]dbus.Variant, *dbus.Error) {
	info, err := o.store.GetSchedule(timer)
	if err != nil {
		return nil, toDBus(err)
	}
	return scheduleProps(scheduleRow(info)), nil
}
