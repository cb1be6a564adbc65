package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"butterd/dbusapi"
	"butterd/units"
)

// schedule, schedule import and scheduled: buttervolume's schedules, each
// a systemd timer that butterd generates.

// Schedule actions as D-Bus names them.
const (
	actSnapshot    = "snapshot"
	actPurge       = "purge"
	actReplicate   = "replicate"
	actSynchronize = "synchronize"

	actSnapshotGroup   = "snapshot-group"   // VOL names a group
	actSnapshotProject = "snapshot-project" // VOL names a compose project
)

// schedAction is a buttervolume ACTION: snapshot, purge:PATTERN,
// replicate:HOST or synchronize:H1,H2.
type schedAction struct {
	kind string
	arg  string
}

// String is buttervolume's spelling.
func (a schedAction) String() string {
	if a.arg == "" {
		return a.kind
	}
	return a.kind + ":" + a.arg
}

const actionSyntax = "snapshot, purge:PATTERN, replicate:HOST or synchronize:HOST[,HOST...]"

// parseAction reads a buttervolume ACTION. The argument is checked no
// further than being there: butterd checks patterns and hosts.
func parseAction(s string) (schedAction, error) { return parseActionFor(s, true) }

// parseActionFor is parseAction; without create, a bare purge names the
// volume's purge schedule (butterd keys it by volume alone).
func parseActionFor(s string, create bool) (schedAction, error) {
	kind, arg, hasArg := strings.Cut(s, ":")
	switch kind {
	case actSnapshot, actSnapshotGroup, actSnapshotProject:
		if hasArg {
			return schedAction{}, usagef("ACTION %q: %s takes no argument", s, kind)
		}
		return schedAction{kind: kind}, nil
	case actPurge, actReplicate, actSynchronize:
		if kind == actPurge && !create && !hasArg {
			return schedAction{kind: kind}, nil
		}
		what := map[string]string{
			actPurge:       "a pattern, such as purge:1h:1d:4w",
			actReplicate:   "a host, such as replicate:backup.example.com",
			actSynchronize: "hosts, such as synchronize:h1,h2",
		}[kind]
		if arg == "" {
			return schedAction{}, usagef("ACTION %q: %s needs %s", s, kind, what)
		}
		if strings.IndexFunc(arg, unicode.IsSpace) >= 0 {
			return schedAction{}, usagef("ACTION %q: no spaces in %s's argument", s, kind)
		}
		if kind == actSynchronize && slices.Contains(strings.Split(arg, ","), "") {
			return schedAction{}, usagef("ACTION %q: an empty host in the list", s)
		}
		return schedAction{kind: kind, arg: arg}, nil
	}
	return schedAction{}, usagef("ACTION %q: use %s", s, actionSyntax)
}

// parseSpan reads a time span as butterd does (a bare number is minutes);
// bare says whether it was a bare number.
func parseSpan(s string) (d time.Duration, bare bool, err error) {
	d, err = units.ParseSpan(s)
	_, nerr := strconv.ParseUint(strings.TrimSpace(s), 10, 32)
	return d, err == nil && nerr == nil, err
}

// compactUnits are the units compactSpan writes, largest first.
var compactUnits = []struct {
	name string
	d    time.Duration
}{
	{"w", 7 * 24 * time.Hour}, {"d", 24 * time.Hour}, {"h", time.Hour},
	{"min", time.Minute}, {"s", time.Second}, {"ms", time.Millisecond}, {"us", time.Microsecond},
}

// compactSpan writes d as a systemd time span without spaces ("1min30s"),
// so that it stays one word.
func compactSpan(d time.Duration) string {
	if d < time.Microsecond {
		return "0"
	}
	var b strings.Builder
	for _, u := range compactUnits {
		if n := d / u.d; n > 0 {
			fmt.Fprintf(&b, "%d%s", n, u.name)
			d -= n * u.d
		}
	}
	return b.String()
}

