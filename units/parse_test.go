package units

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseRoundTrip(t *testing.T) {
	long := "v" + strings.Repeat("-._", 31) + "zz"
	cases := []Schedule{
		{Action: ActionSnapshot, Volume: "v1", Every: time.Hour},
		{Action: ActionSnapshot, Volume: long, Every: 3 * time.Second, Accuracy: time.Millisecond},
		{Action: ActionSnapshot, Volume: strings.Repeat("9", 96), Every: 90*time.Minute + 1500*time.Millisecond + time.Microsecond},
		{Action: ActionSnapshot, Volume: "a.b", OnCalendar: "Mon..Fri *-*-* 02:30:00", Accuracy: 5 * time.Second},
		{Action: ActionPurge, Volume: "db_1.data-2", Arg: "1d:4w:1y", OnCalendar: "daily"},
		{Action: ActionPurge, Volume: "v1", Arg: `1%n:$HOME "q" 'x' ; %% $$ ${X} é`, OnCalendar: "*-*-* 03:00:00 %H $X"},
		{Action: ActionReplicate, Volume: long, Arg: "backup_user@host-a.example.com:2222", Every: 6 * time.Hour},
		{Action: ActionReplicate, Volume: "v1", Arg: "root@[fe80::1]:1122", Every: 7 * 24 * time.Hour},
		{Action: ActionSynchronize, Volume: "v1", Arg: "a,u@b.lan:22,[::1]", Every: 24 * time.Hour},
	}
	for _, c := range goldenCases {
		cases = append(cases, c.s)
	}
	for _, s := range cases {
		timer, _, err := Render(s, "")
		if err != nil {
			t.Fatalf("Render(%+v): %v", s, err)
		}
		got, err := Parse(timer)
		if err != nil {
			t.Errorf("Parse of %+v: %v\n%s", s, err, timer)
			continue
		}
		if got != s {
			t.Errorf("round trip:\n got  %+v\n want %+v", got, s)
		}
	}
}

func TestParseByHand(t *testing.T) {
	timer := `# edited
[Unit]
Description=whatever
 X-Butterd-Action = snapshot
X-Butterd-Volume=v1
; X-Butterd-Volume=v2
X-Butterd-Every=60
[Timer]
X-Butterd-Volume=ignored
OnActiveSec=1
`
	s, err := Parse([]byte(timer))
	if err != nil || s != (Schedule{Action: ActionSnapshot, Volume: "v1", Every: time.Hour}) {
		t.Errorf("Parse = %+v, %v", s, err)
	}
	cont := "[Unit]\nX-Butterd-Action=purge\nX-Butterd-Volume=v1\nX-Butterd-Arg=1d:\\\n# comment\n4w\nX-Butterd-OnCalendar=daily\n"
	if s, err := Parse([]byte(cont)); err != nil || s.Arg != "1d: 4w" {
		t.Errorf("Parse with a continued line = %+v, %v", s, err)
	}
}

func TestParseRefuses(t *testing.T) {
	ok := "[Unit]\nX-Butterd-Action=snapshot\nX-Butterd-Volume=v1\nX-Butterd-Every=1h\n"
	for name, timer := range map[string]string{
		"empty":           "",
		"no action":       "[Unit]\nX-Butterd-Volume=v1\nX-Butterd-Every=1h\n",
		"keys in [Timer]": strings.Replace(ok, "[Unit]", "[Timer]", 1),
		"twice":           ok + "X-Butterd-Volume=v2\n",
		"bad span":        strings.Replace(ok, "=1h", "=1 fortnight", 1),
		"zero span":       strings.Replace(ok, "=1h", "=0", 1),
		"bad accuracy":    ok + "X-Butterd-Accuracy=x\n",
		"zero accuracy":   ok + "X-Butterd-Accuracy=0\n",
		"both timers":     ok + "X-Butterd-OnCalendar=daily\n",
		"no timer":        strings.Replace(ok, "X-Butterd-Every=1h\n", "", 1),
		"bad volume":      strings.Replace(ok, "=v1", "=v/1", 1),
		"bad section":     "[Unit\n" + ok,
		"not key=value":   ok + "junk\n",
	} {
		if s, err := Parse([]byte(timer)); err == nil {
			t.Errorf("%s: Parse = %+v", name, s)
		} else if !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: error %v does not match ErrInvalid", name, err)
		}
	}
}
