package systemd

import (
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"butterd/tests/testenv"
	"butterd/units"
)

func TestConnectRefusals(t *testing.T) {
	if _, err := ConnectAddress(units.AddressNone); err == nil || !strings.Contains(err.Error(), "turned off") {
		t.Fatalf("none: %v", err)
	}
	missing := "unix:path=" + filepath.Join(t.TempDir(), "no-bus")
	_, err := ConnectAddress(missing)
	if err == nil || !strings.Contains(err.Error(), "no systemd reachable") || !strings.Contains(err.Error(), missing) {
		t.Fatalf("missing socket: %v", err)
	}
}

func TestTimes(t *testing.T) {
	if !fromUsec(0).IsZero() || !fromUsec(^uint64(0)).IsZero() {
		t.Fatal("0 and infinity must be no time")
	}
	if got := fromUsec(1_700_000_000_000_001); !got.Equal(time.UnixMicro(1_700_000_000_000_001)) {
		t.Fatalf("fromUsec: %v", got)
	}
	if !nextElapse(0, 0).IsZero() {
		t.Fatal("no elapse planned")
	}
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		t.Fatal(err)
	}
	mono := uint64(ts.Nano()/1000) + uint64(time.Hour/time.Microsecond)
	got := nextElapse(0, mono)
	if d := time.Until(got); d < time.Hour-time.Minute || d > time.Hour+time.Minute {
		t.Fatalf("monotonic elapse an hour ahead shows %v ahead", d)
	}
	cal := time.Now().Add(10 * time.Minute).Truncate(time.Microsecond)
	if got := nextElapse(uint64(cal.UnixMicro()), mono); !got.Equal(cal) {
		t.Fatalf("the earlier of both: %v, want %v", got, cal)
	}
	if got := nextElapse(uint64(cal.UnixMicro()), 0); !got.Equal(cal) {
		t.Fatalf("calendar only: %v", got)
	}
}

func TestCheckCalendar(t *testing.T) {
	_, err := exec.LookPath("systemd-analyze")
	testenv.Need(t, err == nil, "systemd-analyze (apt-get install systemd)")
	c := &Client{}
	for _, ok := range []string{"daily", "Mon *-*-* 03:00", "*:0/15"} {
		if err := c.CheckCalendar(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"nonsense o'clock", "25:00", "-daily"} {
		err := c.CheckCalendar(bad)
		if !errors.Is(err, units.ErrInvalid) || !strings.Contains(err.Error(), fmt.Sprintf("%q", bad)) || !strings.Contains(err.Error(), "daily") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