// timerText is a schedule's TIMER as buttervolume wrote it: minutes when
// the interval is a whole number of them, else the span, or the calendar
// expression (quoted when it has spaces, so that a line stays three
// words).
func timerText(every time.Duration, calendar string) string {
	switch {
	case every > 0 && every%time.Minute == 0:
		return strconv.FormatInt(int64(every/time.Minute), 10)
	case every > 0:
		return compactSpan(every)
	case strings.ContainsAny(calendar, " \t\"'"):
		return strconv.Quote(calendar)
	}
	return calendar
}

// timer is a parsed buttervolume TIMER.
type timer struct {
	op    string // "set", "remove", "pause", "resume"
	every time.Duration
}

// parseTimer reads TIMER: minutes or a span (create or replace), 0 or
// delete (remove), pause, resume.
func parseTimer(s string) (timer, error) {
	switch s {
	case "delete":
		return timer{op: "remove"}, nil
	case "pause", "resume":
		return timer{op: s}, nil
	}
	d, bare, err := parseSpan(s)
	switch {
	case err != nil:
		return timer{}, usagef("TIMER %q: use minutes (60), a systemd time span (90s, 1h), 0 or delete, pause or resume (a calendar goes in --on-calendar)", s)
	case d == 0 && bare:
		return timer{op: "remove"}, nil
	case d == 0:
		return timer{}, usagef("TIMER %q is no interval: use 0 or delete to remove the schedule", s)
	}
	return timer{op: "set", every: d}, nil
}

// parseEvery reads --every.
func parseEvery(s string) (time.Duration, error) {
	d, _, err := parseSpan(s)
	switch {
	case err != nil:
		return 0, usagef("--every: %v", err)
	case d == 0:
		return 0, usagef("--every %q is no interval: to remove a schedule, run 'butterctl schedule ACTION delete VOL'", s)
	}
	return d, nil
}

// checkCalendar refuses what can never be a calendar expression; butterd
// has systemd parse the rest before it writes anything.
func checkCalendar(s string) error {
	if strings.TrimSpace(s) == "" {
		return usagef("--on-calendar is empty: give a systemd calendar expression such as daily or \"Mon *-*-* 03:00\"")
	}
	if strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return usagef("--on-calendar %q: control characters are not allowed", s)
	}
	return nil
}

const scheduleHelp = `Two forms:
  butterctl schedule ACTION TIMER VOL                          (buttervolume's)
  butterctl schedule --every SPAN|--on-calendar EXPR ACTION VOL

ACTION is buttervolume's: snapshot, purge:PATTERN (a purge pattern such
as 1h:1d:4w), replicate:HOST or synchronize:HOST[,HOST...]. To remove,
pause or resume a purge schedule, purge alone will do. replicate runs
'butterctl replicate HOST VOL' (a fresh snapshot, then a send), synchronize
'butterctl sync VOL HOST...'; each HOST is a peer's name or HOST[:PORT]
('butterctl remote ls'), checked when the schedule is set, and the hosts
of synchronize are separated by commas, without spaces or repeats.
snapshot-group and snapshot-project take the snapshots of a group's or a
compose project's volumes together (butterctl snapshot --group or
--project): VOL then names the group or project.

TIMER is buttervolume's too:
  N, SPAN        create or replace the schedule, every N minutes or every
                 SPAN, a systemd time span (90s, 2h, "1h 30min")
  0, delete      remove the schedule
  pause, resume  stop the schedule's timer, or start it again
--every SPAN (a bare number means minutes) and --on-calendar EXPR (a
systemd calendar expression, such as daily or "Mon *-*-* 03:00"; see
systemd.time(7)) replace TIMER to create or replace a schedule.

A schedule is a systemd timer, butterd-sched-*.timer, that runs butterctl
for the action; creating one prints that timer's name. A volume has at most
one snapshot and one purge schedule (setting another replaces it), and one
replicate or synchronize schedule per host list. Schedules need butterd
running under systemd; without it they fail (exit 1) and nothing is made.

'butterctl scheduled' lists the schedules; 'butterctl schedule import FILE'
reads buttervolume's schedule.csv.`

type scheduleCmd struct {
	*app
	every    string
	calendar string
}

