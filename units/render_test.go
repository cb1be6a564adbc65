package units

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden units under testdata/")

// goldenCases are rendered into testdata/NAME.timer and NAME.service (unit
// names hold backslashes, which module zips refuse in file names).
var goldenCases = []struct {
	name string
	s    Schedule
}{
	{"snapshot-interval", Schedule{Action: ActionSnapshot, Volume: "pgdata", Every: time.Hour}},
	{"purge-calendar", Schedule{Action: ActionPurge, Volume: "pgdata", Arg: "1d:4w:1y", OnCalendar: "*-*-* 03:00:00"}},
	{"replicate", Schedule{Action: ActionReplicate, Volume: "web.data-01", Arg: "backup@nas.example.com:2222", Every: 6 * time.Hour}},
	{"synchronize", Schedule{Action: ActionSynchronize, Volume: "shared_files", Arg: "host-a,root@[fe80::1]:1122", Every: 45 * time.Second}},
}

func TestGolden(t *testing.T) {
	check := func(name string, got []byte) {
		t.Helper()
		path := filepath.Join("testdata", name)
		if *update {
			if err := os.WriteFile(path, got, 0o644); err != nil {
				t.Fatal(err)
			}
			return
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test ./units/ -run Golden -update)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from the golden file:\n--- got\n%s--- want\n%s", name, got, want)
		}
	}
	for _, c := range goldenCases {
		timer, service, err := Render(c.s, "")
		if err != nil {
			t.Fatalf("Render(%+v): %v", c.s, err)
		}
		check(c.name+".timer", timer)
		check(c.name+".service", service)
	}
	check(TargetName, RenderTarget())
}

func TestRenderTimer(t *testing.T) {
	for _, c := range []struct {
		s    Schedule
		want []string
	}{
		{Schedule{Action: ActionSnapshot, Volume: "v1", Every: 3 * time.Second},
			[]string{"\nOnActiveSec=3s\n", "\nOnUnitActiveSec=3s\n", "\nAccuracySec=1s\n", "\nX-Butterd-Every=3s\n", "Description=butterd: snapshot volume v1 every 3s\n"}},
		{Schedule{Action: ActionSnapshot, Volume: "v1", Every: 10 * time.Minute},
			[]string{"\nOnActiveSec=1min\n", "\nOnUnitActiveSec=10min\n", "\nAccuracySec=10s\n"}},
		{Schedule{Action: ActionSnapshot, Volume: "v1", Every: 7 * 24 * time.Hour},
			[]string{"\nOnActiveSec=1min\n", "\nOnUnitActiveSec=1w\n", "\nAccuracySec=1min\n"}},
		{Schedule{Action: ActionSnapshot, Volume: "v1", Every: 3 * time.Second, Accuracy: time.Millisecond},
			[]string{"\nAccuracySec=1ms\n", "\nX-Butterd-Accuracy=1ms\n"}},
		{Schedule{Action: ActionSnapshot, Volume: "v1", OnCalendar: "hourly"},
			[]string{"\nOnCalendar=hourly\n", "\nPersistent=true\n", "\nAccuracySec=1min\n", "\nX-Butterd-OnCalendar=hourly\n", "v1 on calendar hourly\n"}},
	} {
		timer, _, err := Render(c.s, "")
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range c.want {
			if !strings.Contains(string(timer), w) {
				t.Errorf("timer of %+v lacks %q:\n%s", c.s, w, timer)
			}
		}
		if c.s.Every != 0 && strings.Contains(string(timer), "Persistent=") {
			t.Errorf("interval timer has Persistent=:\n%s", timer)
		}
		if c.s.Accuracy == 0 && strings.Contains(string(timer), KeyAccuracy) {
			t.Errorf("timer without an accuracy override has %s:\n%s", KeyAccuracy, timer)
		}
	}
}

