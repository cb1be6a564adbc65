package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"butterd/dbusapi"
)

const unitName = "butterd-sched-snapshot-v1.timer"

func TestParseAction(t *testing.T) {
	for in, want := range map[string]schedAction{
		"snapshot":                      {actSnapshot, ""},
		"purge:1h:1d":                   {actPurge, "1h:1d"},
		"purge:2h:2h":                   {actPurge, "2h:2h"},
		"purge:1x":                      {actPurge, "1x"}, // butterd checks patterns
		"replicate:backup":              {actReplicate, "backup"},
		"replicate:root@b.example:1122": {actReplicate, "root@b.example:1122"},
		"synchronize:h1,h2":             {actSynchronize, "h1,h2"},
		"synchronize:h1":                {actSynchronize, "h1"},
	} {
		got, err := parseAction(in)
		if err != nil || got != want {
			t.Errorf("parseAction(%q) = %+v, %v; want %+v", in, got, err, want)
		}
		if got.String() != in {
			t.Errorf("%+v.String() = %q, want %q", got, got.String(), in)
		}
	}
	for in, want := range map[string]string{
		"":                   `ACTION "": use snapshot, purge:PATTERN, replicate:HOST or synchronize:HOST[,HOST...]`,
		"snap":               `ACTION "snap": use snapshot`,
		"Snapshot":           `ACTION "Snapshot": use`,
		"snapshot:x":         `ACTION "snapshot:x": snapshot takes no argument`,
		"snapshot:":          "snapshot takes no argument",
		"purge":              `ACTION "purge": purge needs a pattern, such as purge:1h:1d:4w`,
		"purge:":             "purge needs a pattern",
		"replicate":          "replicate needs a host",
		"synchronize":        "synchronize needs hosts",
		"synchronize:h1,,h2": "an empty host in the list",
		"synchronize:h1,":    "an empty host in the list",
		"replicate:a b":      "no spaces",
		"sync:h1":            `ACTION "sync:h1": use`,
	} {
		_, err := parseAction(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("parseAction(%q): %v, want %q", in, err, want)
		}
		if _, ok := err.(*usageError); !ok {
			t.Errorf("parseAction(%q): %T is not a usage error", in, err)
		}
	}
}