func (c *scheduleCmd) Flags(fs *flag.FlagSet) {
	fs.StringVar(&c.every, "every", "", "create or replace the schedule, running every `SPAN` (a bare number means minutes)")
	fs.StringVar(&c.calendar, "on-calendar", "", "create or replace the schedule, running at systemd calendar `EXPR`")
}

func (c *scheduleCmd) Run(ctx context.Context, args []string) error {
	flagged := c.every != "" || c.calendar != ""
	switch {
	case c.every != "" && c.calendar != "":
		return usagef("give --every or --on-calendar, not both")
	case len(args) > 0 && args[0] == "import":
		return usagef("import takes no flags: butterctl schedule import FILE")
	case flagged && len(args) == 3:
		return usagef("give TIMER or %s, not both", map[bool]string{true: "--every", false: "--on-calendar"}[c.every != ""])
	case !flagged && len(args) == 2:
		return usagef("missing TIMER (minutes, 0|delete, pause or resume) or --every SPAN or --on-calendar EXPR")
	}
	var err error
	if flagged {
		err = wantArgs(args, []string{"ACTION", "VOL"})
	} else {
		err = wantArgs(args, []string{"ACTION", "TIMER", "VOL"})
	}
	if err != nil {
		return err
	}
	volume := args[len(args)-1]
	t := timer{op: "set"}
	switch {
	case c.every != "":
		if t.every, err = parseEvery(c.every); err != nil {
			return err
		}
	case c.calendar != "":
		if err := checkCalendar(c.calendar); err != nil {
			return err
		}
	default:
		if t, err = parseTimer(args[1]); err != nil {
			return err
		}
	}
	action, err := parseActionFor(args[0], t.op == "set")
	if err != nil {
		return err
	}
	m, err := c.bus()
	if err != nil {
		return err
	}
	var unit string
	switch t.op {
	case "set":
		unit, err = m.SetSchedule(action.kind, volume, action.arg, t.every, c.calendar)
	case "remove":
		err = m.RemoveSchedule(action.kind, volume, action.arg)
	case "pause":
		err = m.PauseSchedule(action.kind, volume, action.arg)
	case "resume":
		err = m.ResumeSchedule(action.kind, volume, action.arg)
	}
	if err != nil {
		return err
	}
	if c.json {
		out := map[string]any{"action": action.kind, "arg": action.arg, "volume": volume,
			"result": map[string]string{"set": "set", "remove": "removed", "pause": "paused", "resume": "resumed"}[t.op]}
		if t.op == "set" {
			out["unit"] = unit
			out["timer"] = timerText(t.every, c.calendar)
			out["every_usec"] = t.every.Microseconds()
			out["on_calendar"] = c.calendar
		}
		return c.printJSON(out)
	}
	if t.op == "set" {
		return c.println(unit)
	}
	return nil
}

const scheduledHelp = `'scheduled' and 'scheduled list' print one line per schedule, as
buttervolume did: ACTION TIMER VOL, such as "purge:1h:1d 60 v1", with
" (paused)" after a paused one. TIMER is in minutes when the interval is a
whole number of them, else a systemd time span (90s) or the calendar
expression (quoted when it has spaces).

With -l, a table adds each schedule's state, its last run and result, and
its next run. --json prints every field:
{"all_paused", "schedules": [{"action", "arg", "volume", "timer", "every",
"every_usec", "on_calendar", "paused", "unit", "last_run", "last_result",
"next_run"}], "unreadable": [{"unit", "reason", "paused", "last_run",
"last_result", "next_run"}]}.

Units named like schedules that butterd cannot read back (edited by hand,
or refused by this version) are no schedules, but their timers may still
run: list names each on stderr, "unreadable schedule unit NAME: REASON",
and --json under "unreadable". butterd leaves them alone; removing the
volume they are named for removes them.

'scheduled pause' pauses every schedule (their timers stop with
butterd-schedules.target); 'scheduled resume' resumes them, leaving paused
those that were paused one by one. While all are paused, list says so on
stderr.`

type scheduledCmd struct {
	*app
	long bool
}

func (c *scheduledCmd) Flags(fs *flag.FlagSet) {
	fs.BoolVar(&c.long, "l", false, "a table: add state, last run, result and next run")
	fs.BoolVar(&c.long, "long", false, "same as -l")
}

