package server

import (
	"testing"
	"time"

	"butterd/dbusapi"
	"butterd/service"
	"butterd/units"
)

// A unit butterd cannot read back is a row without action, naming the unit
// and why, with its state; a schedule's row has its definition.
func TestScheduleRowUnreadable(t *testing.T) {
	next := time.UnixMicro(1_800_000_000_000_000)
	row := scheduleRow(service.ScheduleInfo{Timer: "butterd-sched-purge-v1.timer", Service: "butterd-sched-purge-v1.service",
		Unreadable: "timer has no X-Butterd-Action= key", NextRun: next, LastResult: "failed"})
	want := dbusapi.ScheduleRow{Arg: "timer has no X-Butterd-Action= key", Unit: "butterd-sched-purge-v1.timer",
		LastResult: "failed", NextRun: uint64(next.UnixMicro())}
	if row != want {
		t.Errorf("unreadable row %+v, want %+v", row, want)
	}
	row = scheduleRow(service.ScheduleInfo{Schedule: units.Schedule{Action: "purge", Volume: "v1", Arg: "1d", Every: time.Hour},
		Timer: "butterd-sched-purge-v1.timer"})
	if row.Action != "purge" || row.Arg != "1d" || row.Volume != "v1" || row.Every != 3600e6 {
		t.Errorf("schedule row %+v", row)
	}
}