func TestParseTimer(t *testing.T) {
	for in, want := range map[string]timer{
		"60":       {"set", time.Hour},
		"1":        {"set", time.Minute},
		"1440":     {"set", 24 * time.Hour},
		"90s":      {"set", 90 * time.Second},
		"2h":       {"set", 2 * time.Hour},
		"1h 30min": {"set", 90 * time.Minute},
		"1min30s":  {"set", 90 * time.Second},
		"1w":       {"set", 7 * 24 * time.Hour},
		"0":        {"remove", 0},
		"00":       {"remove", 0},
		"delete":   {"remove", 0},
		"pause":    {"pause", 0},
		"resume":   {"resume", 0},
	} {
		got, err := parseTimer(in)
		if err != nil || got != want {
			t.Errorf("parseTimer(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for in, want := range map[string]string{
		"":        `TIMER "": use minutes (60), a systemd time span (90s, 1h), 0 or delete, pause or resume`,
		"soon":    `TIMER "soon"`,
		"1x":      `TIMER "1x"`,
		"-5":      `TIMER "-5"`,
		"1.5h":    `TIMER "1.5h"`,
		"Delete":  `TIMER "Delete"`,
		"0s":      `TIMER "0s" is no interval: use 0 or delete to remove the schedule`,
		"0h 0min": "is no interval",
	} {
		_, err := parseTimer(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("parseTimer(%q): %v, want %q", in, err, want)
		}
	}
}

func TestTimerText(t *testing.T) {
	for _, tc := range []struct {
		every    time.Duration
		calendar string
		want     string
	}{
		{time.Hour, "", "60"},
		{time.Minute, "", "1"},
		{7 * 24 * time.Hour, "", "10080"},
		{90 * time.Second, "", "1min30s"},
		{3 * time.Second, "", "3s"},
		{1500 * time.Millisecond, "", "1s500ms"},
		{0, "daily", "daily"},
		{0, "Mon *-*-* 03:00", `"Mon *-*-* 03:00"`},
	} {
		if got := timerText(tc.every, tc.calendar); got != tc.want {
			t.Errorf("timerText(%v, %q) = %q, want %q", tc.every, tc.calendar, got, tc.want)
		}
		// A span written back reads as the same span.
		if tc.every != 0 {
			if d, _, err := parseSpan(timerText(tc.every, "")); err != nil || d != tc.every {
				t.Errorf("parseSpan(timerText(%v)) = %v, %v", tc.every, d, err)
			}
		}
	}
}

// Each form of schedule turns into the right call.
func TestSchedule(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		call   string
		stdout string
	}{
		{[]string{"schedule", "snapshot", "60", "v1"}, `SetSchedule("snapshot", "v1", "", 1h0m0s, "")`, unitName + "\n"},
		{[]string{"schedule", "purge:2h:1d", "1440", "v1"}, `SetSchedule("purge", "v1", "2h:1d", 24h0m0s, "")`, unitName + "\n"},
		{[]string{"schedule", "replicate:backup:1122", "90s", "v1"}, `SetSchedule("replicate", "v1", "backup:1122", 1m30s, "")`, unitName + "\n"},
		{[]string{"schedule", "synchronize:h1,h2", "1h 30min", "v1"}, `SetSchedule("synchronize", "v1", "h1,h2", 1h30m0s, "")`, unitName + "\n"},
		{[]string{"schedule", "snapshot", "0", "v1"}, `RemoveSchedule("snapshot", "v1", "")`, ""},
		{[]string{"schedule", "purge:2h:1d", "delete", "v1"}, `RemoveSchedule("purge", "v1", "2h:1d")`, ""},
		{[]string{"schedule", "purge", "0", "v1"}, `RemoveSchedule("purge", "v1", "")`, ""},
		{[]string{"schedule", "purge", "pause", "v1"}, `PauseSchedule("purge", "v1", "")`, ""},
		{[]string{"schedule", "snapshot", "pause", "v1"}, `PauseSchedule("snapshot", "v1", "")`, ""},
		{[]string{"schedule", "replicate:backup", "resume", "v1"}, `ResumeSchedule("replicate", "v1", "backup")`, ""},
		{[]string{"schedule", "--every", "2h", "snapshot", "v1"}, `SetSchedule("snapshot", "v1", "", 2h0m0s, "")`, unitName + "\n"},
		{[]string{"schedule", "--every=90", "snapshot", "v1"}, `SetSchedule("snapshot", "v1", "", 1h30m0s, "")`, unitName + "\n"},
		{[]string{"schedule", "snapshot", "v1", "--every", "3s"}, `SetSchedule("snapshot", "v1", "", 3s, "")`, unitName + "\n"},
		{[]string{"schedule", "purge:1d:4w", "--on-calendar", "Mon *-*-* 03:00", "v1"}, `SetSchedule("purge", "v1", "1d:4w", 0s, "Mon *-*-* 03:00")`, unitName + "\n"},
		{[]string{"schedule", "--on-calendar=daily", "snapshot", "v1"}, `SetSchedule("snapshot", "v1", "", 0s, "daily")`, unitName + "\n"},
		{[]string{"schedule", "--", "snapshot", "60", "-v1"}, `SetSchedule("snapshot", "-v1", "", 1h0m0s, "")`, unitName + "\n"},
	} {
		f := &fake{unit: unitName}
		r := runWith(t, f, tc.args...)
		if r.code != 0 || r.stderr != "" || r.stdout != tc.stdout {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want stdout %q", tc.args, r.code, r.stdout, r.stderr, tc.stdout)
		}
		if !slices.Equal(f.calls, []string{tc.call}) {
			t.Errorf("%q: calls %q, want %q", tc.args, f.calls, tc.call)
		}
	}

	r := runWith(t, &fake{unit: unitName}, "--json", "schedule", "purge:1h:1d", "90s", "v1")
	var got map[string]any
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &got) != nil || got["unit"] != unitName || got["action"] != "purge" ||
		got["arg"] != "1h:1d" || got["volume"] != "v1" || got["timer"] != "1min30s" || got["every_usec"] != 90e6 || got["result"] != "set" {
		t.Errorf("--json create: exit %d, stdout %s", r.code, r.stdout)
	}
	r = runWith(t, &fake{}, "--json", "schedule", "snapshot", "pause", "v1")
	got = nil
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &got) != nil || got["result"] != "paused" || got["unit"] != nil {
		t.Errorf("--json pause: exit %d, stdout %s", r.code, r.stdout)
	}

	// butterd's refusal, such as no systemd: exit 1 with its message.
	msg := "schedules need systemd: no systemd manager is reachable on the system bus"
	r = runWith(t, &fake{err: dbusErr(dbusapi.ErrFailed, msg)}, "schedule", "snapshot", "60", "v1")
	if r.code != exitFailed || r.stderr != "butterctl: "+msg+"\n" || r.stdout != "" {
		t.Errorf("refused: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

func TestScheduleUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		want string
		args []string
	}{
		{"schedule: missing ACTION TIMER VOL (usage: butterctl schedule [--every SPAN] [--on-calendar EXPR] ACTION [TIMER] VOL)", []string{"schedule"}},
		{"schedule: missing TIMER VOL", []string{"schedule", "snapshot"}},
		{"schedule: missing TIMER (minutes, 0|delete, pause or resume) or --every SPAN or --on-calendar EXPR", []string{"schedule", "snapshot", "v1"}},
		{`schedule: unexpected argument "v2"`, []string{"schedule", "snapshot", "60", "v1", "v2"}},
		{"schedule: VOL is empty", []string{"schedule", "snapshot", "60", ""}},
		{"schedule: missing VOL", []string{"schedule", "--every", "1h", "snapshot"}},
		{"schedule: give TIMER or --every, not both", []string{"schedule", "--every", "1h", "snapshot", "60", "v1"}},
		{"schedule: give TIMER or --on-calendar, not both", []string{"schedule", "--on-calendar", "daily", "snapshot", "pause", "v1"}},
		{"schedule: give --every or --on-calendar, not both", []string{"schedule", "--every", "1h", "--on-calendar", "daily", "snapshot", "v1"}},
		{`schedule: ACTION "snap": use snapshot, purge:PATTERN, replicate:HOST or synchronize:HOST[,HOST...]`, []string{"schedule", "snap", "60", "v1"}},
		{`schedule: ACTION "purge": purge needs a pattern`, []string{"schedule", "purge", "60", "v1"}},
		{`schedule: ACTION "purge": purge needs a pattern`, []string{"schedule", "--every", "1h", "purge", "v1"}},
		{`schedule: ACTION "replicate": replicate needs a host`, []string{"schedule", "replicate", "delete", "v1"}},
		{`schedule: ACTION "purge:": purge needs a pattern`, []string{"schedule", "purge:", "pause", "v1"}},
		{`schedule: TIMER "hourly": use minutes (60), a systemd time span (90s, 1h), 0 or delete, pause or resume`, []string{"schedule", "snapshot", "hourly", "v1"}},
		{`schedule: --every: time span "often": use minutes (a bare number) or a systemd time span`, []string{"schedule", "--every", "often", "snapshot", "v1"}},
		{`schedule: --every "0" is no interval: to remove a schedule, run 'butterctl schedule ACTION delete VOL'`, []string{"schedule", "--every", "0", "snapshot", "v1"}},
		{"schedule: --on-calendar is empty", []string{"schedule", "--on-calendar", " ", "snapshot", "v1"}},
		{"control characters are not allowed", []string{"schedule", "--on-calendar", "daily\nx", "snapshot", "v1"}},
		{"schedule: flag needs an argument: -every", []string{"schedule", "snapshot", "v1", "--every"}},
		{"schedule: import takes no flags: butterctl schedule import FILE", []string{"schedule", "--every", "1h", "import", "f"}},
		{"schedule import: missing FILE (usage: butterctl schedule import FILE)", []string{"schedule", "import"}},
		{`schedule import: unexpected argument "g"`, []string{"schedule", "import", "f", "g"}},
		{`scheduled: unknown subcommand "stop": use list, pause or resume`, []string{"scheduled", "stop"}},
		{`scheduled: unexpected argument "x"`, []string{"scheduled", "list", "x"}},
		{"scheduled: -l is for list", []string{"scheduled", "-l", "pause"}},
	} {
		usageCase(t, tc.want, tc.args...)
	}
}

