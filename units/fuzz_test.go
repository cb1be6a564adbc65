package units

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// FuzzRenderParse renders any schedule: Render refuses it (ErrInvalid), or
// Parse reads the same schedule back from the timer, both files hold
// exactly the sections and keys Render writes (no line, key or section
// smuggled in through a volume, pattern, host or calendar expression), no
// value has a lone '%' specifier, ExecStart= splits into exactly
// butterctl's arguments, and the unit names are plain.
func FuzzRenderParse(f *testing.F) {
	for _, c := range goldenCases {
		f.Add(c.s.Action, c.s.Volume, c.s.Arg, int64(c.s.Every), c.s.OnCalendar, int64(c.s.Accuracy))
	}
	hour := int64(time.Hour)
	for _, s := range []struct {
		action, volume, arg string
		every               int64
		cal                 string
	}{
		{"snapshot", "v1\nExecStartPre=/bin/evil", "", hour, ""},
		{"purge", "v1", "1d\n[Service]\nExecStart=/bin/sh", hour, ""},
		{"purge", "v1", "1d", 0, "daily\\"},
		{"purge", "v1", "1d", 0, "daily\nOnBootSec=1"},
		{"purge", "v1", "1d\rX=1", 0, "daily"},
		{"purge", "v1", "%n:$HOME ; \"'", 0, "*-*-* 03:00:00 %H"},
		{"purge", "v1", ";", hour, ""},
		{"purge", "v1", "-x", hour, ""},
		{"purge", "v1", "1d", 0, " daily"},
		{"purge", "v1", "1d\u2028X-Butterd-Action=purge", hour, ""},
		{"purge", "v1", "1d\u0085", hour, ""},
		{"replicate", "v1", "u@h:22 ; rm -rf /", hour, ""},
		{"replicate", "v1", "root@[fe80::1%eth0]:22", hour, ""},
		{"synchronize", "v1", "a,,b", hour, ""},
		{"synchronize", "v1", "a,a", hour, ""},
		{"snapshot", "../etc", "", hour, ""},
		{"snapshot", strings.Repeat("v", 96), "", 1, ""},
		{"snapshot", "v1", "", hour + 1, ""},
		{"bogus", "v1", "", hour, ""},
		{"snapshot", "v1", "", -hour, ""},
	} {
		f.Add(s.action, s.volume, s.arg, s.every, s.cal, int64(0))
	}
	f.Fuzz(func(t *testing.T, action, volume, arg string, every int64, calendar string, accuracy int64) {
		s := Schedule{Action: action, Volume: volume, Arg: arg, Every: time.Duration(every),
			OnCalendar: calendar, Accuracy: time.Duration(accuracy)}
		timer, service, err := Render(s, "")
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Render(%+v): %v does not match ErrInvalid", s, err)
			}
			return
		}
		got, err := Parse(timer)
		if err != nil || got != s {
			t.Fatalf("Render(%+v) then Parse = %+v, %v\n%s", s, got, err, timer)
		}
		if msg := checkLayout(timer, timerLayout(s)); msg != "" {
			t.Fatalf("timer of %+v: %s\n%s", s, msg, timer)
		}
		if msg := checkLayout(service, serviceLayout); msg != "" {
			t.Fatalf("service of %+v: %s\n%s", s, msg, service)
		}
		exec := valueOf(service, "ExecStart")
		args, ok := splitExec(exec)
		want := append([]string{DefaultButterctl}, command(s)...)
		if !ok || strings.Join(args, "\x00") != strings.Join(want, "\x00") {
			t.Fatalf("ExecStart=%s reads as %q (ok %v), want %q", exec, args, ok, want)
		}
		tn, sn := Names(s)
		for _, n := range []string{tn, sn} {
			if len(n) > maxUnitName || !strings.HasPrefix(n, Prefix) || strings.IndexFunc(n, func(r rune) bool {
				return !(r < 0x80 && alnum(byte(r)) || strings.ContainsRune(`:_.\-`, r))
			}) >= 0 {
				t.Fatalf("unit name %q of %+v is not a plain unit name", n, s)
			}
		}
	})
}

// FuzzParseTimer reads any file as a timer: Parse refuses it (ErrInvalid)
// or gives a schedule that renders, and whose rendering reads back the
// same.
func FuzzParseTimer(f *testing.F) {
	for _, c := range goldenCases {
		timer, _, err := Render(c.s, "")
		if err != nil {
			f.Fatal(err)
		}
		f.Add(timer)
	}
	for _, s := range []string{
		"[Unit]\nX-Butterd-Action=snapshot\nX-Butterd-Volume=v1\nX-Butterd-Every=1h\n",
		"[Unit]\nX-Butterd-Action=snapshot\nX-Butterd-Volume=v1\nX-Butterd-Every=1h\nX-Butterd-Every=2h\n",
		"[Unit]\nX-Butterd-Action=purge\nX-Butterd-Volume=v1\nX-Butterd-Arg=1d \\\n  :1w\nX-Butterd-OnCalendar=daily\n",
		"[Unit]\nX-Butterd-Action=snapshot\\\n# c\nX-Butterd-Volume=v1\n",
		"[Unit\nX-Butterd-Action=snapshot\n",
		"[Unit]\nX-Butterd-Action=purge\nX-Butterd-Volume=v1\nX-Butterd-Arg=%%n$$X\nX-Butterd-OnCalendar=%%H\n",
		"[Unit]\nX-Butterd-Action=snapshot\nX-Butterd-Volume=v1\nX-Butterd-Every=0\n",
		"[Unit]\nX-Butterd-Action=snapshot\nX-Butterd-Volume=v1\nX-Butterd-Every=99999999999w\n",
		"\\",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse(data)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Parse: %v does not match ErrInvalid", err)
			}
			return
		}
		timer, _, err := Render(s, "")
		if err != nil {
			t.Fatalf("Parse gave %+v, which Render refuses: %v", s, err)
		}
		if again, err := Parse(timer); err != nil || again != s {
			t.Fatalf("Parse gave %+v; rendered and parsed again: %+v, %v", s, again, err)
		}
	})
}

