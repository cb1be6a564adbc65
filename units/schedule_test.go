package units

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestValidateAccepts(t *testing.T) {
	for _, s := range []Schedule{
		{Action: ActionSnapshot, Volume: "v1", Every: time.Second},
		{Action: ActionSnapshot, Volume: strings.Repeat("x", 96), OnCalendar: "Mon *-*-* 03:00:00"},
		{Action: ActionSnapshot, Volume: "a.b-c_d", Every: time.Hour, Accuracy: time.Millisecond},
		{Action: ActionPurge, Volume: "v1", Arg: "1d:4w:1y", OnCalendar: "daily"},
		{Action: ActionPurge, Volume: "v1", Arg: "odd % $ \"pattern\"", Every: time.Hour},
		{Action: ActionReplicate, Volume: "v1", Arg: "host", Every: time.Hour},
		{Action: ActionReplicate, Volume: "v1", Arg: "user_1@host-a.example.com:2222", Every: time.Hour},
		{Action: ActionReplicate, Volume: "v1", Arg: "10.0.0.1:22", Every: time.Hour},
		{Action: ActionReplicate, Volume: "v1", Arg: "root@[fe80::1]:1122", Every: time.Hour},
		{Action: ActionReplicate, Volume: "v1", Arg: "[::1]", Every: time.Hour},
		{Action: ActionSynchronize, Volume: "v1", Arg: "a,b@c:1,[::1]:2", Every: time.Hour},
	} {
		if err := s.Validate(); err != nil {
			t.Errorf("Validate(%+v): %v", s, err)
		}
	}
}

func TestValidateRefuses(t *testing.T) {
	ok := Schedule{Action: ActionReplicate, Volume: "v1", Arg: "h", Every: time.Hour}
	for name, change := range map[string]func(*Schedule){
		"unknown action":        func(s *Schedule) { s.Action = "backup" },
		"empty action":          func(s *Schedule) { s.Action = "" },
		"short volume":          func(s *Schedule) { s.Volume = "v" },
		"long volume":           func(s *Schedule) { s.Volume = strings.Repeat("v", 97) },
		"volume with @":         func(s *Schedule) { s.Volume = "v@1" },
		"volume with /":         func(s *Schedule) { s.Volume = "v/1" },
		"volume with ..":        func(s *Schedule) { s.Volume = "v..1" },
		"volume with leading .": func(s *Schedule) { s.Volume = ".v1" },
		"volume with leading -": func(s *Schedule) { s.Volume = "-v1" },
		"volume with space":     func(s *Schedule) { s.Volume = "v 1" },
		"no timer":              func(s *Schedule) { s.Every = 0 },
		"both timers":           func(s *Schedule) { s.OnCalendar = "daily" },
		"sub-second interval":   func(s *Schedule) { s.Every = time.Second - 1 },
		"nanosecond interval":   func(s *Schedule) { s.Every = time.Hour + 1 },
		"negative interval":     func(s *Schedule) { s.Every = -time.Hour },
		"negative accuracy":     func(s *Schedule) { s.Accuracy = -time.Second },
		"empty host":            func(s *Schedule) { s.Arg = "" },
		"host list":             func(s *Schedule) { s.Arg = "a,b" },
		"host with space":       func(s *Schedule) { s.Arg = "a b" },
		"host with path":        func(s *Schedule) { s.Arg = "a/b" },
		"host with bad port":    func(s *Schedule) { s.Arg = "a:99999" },
		"host with empty port":  func(s *Schedule) { s.Arg = "a:" },
		"host with bad user":    func(s *Schedule) { s.Arg = "-o@a" },
		"flag as host":          func(s *Schedule) { s.Arg = "-oProxyCommand=x" },
		"bare IPv6":             func(s *Schedule) { s.Arg = "::1" },
		"label with dash":       func(s *Schedule) { s.Arg = "a-.b" },
		"sync empty item":       func(s *Schedule) { s.Action, s.Arg = ActionSynchronize, "a,,b" },
		"sync twice":            func(s *Schedule) { s.Action, s.Arg = ActionSynchronize, "a,b,a" },
		"sync no hosts":         func(s *Schedule) { s.Action, s.Arg = ActionSynchronize, "" },
		"snapshot with arg":     func(s *Schedule) { s.Action = ActionSnapshot },
		"purge no pattern":      func(s *Schedule) { s.Action, s.Arg = ActionPurge, "" },
		"purge flag":            func(s *Schedule) { s.Action, s.Arg = ActionPurge, "-1d" },
		"purge backslash":       func(s *Schedule) { s.Action, s.Arg = ActionPurge, `1d\` },
		"purge spaces around":   func(s *Schedule) { s.Action, s.Arg = ActionPurge, " 1d" },
		"calendar backslash":    func(s *Schedule) { s.Every, s.OnCalendar = 0, `daily\` },
		"calendar space":        func(s *Schedule) { s.Every, s.OnCalendar = 0, "daily " },
		"purge bad UTF-8":       func(s *Schedule) { s.Action, s.Arg = ActionPurge, "1d\xff" },
		"purge NBSP":            func(s *Schedule) { s.Action, s.Arg = ActionPurge, "1d\u00a0" },
		"purge line separator":  func(s *Schedule) { s.Action, s.Arg = ActionPurge, "1d\u20281w" },
	} {
		s := ok
		change(&s)
		if err := s.Validate(); err == nil {
			t.Errorf("%s: Validate(%+v) accepted", name, s)
		} else if !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: error %v does not match ErrInvalid", name, err)
		}
	}
}

// TestControlCharacters: a newline or any control character in any field is
// refused, by Validate and by Render.
func TestControlCharacters(t *testing.T) {
	for _, bad := range []string{"\n", "\r", "\t", "\x00", "\x1b", "\x7f", "\u0085"} {
		for name, s := range map[string]Schedule{
			"action":   {Action: "snapshot" + bad, Volume: "v1", Every: time.Hour},
			"volume":   {Action: ActionSnapshot, Volume: "v1" + bad, Every: time.Hour},
			"pattern":  {Action: ActionPurge, Volume: "v1", Arg: "1d" + bad + "1w", Every: time.Hour},
			"host":     {Action: ActionReplicate, Volume: "v1", Arg: "h" + bad, Every: time.Hour},
			"hosts":    {Action: ActionSynchronize, Volume: "v1", Arg: "a," + bad + "b", Every: time.Hour},
			"calendar": {Action: ActionSnapshot, Volume: "v1", OnCalendar: "daily" + bad + "x"},
		} {
			if _, _, err := Render(s, ""); err == nil || !errors.Is(err, ErrInvalid) {
				t.Errorf("%s with %q: Render gave %v", name, bad, err)
			}
		}
		s := Schedule{Action: ActionSnapshot, Volume: "v1", Every: time.Hour}
		if _, _, err := Render(s, "/usr/bin/butter"+bad+"ctl"); err == nil {
			t.Errorf("butterctl path with %q accepted", bad)
		}
	}
	if _, _, err := Render(Schedule{Action: ActionSnapshot, Volume: "v1", Every: time.Hour}, "bin/butterctl"); err == nil {
		t.Errorf("relative butterctl path accepted")
	}
	if _, _, err := Render(Schedule{Action: ActionSnapshot, Volume: "v1", Every: time.Hour}, "/opt/$HOME/butterctl"); err == nil {
		t.Errorf("butterctl path with $ accepted")
	}
}