func scheduleRows() []dbusapi.ScheduleRow {
	return []dbusapi.ScheduleRow{
		{Action: "purge", Volume: "v1", Arg: "1h:1d", Every: 3600e6, Paused: true, Unit: "butterd-sched-purge-v1.timer"},
		{Action: "snapshot", Volume: "v1", Every: 3600e6, Unit: unitName, LastRun: created, LastResult: "success", NextRun: created + 3600e6},
		{Action: "snapshot", Volume: "a2", Every: 90e6, Unit: "butterd-sched-snapshot-a2.timer", LastRun: created, LastResult: "failed", NextRun: created + 90e6},
		{Action: "replicate", Volume: "v1", Arg: "backup", OnCalendar: "Mon *-*-* 03:00", Unit: "butterd-sched-replicate-v1-backup.timer"},
		{Action: "synchronize", Volume: "v1", Arg: "h1,h2", OnCalendar: "daily", Unit: "butterd-sched-synchronize-v1-h1,h2.timer"},
	}
}

func TestScheduledList(t *testing.T) {
	inZone(t)
	want := `snapshot 1min30s a2
purge:1h:1d 60 v1 (paused)
replicate:backup "Mon *-*-* 03:00" v1
snapshot 60 v1
synchronize:h1,h2 daily v1
`
	for _, args := range [][]string{{"scheduled"}, {"scheduled", "list"}} {
		f := &fake{schedules: scheduleRows()}
		r := runWith(t, f, args...)
		if r.code != 0 || r.stderr != "" || r.stdout != want {
			t.Errorf("%q: exit %d, stderr %q, stdout\n%s\nwant\n%s", args, r.code, r.stderr, r.stdout, want)
		}
		if !slices.Equal(f.calls, []string{"ListSchedules()"}) {
			t.Errorf("%q: calls %q", args, f.calls)
		}
	}
	// No schedules: nothing.
	if r := runWith(t, &fake{}, "scheduled"); r.code != 0 || r.stdout != "" || r.stderr != "" {
		t.Errorf("none: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	// The global pause is said on stderr.
	r := runWith(t, &fake{schedules: scheduleRows(), allPaused: true}, "scheduled")
	if r.code != 0 || r.stdout != want || r.stderr != "all schedules paused ('butterctl scheduled resume' resumes them)\n" {
		t.Errorf("all paused: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

// Units butterd cannot read back are said on stderr, stdout keeping
// buttervolume's lines; --json lists them apart.
func TestScheduledUnreadable(t *testing.T) {
	inZone(t)
	bad := dbusapi.ScheduleRow{Arg: `volume name "v@1" includes '@'`, Unit: "butterd-sched-purge-v1.timer",
		LastRun: created, LastResult: "failed", NextRun: created + 3600e6}
	rows := append([]dbusapi.ScheduleRow{bad}, scheduleRows()[1:2]...)
	wantErr := "unreadable schedule unit butterd-sched-purge-v1.timer: volume name \"v@1\" includes '@'\n"
	for _, args := range [][]string{{"scheduled"}, {"scheduled", "-l"}} {
		r := runWith(t, &fake{schedules: rows}, args...)
		if r.code != 0 || !strings.HasPrefix(r.stderr, wantErr) || strings.Contains(r.stdout, "purge") || !strings.Contains(r.stdout, "snapshot") {
			t.Errorf("%q: exit %d, stderr %q, stdout\n%s", args, r.code, r.stderr, r.stdout)
		}
	}
	r := runWith(t, &fake{schedules: rows}, "scheduled", "--json")
	var got struct {
		Schedules  []map[string]any `json:"schedules"`
		Unreadable []map[string]any `json:"unreadable"`
	}
	if r.code != 0 || r.stderr != "" || json.Unmarshal([]byte(r.stdout), &got) != nil || len(got.Schedules) != 1 || len(got.Unreadable) != 1 {
		t.Fatalf("--json: exit %d, stderr %q, stdout %s", r.code, r.stderr, r.stdout)
	}
	if u := got.Unreadable[0]; u["unit"] != bad.Unit || u["reason"] != bad.Arg || u["last_result"] != "failed" || u["next_run"] == nil {
		t.Errorf("--json unreadable: %v", u)
	}
}

func TestScheduledLong(t *testing.T) {
	inZone(t)
	want := `ACTION              TIMER               VOLUME   STATE    LAST RUN              RESULT    NEXT RUN
snapshot            1min30s             a2       active   2026-11-22 20:57:08   failed    2026-11-22 20:58:38
purge:1h:1d         60                  v1       paused   -                     -         -
replicate:backup    "Mon *-*-* 03:00"   v1       active   -                     -         -
snapshot            60                  v1       active   2026-11-22 20:57:08   success   2026-11-22 21:57:08
synchronize:h1,h2   daily               v1       active   -                     -         -
`
	r := runWith(t, &fake{schedules: scheduleRows()}, "scheduled", "-l")
	if r.code != 0 || r.stdout != want {
		t.Errorf("-l: exit %d, stderr %q, stdout\n%s\nwant\n%s", r.code, r.stderr, r.stdout, want)
	}
	r = runWith(t, &fake{schedules: scheduleRows()}, "scheduled", "list", "--long")
	if r.code != 0 || r.stdout != want {
		t.Errorf("list --long: exit %d, stdout\n%s", r.code, r.stdout)
	}
}

func TestScheduledJSON(t *testing.T) {
	inZone(t)
	r := runWith(t, &fake{schedules: scheduleRows(), allPaused: true}, "scheduled", "--json")
	var got struct {
		AllPaused bool             `json:"all_paused"`
		Schedules []map[string]any `json:"schedules"`
	}
	if r.code != 0 || r.stderr != "" || json.Unmarshal([]byte(r.stdout), &got) != nil || !got.AllPaused || len(got.Schedules) != 5 {
		t.Fatalf("exit %d, stderr %q, stdout %s", r.code, r.stderr, r.stdout)
	}
	a2 := got.Schedules[0]
	for k, v := range map[string]any{
		"action": "snapshot", "arg": "", "volume": "a2", "timer": "1min30s", "every": "1min30s", "every_usec": 90e6,
		"on_calendar": "", "paused": false, "unit": "butterd-sched-snapshot-a2.timer",
		"last_run": "2026-11-22T20:57:08.947340+01:00", "last_result": "failed", "next_run": "2026-11-22T20:58:38.947340+01:00",
	} {
		if a2[k] != v {
			t.Errorf("%s = %#v, want %#v", k, a2[k], v)
		}
	}
	if rep := got.Schedules[2]; rep["on_calendar"] != "Mon *-*-* 03:00" || rep["every"] != "" || rep["last_run"] != nil || rep["paused"] != false {
		t.Errorf("calendar schedule: %v", rep)
	}
	if p := got.Schedules[1]; p["paused"] != true || p["arg"] != "1h:1d" {
		t.Errorf("paused schedule: %v", p)
	}
	r = runWith(t, &fake{}, "--json", "scheduled")
	if r.stdout != "{\n  \"all_paused\": false,\n  \"schedules\": [],\n  \"unreadable\": []\n}\n" {
		t.Errorf("no schedules: %q", r.stdout)
	}
}

func TestScheduledPauseResume(t *testing.T) {
	f := &fake{}
	for _, args := range [][]string{{"scheduled", "pause"}, {"scheduled", "resume"}} {
		if r := runWith(t, f, args...); r.code != 0 || r.stdout != "" || r.stderr != "" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q", args, r.code, r.stdout, r.stderr)
		}
	}
	if want := []string{"PauseAllSchedules()", "ResumeAllSchedules()"}; !slices.Equal(f.calls, want) {
		t.Errorf("calls %q, want %q", f.calls, want)
	}
	if r := runWith(t, &fake{}, "--json", "scheduled", "pause"); r.stdout != "{\n  \"all_paused\": true\n}\n" {
		t.Errorf("--json pause: %q", r.stdout)
	}
}

func writeCSV(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "schedule.csv")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestScheduleImport(t *testing.T) {
	csv := "v1,snapshot,60,True\n" +
		"v1,purge:2h:1d,60,False\n" +
		"v2,snap,60,True\n" + // line 3: a bad action
		"\n" +
		"# a comment\n" +
		"v2,snapshot,soon,True\n" + // line 6: a bad timer
		"v2,snapshot,90s\n" + // no Active: active
		"v3,snapshot,60,maybe\n" + // line 8: a bad Active
		"v4,snapshot\n" + // line 9: too few fields
		"bad,snapshot,60,true\n" + // line 10: butterd refuses
		`"v5","replicate:backup",  1440 , false` + "\n" +
		"v6,snapshot,0,True\n" + // line 12: no schedule
		"v7,snapshot,60,False\n" // line 13: pausing fails
	f := &fake{unit: unitName, schedErrs: map[string]error{
		"bad":      dbusErr(dbusapi.ErrInvalidName, `volume name "bad": too short`),
		"pause v7": dbusErr(dbusapi.ErrFailed, "systemd said no"),
	}}
	r := runWith(t, f, "schedule", "import", writeCSV(t, csv))
	want := `v1 snapshot 60: created
v1 purge:2h:1d 60: created, paused
line 3: error: v2 snap 60: ACTION "snap": use snapshot, purge:PATTERN, replicate:HOST or synchronize:HOST[,HOST...]
line 6: error: v2 snapshot soon: Timer: time span "soon": use minutes (a bare number) or a systemd time span such as 90s, 1h, 2d, "1h 30min"
v2 snapshot 90s: created
line 8: error: v3 snapshot 60: Active "maybe": use True or False
line 9: error: 2 fields: want Name,Action,Timer,Active (such as v1,snapshot,60,True)
line 10: error: bad snapshot 60: volume name "bad": too short
v5 replicate:backup 1440: created, paused
line 12: error: v6 snapshot 0: Timer 0 is no schedule
line 13: error: v7 snapshot 60: created, but not paused: systemd said no
`
	if r.code != exitFailed || r.stdout != want || r.stderr != "butterctl: schedule import: 7 of 11 rows failed\n" {
		t.Errorf("exit %d, stderr %q, stdout\n%s\nwant\n%s", r.code, r.stderr, r.stdout, want)
	}
	wantCalls := []string{
		`SetSchedule("snapshot", "v1", "", 1h0m0s, "")`,
		`SetSchedule("purge", "v1", "2h:1d", 1h0m0s, "")`,
		`PauseSchedule("purge", "v1", "2h:1d")`,
		`SetSchedule("snapshot", "v2", "", 1m30s, "")`,
		`SetSchedule("snapshot", "bad", "", 1h0m0s, "")`,
		`SetSchedule("replicate", "v5", "backup", 24h0m0s, "")`,
		`PauseSchedule("replicate", "v5", "backup")`,
		`SetSchedule("snapshot", "v7", "", 1h0m0s, "")`,
		`PauseSchedule("snapshot", "v7", "")`,
	}
	if !slices.Equal(f.calls, wantCalls) {
		t.Errorf("calls\n%q\nwant\n%q", f.calls, wantCalls)
	}

	// All good, with a header: exit 0.
	f = &fake{unit: unitName}
	r = runWith(t, f, "schedule", "import", writeCSV(t, "Name,Action,Timer,Active\nv1,snapshot,60,True\r\nv1,synchronize:h1,h2,30,True"))
	// synchronize's hosts hold a comma: buttervolume wrote them quoted;
	// unquoted they make five fields.
	if r.code != exitFailed || !strings.Contains(r.stdout, "line 3: error: 5 fields") || !strings.HasPrefix(r.stdout, "v1 snapshot 60: created\n") {
		t.Errorf("header: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	f = &fake{unit: unitName}
	r = runWith(t, f, "schedule", "import", writeCSV(t, "v1,snapshot,60,True\nv1,\"synchronize:h1,h2\",30,True\nv1,purge:1d,60,True\nv1,purge:1h:1d,60,True\nv1,replicate:b1,60,True\nv1,replicate:b2,60,True\n"))
	if r.code != 0 || r.stdout != "v1 snapshot 60: created\nv1 synchronize:h1,h2 30: created\nv1 purge:1d 60: created\nv1 purge:1h:1d 60: created (replaces line 3)\nv1 replicate:b1 60: created\nv1 replicate:b2 60: created\n" || r.stderr != "" {
		t.Errorf("good: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if f.calls[1] != `SetSchedule("synchronize", "v1", "h1,h2", 30m0s, "")` {
		t.Errorf("good: calls %q", f.calls)
	}
}

func TestScheduleImportJSON(t *testing.T) {
	f := &fake{unit: unitName}
	r := runWith(t, f, "--json", "schedule", "import", writeCSV(t, "v1,snapshot,60,True\nv1,purge:2h:1d,60,False\nv2,x,1,True\n"))
	var got []map[string]any
	if r.code != exitFailed || json.Unmarshal([]byte(r.stdout), &got) != nil || len(got) != 3 {
		t.Fatalf("exit %d, stdout %s, stderr %q", r.code, r.stdout, r.stderr)
	}
	if got[0]["result"] != "created" || got[0]["unit"] != unitName || got[0]["line"] != 1.0 || got[0]["active"] != true ||
		got[1]["result"] != "paused" || got[1]["active"] != false ||
		got[2]["result"] != "error" || got[2]["line"] != 3.0 || !strings.Contains(got[2]["error"].(string), `ACTION "x"`) {
		t.Errorf("rows: %v", got)
	}
}

// import stops at once when butterd refuses the caller, and reads
// standard input for -.
func TestScheduleImportStops(t *testing.T) {
	old := stdin
	defer func() { stdin = old }()
	stdin = strings.NewReader("v1,snapshot,60,True\nv2,snapshot,60,True\n")
	f := &fake{err: dbusErr(dbusapi.ErrAccessDenied, "SetSchedule changes schedules: only root may")}
	r := runWith(t, f, "schedule", "import", "-")
	if r.code != exitDenied || r.stdout != "" || r.stderr != "butterctl: SetSchedule changes schedules: only root may\n" || len(f.calls) != 1 {
		t.Errorf("denied: exit %d, stdout %q, stderr %q, calls %q", r.code, r.stdout, r.stderr, f.calls)
	}
	r = runWith(t, &fake{}, "schedule", "import", filepath.Join(t.TempDir(), "none.csv"))
	if r.code != exitFailed || !strings.Contains(r.stderr, "none.csv: no such file or directory") {
		t.Errorf("missing file: exit %d, stderr %q", r.code, r.stderr)
	}
	// An empty file imports nothing.
	if r = runWith(t, &fake{}, "schedule", "import", writeCSV(t, "")); r.code != 0 || r.stdout != "" {
		t.Errorf("empty: exit %d, stdout %q", r.code, r.stdout)
	}
}