// TestRenderEscapes: '%' and '$' come out escaped where systemd would expand
// them, and ExecStart quotes what it must.
func TestRenderEscapes(t *testing.T) {
	s := Schedule{Action: ActionPurge, Volume: "v1", Arg: `1%n:$HOME "q" 'x';`, OnCalendar: "*-*-* 03:00:00 %H"}
	timer, service, err := Render(s, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{
		"\nDescription=butterd: purge snapshots of volume v1 with pattern 1%%n:$HOME \"q\" 'x'; on calendar *-*-* 03:00:00 %%H\n",
		"\nX-Butterd-Arg=1%%n:$$HOME \"q\" 'x';\n",
		"\nX-Butterd-OnCalendar=*-*-* 03:00:00 %%H\n",
		"\nOnCalendar=*-*-* 03:00:00 %%H\n",
	} {
		if !strings.Contains(string(timer), w) {
			t.Errorf("timer lacks %q:\n%s", w, timer)
		}
	}
	for _, w := range []string{
		"\nDescription=butterd: purge snapshots of volume v1 with pattern 1%%n:$HOME \"q\" 'x';\n",
		"\nExecStart=/usr/bin/butterctl purge \"1%%n:$$HOME \\\"q\\\" 'x';\" v1\n",
	} {
		if !strings.Contains(string(service), w) {
			t.Errorf("service lacks %q:\n%s", w, service)
		}
	}
}

func TestRenderCommands(t *testing.T) {
	for _, c := range []struct {
		s    Schedule
		want string
	}{
		{Schedule{Action: ActionSnapshot, Volume: "v1"}, "/usr/bin/butterctl snapshot v1"},
		{Schedule{Action: ActionPurge, Volume: "v1", Arg: "1h:1d"}, "/usr/bin/butterctl purge 1h:1d v1"},
		{Schedule{Action: ActionReplicate, Volume: "v1", Arg: "u@h:22"}, "/usr/bin/butterctl replicate u@h:22 v1"},
		{Schedule{Action: ActionSynchronize, Volume: "v1", Arg: "a,u@[::1]:2"}, "/usr/bin/butterctl sync v1 a u@[::1]:2"},
	} {
		c.s.Every = time.Hour
		_, service, err := Render(c.s, "")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(service), "\nExecStart="+c.want+"\n") {
			t.Errorf("service of %+v lacks ExecStart=%s:\n%s", c.s, c.want, service)
		}
		for _, w := range []string{"\nType=oneshot\n", "[Unit]\nDescription=butterd: ", "\nStartLimitIntervalSec=0\n\n[Service]"} {
			if !strings.Contains(string(service), w) {
				t.Errorf("service lacks %q:\n%s", w, service)
			}
		}
	}
}

// TestExecArg decodes execArg's output with systemd's rules (systemd.syntax(7)
// quoting, then specifiers, then variables) and expects the argument back.
func TestExecArg(t *testing.T) {
	for _, a := range []string{"v1", "1d:4w", "u@[::1]:22", ";", "a b", `"`, `\`, `a\"b`, "'x'", "%h", "$HOME", "${X}", "$$", "%%", "é", "-x", "a;b"} {
		out := execArg(a)
		word, ok := systemdWord(out)
		if !ok {
			t.Errorf("execArg(%q) = %s: not one word", a, out)
			continue
		}
		if got := strings.NewReplacer("%%", "%", "$$", "$").Replace(word); got != a {
			t.Errorf("execArg(%q) = %s, which systemd reads as %q", a, out, got)
		}
	}
}

// systemdWord unquotes one ExecStart word: double quotes around the whole
// word, backslash escapes \\ and \" (all execArg writes); an unquoted word
// must hold no quote, backslash or space, and must not be a lone ';'.
func systemdWord(w string) (string, bool) {
	if strings.HasPrefix(w, `"`) {
		if len(w) < 2 || !strings.HasSuffix(w, `"`) {
			return "", false
		}
		var b strings.Builder
		in := w[1 : len(w)-1]
		for i := 0; i < len(in); i++ {
			switch in[i] {
			case '\\':
				if i+1 == len(in) || (in[i+1] != '\\' && in[i+1] != '"') {
					return "", false
				}
				i++
				b.WriteByte(in[i])
			case '"':
				return "", false
			default:
				b.WriteByte(in[i])
			}
		}
		return b.String(), true
	}
	if w == "" || w == ";" || strings.ContainsAny(w, "\"'\\ \t") {
		return "", false
	}
	return w, true
}