func (c *scheduledCmd) Run(ctx context.Context, args []string) error {
	if err := wantArgs(args, nil, "list|pause|resume"); err != nil {
		return err
	}
	sub := "list"
	if len(args) == 1 {
		sub = args[0]
	}
	switch sub {
	case "list":
	case "pause", "resume":
		if c.long {
			return usagef("-l is for list")
		}
	default:
		return usagef("unknown subcommand %q: use list, pause or resume", sub)
	}
	m, err := c.bus()
	if err != nil {
		return err
	}
	switch sub {
	case "pause", "resume":
		if sub == "pause" {
			err = m.PauseAllSchedules()
		} else {
			err = m.ResumeAllSchedules()
		}
		if err != nil {
			return err
		}
		if c.json {
			return c.printJSON(struct {
				AllPaused bool `json:"all_paused"`
			}{sub == "pause"})
		}
		return nil
	}
	rows, allPaused, err := m.ListSchedules()
	if err != nil {
		return err
	}
	rows, unreadable := splitUnreadable(rows)
	slices.SortFunc(rows, func(a, b dbusapi.ScheduleRow) int {
		if n := strings.Compare(a.Volume, b.Volume); n != 0 {
			return n
		}
		if n := strings.Compare(a.Action, b.Action); n != 0 {
			return n
		}
		return strings.Compare(a.Arg, b.Arg)
	})
	if c.json {
		out := make([]scheduleJSON, len(rows))
		for i, r := range rows {
			out[i] = newScheduleJSON(r)
		}
		bad := make([]unreadableJSON, len(unreadable))
		for i, r := range unreadable {
			bad[i] = unreadableJSON{Unit: r.Unit, Reason: r.Arg, Paused: r.Paused,
				LastRun: usec(r.LastRun), LastResult: r.LastResult, NextRun: usec(r.NextRun)}
		}
		return c.printJSON(struct {
			AllPaused  bool             `json:"all_paused"`
			Schedules  []scheduleJSON   `json:"schedules"`
			Unreadable []unreadableJSON `json:"unreadable"`
		}{allPaused, out, bad})
	}
	if allPaused {
		fmt.Fprintln(c.stderr, "all schedules paused ('butterctl scheduled resume' resumes them)")
	}
	// On stderr: stdout keeps buttervolume's three words a line.
	for _, r := range unreadable {
		fmt.Fprintf(c.stderr, "unreadable schedule unit %s: %s\n", r.Unit, r.Arg)
	}
	if len(unreadable) > 0 {
		fmt.Fprintln(c.stderr, "butterd leaves such units alone (a timer of theirs may run and fail): fix or delete them in butterd's UNIT_DIR, or remove the volume they are named for")
	}
	if c.long {
		return scheduleTable(c.out, rows)
	}
	for _, r := range rows {
		s := fmt.Sprintf("%s %s %s", rowAction(r), rowTimer(r), r.Volume)
		if r.Paused {
			s += " (paused)"
		}
		if err := c.println(s); err != nil {
			return err
		}
	}
	return nil
}

// splitUnreadable separates the rows of units butterd cannot read back
// (no action: see dbusapi.ScheduleRow) from the schedules.
func splitUnreadable(rows []dbusapi.ScheduleRow) (schedules, unreadable []dbusapi.ScheduleRow) {
	for _, r := range rows {
		if r.Action == "" {
			unreadable = append(unreadable, r)
		} else {
			schedules = append(schedules, r)
		}
	}
	return schedules, unreadable
}

func rowAction(r dbusapi.ScheduleRow) string {
	return schedAction{kind: r.Action, arg: r.Arg}.String()
}

func rowTimer(r dbusapi.ScheduleRow) string {
	return timerText(time.Duration(r.Every)*time.Microsecond, r.OnCalendar)
}

// scheduleTable writes `scheduled -l`.
func scheduleTable(w io.Writer, rows []dbusapi.ScheduleRow) error {
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "ACTION\tTIMER\tVOLUME\tSTATE\tLAST RUN\tRESULT\tNEXT RUN")
	for _, r := range rows {
		state, result := "active", r.LastResult
		if r.Paused {
			state = "paused"
		}
		if result == "" {
			result = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", rowAction(r), rowTimer(r), r.Volume, state,
			usec(r.LastRun), result, usec(r.NextRun))
	}
	return tw.Flush()
}