// FuzzEscape: Unescape reverses Escape, whose output is made of unit name
// characters only.
func FuzzEscape(f *testing.F) {
	for _, s := range []string{"snapshot/v1", ".x", "a-b", `\x41`, "é/ /\x00", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e := Escape(s)
		if strings.IndexFunc(e, func(r rune) bool {
			return !(r < 0x80 && alnum(byte(r)) || strings.ContainsRune(`:_.\-`, r))
		}) >= 0 || strings.HasPrefix(e, ".") {
			t.Fatalf("Escape(%q) = %q", s, e)
		}
		// '-' is how '/' is written: a '-' given is escaped, so the round
		// trip is exact.
		if back, err := Unescape(e); err != nil || back != s {
			t.Fatalf("Unescape(Escape(%q)) = %q, %v", s, back, err)
		}
	})
}

// layoutLine is one line a unit must hold: a section header or a key.
type layoutLine struct{ section, key string }

func timerLayout(s Schedule) []layoutLine {
	l := []layoutLine{{"Unit", ""}, {"Unit", "Description"}, {"Unit", "PartOf"}, {"Unit", KeyAction}, {"Unit", KeyVolume}}
	if s.Arg != "" {
		l = append(l, layoutLine{"Unit", KeyArg})
	}
	if s.Every != 0 {
		l = append(l, layoutLine{"Unit", KeyEvery})
	} else {
		l = append(l, layoutLine{"Unit", KeyOnCalendar})
	}
	if s.Accuracy != 0 {
		l = append(l, layoutLine{"Unit", KeyAccuracy})
	}
	l = append(l, layoutLine{"Timer", ""})
	if s.Every != 0 {
		l = append(l, layoutLine{"Timer", "OnActiveSec"}, layoutLine{"Timer", "OnUnitActiveSec"})
	} else {
		l = append(l, layoutLine{"Timer", "OnCalendar"}, layoutLine{"Timer", "Persistent"})
	}
	return append(l, layoutLine{"Timer", "AccuracySec"}, layoutLine{"Install", ""}, layoutLine{"Install", "WantedBy"})
}

var serviceLayout = []layoutLine{
	{"Unit", ""}, {"Unit", "Description"}, {"Unit", "After"}, {"Unit", "StartLimitIntervalSec"},
	{"Service", ""}, {"Service", "Type"}, {"Service", "ExecStart"},
}

// checkLayout reads a unit file as systemd does (systemd.syntax(7): lines
// split at '\n' only, stripped of whitespace, '#' and ';' comments, a
// trailing '\' joining the next line) and says how it differs from want,
// or "". Every value must also be free of lone '%' (a specifier).
func checkLayout(unit []byte, want []layoutLine) string {
	var got []layoutLine
	section := ""
	for _, raw := range strings.Split(string(unit), "\n") {
		l := strings.Trim(raw, " \t\r")
		switch {
		case l == "" || l[0] == '#' || l[0] == ';':
			continue
		case strings.HasSuffix(l, `\`):
			return fmt.Sprintf("line %q continues on the next line", l)
		case l[0] == '[':
			section = strings.TrimSuffix(strings.TrimPrefix(l, "["), "]")
			got = append(got, layoutLine{section, ""})
			continue
		}
		key, value, ok := strings.Cut(l, "=")
		if !ok {
			return fmt.Sprintf("line %q is not KEY=VALUE", l)
		}
		if strings.ReplaceAll(value, "%%", "") != strings.ReplaceAll(value, "%", "") {
			return fmt.Sprintf("%s=%s holds a specifier", key, value)
		}
		got = append(got, layoutLine{section, strings.TrimSpace(key)})
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		return fmt.Sprintf("lines %v, want %v", got, want)
	}
	return ""
}

// valueOf is the value of the first KEY= line of a unit.
func valueOf(unit []byte, key string) string {
	for _, l := range strings.Split(string(unit), "\n") {
		if v, ok := strings.CutPrefix(l, key+"="); ok {
			return v
		}
	}
	return ""
}

// splitExec splits an ExecStart= value into its arguments as systemd reads
// them: words (systemdWord) separated by single spaces, then "%%" and "$$"
// read as '%' and '$', a lone '%' or '$' being refused.
func splitExec(v string) ([]string, bool) {
	var words []string
	for v != "" {
		end := 0
		if v[0] == '"' {
			end = 1
			for end < len(v) && v[end] != '"' {
				if v[end] == '\\' {
					end++
				}
				end++
			}
			end++
		} else {
			end = strings.IndexByte(v, ' ')
			if end < 0 {
				end = len(v)
			}
		}
		if end > len(v) {
			return nil, false
		}
		w, ok := systemdWord(v[:end])
		if !ok {
			return nil, false
		}
		var b strings.Builder
		for i := 0; i < len(w); i++ {
			if c := w[i]; c == '%' || c == '$' {
				if i+1 == len(w) || w[i+1] != c {
					return nil, false
				}
				i++
			}
			b.WriteByte(w[i])
		}
		words = append(words, b.String())
		v = v[end:]
		if v != "" {
			if v[0] != ' ' || len(v) == 1 {
				return nil, false
			}
			v = v[1:]
		}
	}
	return words, true
}
