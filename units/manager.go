package units

import "time"

// Manager is what butterd asks of systemd for its schedules. systemd.Client
// implements it over systemd's D-Bus API; tests use a fake.
type Manager interface {
	// Reload is `systemctl daemon-reload`.
	Reload() error
	// Enable and Disable add and remove the [Install] symlinks of units in
	// /etc (never runtime-only; Enable replaces conflicting links).
	Enable(units []string) error
	Disable(units []string) error
	// Start, Stop and Restart queue a job ("replace") and wait for its
	// result; a result other than done is an error.
	Start(unit string) error
	Stop(unit string) error
	Restart(unit string) error
	// QueueRestart queues a restart job and returns without waiting for
	// it: how butterd restarts itself.
	QueueRestart(unit string) error
	// ResetFailed forgets a unit's failed state.
	ResetFailed(unit string) error
	UnitState(unit string) (UnitState, error)
	TimerTimes(timer string) (TimerTimes, error)
	ServiceResult(service string) (ServiceResult, error)
	// CheckCalendar says whether systemd takes expr as an OnCalendar=
	// value; the error names expr and shows a valid one.
	CheckCalendar(expr string) error
}

// UnitState is what systemd says of a unit.
type UnitState struct {
	LoadState     string // loaded, not-found, ...
	ActiveState   string // active, inactive, failed, activating, ...
	SubState      string // waiting, running, dead, ...
	UnitFileState string // enabled, disabled, static, "" when there is no file
}

// TimerTimes are a timer's next and last elapse (zero: none).
type TimerTimes struct {
	Next time.Time // the earlier of the calendar and the monotonic elapse
	Last time.Time // LastTriggerUSec
}

// ServiceResult is how a service's last run ended.
type ServiceResult struct {
	Result string    // success, exit-code, signal, timeout, ... (systemd.exec(5) $SERVICE_RESULT)
	Exited time.Time // ExecMainExitTimestamp; zero when it never ran
}

// Where systemd answers.
const (
	// PrivateSocket is systemd's own bus socket: root talks to PID 1 there
	// without a bus daemon, even before dbus.service runs.
	PrivateSocket = "/run/systemd/private"
	// AddressNone turns systemd off (schedules are then unavailable).
	AddressNone = "none"
)