type scheduleJSON struct {
	Action     string `json:"action"`
	Arg        string `json:"arg"`
	Volume     string `json:"volume"`
	Timer      string `json:"timer"`
	Every      string `json:"every"`
	EveryUsec  uint64 `json:"every_usec"`
	OnCalendar string `json:"on_calendar"`
	Paused     bool   `json:"paused"`
	Unit       string `json:"unit"`
	LastRun    usec   `json:"last_run"`
	LastResult string `json:"last_result"`
	NextRun    usec   `json:"next_run"`
}

// unreadableJSON is a unit butterd cannot read back, with its state.
type unreadableJSON struct {
	Unit       string `json:"unit"`
	Reason     string `json:"reason"`
	Paused     bool   `json:"paused"`
	LastRun    usec   `json:"last_run"`
	LastResult string `json:"last_result"`
	NextRun    usec   `json:"next_run"`
}

func newScheduleJSON(r dbusapi.ScheduleRow) scheduleJSON {
	every := ""
	if r.Every > 0 {
		every = compactSpan(time.Duration(r.Every) * time.Microsecond)
	}
	return scheduleJSON{Action: r.Action, Arg: r.Arg, Volume: r.Volume, Timer: rowTimer(r), Every: every,
		EveryUsec: r.Every, OnCalendar: r.OnCalendar, Paused: r.Paused, Unit: r.Unit,
		LastRun: usec(r.LastRun), LastResult: r.LastResult, NextRun: usec(r.NextRun)}
}

const importHelp = `FILE is buttervolume's schedule.csv (- reads standard input): one
schedule a line, Name,Action,Timer,Active, without a header, such as
  v1,snapshot,60,True
  v1,purge:2h:1d,60,False
Action and Timer are as for 'butterctl schedule' (Timer: minutes or a
systemd time span); Active is True or False (absent: True). Each row
creates or replaces its schedule, then pauses it when Active is False.

Each row is reported on stdout: "v1 snapshot 60: created", "v1
purge:2h:1d 60: created, paused", or "line 3: error: ..." for a row that
failed; import goes on with the next row and exits 1 when any row failed.
It stops at once when butterd cannot be reached or refuses the caller.
Blank lines, lines starting with # and a header line are skipped. A
volume has one snapshot and one purge schedule: where schedule.csv has
two, the later row replaces the earlier and says so.`

type scheduleImportCmd struct{ *app }

func (c *scheduleImportCmd) Flags(*flag.FlagSet) {}

// stdin is what 'schedule import -' reads. Tests replace it.
var stdin io.Reader = os.Stdin

// importRow is one row's report.
type importRow struct {
	Line   int    `json:"line"`
	Volume string `json:"volume,omitempty"`
	Action string `json:"action,omitempty"`
	Timer  string `json:"timer,omitempty"`
	Active bool   `json:"active"`
	Result string `json:"result"` // created, paused, error
	Unit   string `json:"unit,omitempty"`
	Error  string `json:"error,omitempty"`
	// Replaces is the earlier line whose schedule this row replaced.
	Replaces int `json:"replaces,omitempty"`
	printed  string
}

