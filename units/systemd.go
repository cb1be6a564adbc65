package units

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	sd "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"
)

// Manager is what butterd asks of systemd for its schedules. *Systemd
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
	// ResetFailed forgets a unit's failed state.
	ResetFailed(unit string) error
	UnitState(unit string) (UnitState, error)
	TimerTimes(timer string) (TimerTimes, error)
	ServiceResult(service string) (ServiceResult, error)
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

// callTimeout bounds each call; jobTimeout bounds the wait for a job.
const (
	callTimeout = 30 * time.Second
	jobTimeout  = 90 * time.Second
)

// Systemd talks to the system's service manager. It reconnects when the
// connection drops (systemd closes its private connections when it
// re-executes). It is safe for concurrent use.
type Systemd struct {
	dial func(ctx context.Context) (*sd.Conn, string, error)

	mu   sync.Mutex
	conn *sd.Conn
	via  string // what the connection goes through, for errors
}

// Connect reaches systemd the way ConnectAddress("") does.
func Connect() (*Systemd, error) { return ConnectAddress("") }

// ConnectAddress reaches systemd and checks that it answers. address is a
// D-Bus address (unix:path=...) of systemd's private socket or of a bus
// where org.freedesktop.systemd1 runs; "" picks PrivateSocket when it exists
// and butterd is root (as inside a container whose PID 1 is systemd, with
// butterd running in it), and else the system bus (DBUS_SYSTEM_BUS_ADDRESS
// when set); AddressNone refuses at once.
func ConnectAddress(address string) (*Systemd, error) {
	if address == AddressNone {
		return nil, errors.New("systemd is turned off (SYSTEMD_BUS=none)")
	}
	s := &Systemd{dial: func(ctx context.Context) (*sd.Conn, string, error) { return dialSystemd(ctx, address) }}
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	if _, err := s.connect(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// dialSystemd connects and probes with ctx. The connections themselves live
// on context.Background(): godbus closes a connection when its context ends.
func dialSystemd(ctx context.Context, address string) (*sd.Conn, string, error) {
	var tried []string
	if address == "" && os.Geteuid() == 0 {
		if _, err := os.Stat(PrivateSocket); err == nil {
			c, err := sd.NewSystemdConnectionContext(context.Background())
			if err == nil {
				if err = probe(ctx, c); err == nil {
					return c, PrivateSocket, nil
				}
				c.Close()
			}
			tried = append(tried, fmt.Sprintf("%s: %v", PrivateSocket, err))
		}
	}
	var (
		c   *sd.Conn
		err error
		via string
	)
	switch {
	case address == "":
		via = "the system bus"
		if a := os.Getenv("DBUS_SYSTEM_BUS_ADDRESS"); a != "" {
			via += " " + a
		}
		c, err = sd.NewSystemConnectionContext(context.Background())
	default:
		via = address
		c, err = sd.NewConnection(func() (*dbus.Conn, error) { return dialAddress(address) })
	}
	if err == nil {
		if err = probe(ctx, c); err != nil {
			c.Close()
		}
	}
	if err != nil {
		tried = append(tried, fmt.Sprintf("%s: %v", via, err))
		return nil, "", fmt.Errorf("no systemd reachable (%s)", strings.Join(tried, "; "))
	}
	return c, via, nil
}

// dialAddress connects to a D-Bus address: a bus daemon (Hello) or, for
// systemd's private socket, systemd itself (no Hello).
func dialAddress(address string) (*dbus.Conn, error) {
	conn, err := dbus.Dial(address)
	if err != nil {
		return nil, err
	}
	if err := conn.Auth([]dbus.Auth{dbus.AuthExternal(fmt.Sprint(os.Getuid()))}); err != nil {
		conn.Close()
		return nil, err
	}
	if strings.HasSuffix(address, "/systemd/private") {
		return conn, nil // systemd itself: no bus daemon to greet
	}
	if err := conn.Hello(); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

// probe checks that systemd answers on a connection.
func probe(ctx context.Context, c *sd.Conn) error {
	_, err := c.SystemStateContext(ctx)
	return err
}

// connect returns the live connection, dialing again when it dropped.
func (s *Systemd) connect(ctx context.Context) (*sd.Conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != nil && s.conn.Connected() {
		return s.conn, nil
	}
	if s.conn != nil {
		s.conn.Close()
		s.conn = nil
	}
	c, via, err := s.dial(ctx)
	if err != nil {
		return nil, err
	}
	s.conn, s.via = c, via
	return c, nil
}

// Via says how systemd is reached (its socket or bus address).
func (s *Systemd) Via() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.via
}

// Close drops the connection.
func (s *Systemd) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != nil {
		s.conn.Close()
		s.conn = nil
	}
	return nil
}

// call runs fn on a live connection with a bounded context.
func (s *Systemd) call(what string, timeout time.Duration, fn func(ctx context.Context, c *sd.Conn) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := s.connect(ctx)
	if err == nil {
		err = fn(ctx, c)
	}
	if err != nil {
		return fmt.Errorf("systemd: %s: %w", what, err)
	}
	return nil
}

func (s *Systemd) Reload() error {
	return s.call("daemon-reload", callTimeout, func(ctx context.Context, c *sd.Conn) error { return c.ReloadContext(ctx) })
}

func (s *Systemd) Enable(units []string) error {
	return s.call(fmt.Sprintf("enable %v", units), callTimeout, func(ctx context.Context, c *sd.Conn) error {
		_, _, err := c.EnableUnitFilesContext(ctx, units, false, true)
		return err
	})
}

func (s *Systemd) Disable(units []string) error {
	return s.call(fmt.Sprintf("disable %v", units), callTimeout, func(ctx context.Context, c *sd.Conn) error {
		_, err := c.DisableUnitFilesContext(ctx, units, false)
		return err
	})
}

type jobFunc func(ctx context.Context, name, mode string, ch chan<- string) (int, error)

// job queues a job and waits for its result.
func (s *Systemd) job(verb, unit string, start func(c *sd.Conn) jobFunc) error {
	return s.call(verb+" "+unit, jobTimeout, func(ctx context.Context, c *sd.Conn) error {
		ch := make(chan string, 1) // buffered: go-systemd must never block on it
		if _, err := start(c)(ctx, unit, "replace", ch); err != nil {
			return err
		}
		select {
		case res := <-ch:
			if res != "done" {
				return fmt.Errorf("job %s", res)
			}
			return nil
		case <-ctx.Done():
			return fmt.Errorf("no job result after %v", jobTimeout)
		}
	})
}

func (s *Systemd) Start(unit string) error {
	return s.job("start", unit, func(c *sd.Conn) jobFunc { return c.StartUnitContext })
}

func (s *Systemd) Stop(unit string) error {
	return s.job("stop", unit, func(c *sd.Conn) jobFunc { return c.StopUnitContext })
}

func (s *Systemd) Restart(unit string) error {
	return s.job("restart", unit, func(c *sd.Conn) jobFunc { return c.RestartUnitContext })
}

func (s *Systemd) ResetFailed(unit string) error {
	return s.call("reset-failed "+unit, callTimeout, func(ctx context.Context, c *sd.Conn) error {
		return c.ResetFailedUnitContext(ctx, unit)
	})
}

func (s *Systemd) UnitState(unit string) (UnitState, error) {
	var st UnitState
	err := s.call("state of "+unit, callTimeout, func(ctx context.Context, c *sd.Conn) error {
		p, err := c.GetUnitPropertiesContext(ctx, unit)
		if err != nil {
			return err
		}
		st = UnitState{LoadState: str(p["LoadState"]), ActiveState: str(p["ActiveState"]),
			SubState: str(p["SubState"]), UnitFileState: str(p["UnitFileState"])}
		return nil
	})
	return st, err
}

func (s *Systemd) TimerTimes(timer string) (TimerTimes, error) {
	var tt TimerTimes
	err := s.call("times of "+timer, callTimeout, func(ctx context.Context, c *sd.Conn) error {
		p, err := c.GetUnitTypePropertiesContext(ctx, timer, "Timer")
		if err != nil {
			return err
		}
		tt.Next = nextElapse(u64(p["NextElapseUSecRealtime"]), u64(p["NextElapseUSecMonotonic"]))
		tt.Last = fromUsec(u64(p["LastTriggerUSec"]))
		return nil
	})
	return tt, err
}

func (s *Systemd) ServiceResult(service string) (ServiceResult, error) {
	var r ServiceResult
	err := s.call("result of "+service, callTimeout, func(ctx context.Context, c *sd.Conn) error {
		p, err := c.GetUnitTypePropertiesContext(ctx, service, "Service")
		if err != nil {
			return err
		}
		r = ServiceResult{Result: str(p["Result"]), Exited: fromUsec(u64(p["ExecMainExitTimestamp"]))}
		return nil
	})
	return r, err
}

// nextElapse is what `systemctl list-timers` shows as NEXT: the calendar
// elapse, or the monotonic one moved to the wall clock, whichever is first.
func nextElapse(realtime, monotonic uint64) time.Time {
	next := fromUsec(realtime)
	if monotonic != 0 && monotonic != ^uint64(0) {
		var ts unix.Timespec
		if unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts) == nil {
			now := time.Now()
			mono := time.Duration(ts.Nano())
			at := now.Add(time.Duration(monotonic)*time.Microsecond - mono)
			if next.IsZero() || at.Before(next) {
				next = at
			}
		}
	}
	return next
}

// fromUsec reads µs since the epoch; 0 and infinity are no time.
func fromUsec(us uint64) time.Time {
	if us == 0 || us == ^uint64(0) {
		return time.Time{}
	}
	return time.UnixMicro(int64(us))
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func u64(v any) uint64 {
	n, _ := v.(uint64)
	return n
}

var _ Manager = (*Systemd)(nil)
