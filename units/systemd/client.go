// Package systemd talks to the system's service manager over its D-Bus
// API for butterd's schedules; it implements units.Manager.
package systemd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	sd "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"

	"butterd/units"
)

// callTimeout bounds each call; jobTimeout bounds the wait for a job.
const (
	callTimeout = 30 * time.Second
	jobTimeout  = 90 * time.Second
)

// Systemd talks to the system's service manager. It reconnects when the
// connection drops (systemd closes its private connections when it
// re-executes). It is safe for concurrent use.
type Client struct {
	dial func(ctx context.Context) (*sd.Conn, string, error)

	mu   sync.Mutex
	conn *sd.Conn
	via  string // what the connection goes through, for errors
}

// Connect reaches systemd the way ConnectAddress("") does.
func Connect() (*Client, error) { return ConnectAddress("") }

// ConnectAddress reaches systemd and checks that it answers. address is a
// D-Bus address (unix:path=...) of systemd's private socket or of a bus
// where org.freedesktop.systemd1 runs; "" picks units.PrivateSocket when it exists
// and butterd is root (as inside a container whose PID 1 is systemd, with
// butterd running in it), and else the system bus (DBUS_SYSTEM_BUS_ADDRESS
// when set); units.AddressNone refuses at once.
func ConnectAddress(address string) (*Client, error) {
	if address == units.AddressNone {
		return nil, errors.New("systemd is turned off (SYSTEMD_BUS=none)")
	}
	s := &Client{dial: func(ctx context.Context) (*sd.Conn, string, error) { return dialSystemd(ctx, address) }}
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
		if _, err := os.Stat(units.PrivateSocket); err == nil {
			c, err := sd.NewSystemdConnectionContext(context.Background())
			if err == nil {
				if err = probe(ctx, c); err == nil {
					return c, units.PrivateSocket, nil
				}
				c.Close()
			}
			tried = append(tried, fmt.Sprintf("%s: %v", units.PrivateSocket, err))
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
func (s *Client) connect(ctx context.Context) (*sd.Conn, error) {
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
func (s *Client) Via() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.via
}

// Close drops the connection.
func (s *Client) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != nil {
		s.conn.Close()
		s.conn = nil
	}
	return nil
}

// call runs fn on a live connection with a bounded context.
func (s *Client) call(what string, timeout time.Duration, fn func(ctx context.Context, c *sd.Conn) error) error {
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

func (s *Client) Reload() error {
	return s.call("daemon-reload", callTimeout, func(ctx context.Context, c *sd.Conn) error { return c.ReloadContext(ctx) })
}

func (s *Client) Enable(units []string) error {
	return s.call(fmt.Sprintf("enable %v", units), callTimeout, func(ctx context.Context, c *sd.Conn) error {
		_, _, err := c.EnableUnitFilesContext(ctx, units, false, true)
		return err
	})
}

func (s *Client) Disable(units []string) error {
	return s.call(fmt.Sprintf("disable %v", units), callTimeout, func(ctx context.Context, c *sd.Conn) error {
		_, err := c.DisableUnitFilesContext(ctx, units, false)
		return err
	})
}

type jobFunc func(ctx context.Context, name, mode string, ch chan<- string) (int, error)

// job queues a job and waits for its result.
func (s *Client) job(verb, unit string, start func(c *sd.Conn) jobFunc) error {
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

func (s *Client) Start(unit string) error {
	return s.job("start", unit, func(c *sd.Conn) jobFunc { return c.StartUnitContext })
}

func (s *Client) Stop(unit string) error {
	return s.job("stop", unit, func(c *sd.Conn) jobFunc { return c.StopUnitContext })
}

func (s *Client) Restart(unit string) error {
	return s.job("restart", unit, func(c *sd.Conn) jobFunc { return c.RestartUnitContext })
}

func (s *Client) QueueRestart(unit string) error {
	return s.call("restart --no-block "+unit, callTimeout, func(ctx context.Context, c *sd.Conn) error {
		_, err := c.RestartUnitContext(ctx, unit, "replace", nil)
		return err
	})
}

func (s *Client) ResetFailed(unit string) error {
	return s.call("reset-failed "+unit, callTimeout, func(ctx context.Context, c *sd.Conn) error {
		return c.ResetFailedUnitContext(ctx, unit)
	})
}

func (s *Client) UnitState(unit string) (units.UnitState, error) {
	var st units.UnitState
	err := s.call("state of "+unit, callTimeout, func(ctx context.Context, c *sd.Conn) error {
		p, err := c.GetUnitPropertiesContext(ctx, unit)
		if err != nil {
			return err
		}
		st = units.UnitState{LoadState: str(p["LoadState"]), ActiveState: str(p["ActiveState"]),
			SubState: str(p["SubState"]), UnitFileState: str(p["UnitFileState"])}
		return nil
	})
	return st, err
}

func (s *Client) TimerTimes(timer string) (units.TimerTimes, error) {
	var tt units.TimerTimes
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

func (s *Client) ServiceResult(service string) (units.ServiceResult, error) {
	var r units.ServiceResult
	err := s.call("result of "+service, callTimeout, func(ctx context.Context, c *sd.Conn) error {
		p, err := c.GetUnitTypePropertiesContext(ctx, service, "Service")
		if err != nil {
			return err
		}
		r = units.ServiceResult{Result: str(p["Result"]), Exited: fromUsec(u64(p["ExecMainExitTimestamp"]))}
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

var _ units.Manager = (*Client)(nil)

// CheckCalendar runs `systemd-analyze calendar EXPR`, the parser of the
// systemd that runs the timers (it comes with it).
func (s *Client) CheckCalendar(expr string) error {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "systemd-analyze", "calendar", "--", expr).CombinedOutput()
	if errors.Is(err, exec.ErrNotFound) {
		return fmt.Errorf("cannot check calendar expression %q: systemd-analyze is not installed", expr)
	}
	if err != nil {
		return units.CalendarError(expr, strings.TrimSpace(string(out)))
	}
	return nil
}