func (c *scheduleImportCmd) Run(ctx context.Context, args []string) error {
	if err := wantArgs(args, []string{"FILE"}); err != nil {
		return err
	}
	var in io.Reader = stdin
	if args[0] != "-" {
		f, err := os.Open(args[0])
		if err != nil {
			return &localError{fmt.Sprintf("cannot read %s: %v", args[0], pathErr(err))}
		}
		defer f.Close()
		in = f
	}
	m, err := c.bus()
	if err != nil {
		return err
	}
	var rows []importRow
	failed := 0
	seen := map[string]int{} // schedule key: the line that set it
	sc := bufio.NewScanner(in)
	for n := 1; sc.Scan(); n++ {
		if ctx.Err() != nil {
			return fmt.Errorf("schedule import interrupted before line %d", n)
		}
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		row, fatal := c.importLine(m, n, line, seen)
		if fatal != nil {
			c.out.Flush()
			return fatal
		}
		if row == nil {
			continue // the header
		}
		if row.Result == "error" {
			failed++
		}
		rows = append(rows, *row)
		if !c.json {
			if err := c.println(row.printed); err != nil {
				return err
			}
		}
	}
	if err := sc.Err(); err != nil {
		return &localError{fmt.Sprintf("cannot read %s: %v", args[0], pathErr(err))}
	}
	if c.json {
		if rows == nil {
			rows = []importRow{}
		}
		if err := c.printJSON(rows); err != nil {
			return err
		}
	}
	if failed > 0 {
		return fmt.Errorf("schedule import: %d of %d rows failed", failed, len(rows))
	}
	return nil
}

// importLine imports one row. It returns nil for a header, and an error
// only when importing should stop (butterd unreachable, the caller
// refused).
func (c *scheduleImportCmd) importLine(m manager, n int, line string, seen map[string]int) (*importRow, error) {
	row := &importRow{Line: n}
	fail := func(msg string) (*importRow, error) {
		row.Result, row.Error = "error", oneLine(msg)
		row.printed = fmt.Sprintf("line %d: error: %s", n, row.Error)
		return row, nil
	}
	r := csv.NewReader(strings.NewReader(line))
	r.FieldsPerRecord = -1
	r.TrimLeadingSpace = true
	rec, err := r.Read()
	if err != nil {
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fail(fmt.Sprintf("not a CSV row (%v): want Name,Action,Timer,Active", err))
	}
	for i := range rec {
		rec[i] = strings.TrimSpace(rec[i])
	}
	if len(rec) == 4 && strings.EqualFold(rec[0], "name") && strings.EqualFold(rec[1], "action") {
		return nil, nil
	}
	if len(rec) != 3 && len(rec) != 4 {
		return fail(fmt.Sprintf("%d fields: want Name,Action,Timer,Active (such as v1,snapshot,60,True)", len(rec)))
	}
	row.Volume, row.Action, row.Timer, row.Active = rec[0], rec[1], rec[2], true
	what := fmt.Sprintf("%s %s %s", row.Volume, row.Action, row.Timer)
	if row.Volume == "" {
		return fail("the Name (volume) is empty")
	}
	if len(rec) == 4 {
		b, err := strconv.ParseBool(rec[3])
		if err != nil {
			return fail(fmt.Sprintf("%s: Active %q: use True or False", what, rec[3]))
		}
		row.Active = b
	}
	action, err := parseAction(row.Action)
	if err != nil {
		return fail(what + ": " + err.Error())
	}
	d, _, err := parseSpan(row.Timer)
	switch {
	case err != nil:
		return fail(what + ": Timer: " + err.Error())
	case d == 0:
		return fail(what + ": Timer 0 is no schedule")
	}
	stop := func(err error) bool {
		code, _ := classify(err)
		return code == exitDenied || code == exitUnreachable
	}
	unit, err := m.SetSchedule(action.kind, row.Volume, action.arg, d, "")
	if err != nil {
		if stop(err) {
			return nil, err
		}
		return fail(what + ": " + dbusapi.Message(err))
	}
	row.Unit, row.Result = unit, "created"
	row.printed = what + ": created"
	// A volume has one snapshot and one purge schedule: a second row
	// replaces the first (buttervolume kept one per pattern).
	key := action.kind + "/" + row.Volume
	if action.kind != actSnapshot && action.kind != actPurge {
		key += "/" + action.arg
	}
	if prev, ok := seen[key]; ok {
		row.Replaces = prev
		row.printed += fmt.Sprintf(" (replaces line %d)", prev)
	}
	seen[key] = n
	if !row.Active {
		if err := m.PauseSchedule(action.kind, row.Volume, action.arg); err != nil {
			if stop(err) {
				return nil, err
			}
			return fail(what + ": created, but not paused: " + dbusapi.Message(err))
		}
		row.Result = "paused"
		row.printed += ", paused"
	}
	return row, nil
}
