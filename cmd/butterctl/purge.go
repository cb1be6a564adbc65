package main

import (
	"context"
	"flag"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/godbus/dbus/v5"

	"butterd/dbusapi"
)

// purge, pin and unpin: retention by buttervolume's patterns.

const purgeHelp = `PATTERN is buttervolume's T1[:T2...]: each item a positive number with a
unit m, h, d, w or y (1, 60, 1440, 10080 and 525600 minutes; a bare number
means minutes), strictly increasing. With age = now - the snapshot's time:
one item T1 deletes the snapshots aged T1 or more; several keep every
snapshot younger than T1, keep only the oldest snapshot of each Ti-wide
bucket between Ti and Ti+1, and delete from Tn on. The newest snapshot of
VOL, pinned snapshots ('butterctl pin'), snapshots a running job uses and
those a replication peer needs are always kept. VOL need not exist any
more: its snapshots are purged all the same.

Without --dry-run, butterd deletes as a job; butterctl waits for it and
exits with its result (0 done, 1 failed, 130 canceled; Ctrl-C cancels it),
printing nothing on success, as buttervolume did; -v prints the job id on
stderr and the names of the snapshots deleted on stdout.

--dry-run (or buttervolume's --dryrun) deletes nothing and prints the plan,
oldest first, one snapshot a line:
  delete VOL@TIMESTAMP  (REASON)
  keep VOL@TIMESTAMP  (REASON)
With --json: {"volume", "pattern", "at", "delete": [...], "keep": [...]},
each entry {"name", "time", "reason"}.

--at TIME evaluates the pattern at another moment (dry run only): RFC 3339
(2026-11-22T20:57:08+01:00, 2026-11-22T19:57:08Z) or local time
YYYY-MM-DD[THH:MM[:SS[.FRACTION]]] (a space may stand for the T).

An old spelling butterd reads another way (buttervolume's 1d:1d, read as
1d) is done as read, with a warning on stderr.

butterd refuses a bad PATTERN with a message naming the bad item and the
rule.`

type purgeCmd struct {
	*app
	dryRun  bool
	at      string
	verbose bool
}

func (c *purgeCmd) Flags(fs *flag.FlagSet) {
	fs.BoolVar(&c.dryRun, "dry-run", false, "delete nothing: print what would be deleted and kept, and why")
	fs.BoolVar(&c.dryRun, "dryrun", false, "same as --dry-run (buttervolume's spelling)")
	fs.StringVar(&c.at, "at", "", "with --dry-run: evaluate the pattern at `TIME` instead of now")
	fs.BoolVar(&c.verbose, "v", false, "print the job id on stderr and the deleted snapshots' names on stdout")
	fs.BoolVar(&c.verbose, "verbose", false, "same as -v")
}

func (c *purgeCmd) Run(ctx context.Context, args []string) error {
	if err := wantArgs(args, []string{"PATTERN", "VOL"}); err != nil {
		return err
	}
	pattern, volume := args[0], args[1]
	var at time.Time
	if c.at != "" {
		if !c.dryRun {
			return usagef("--at is only for a dry run (a purge deletes by the present time): add --dry-run")
		}
		var err error
		if at, err = parseAt(c.at); err != nil {
			return err
		}
	}
	m, err := c.bus()
	if err != nil {
		return err
	}
	if c.dryRun {
		return c.plan(m, pattern, volume, at)
	}
	return c.purge(ctx, m, pattern, volume)
}

// plan prints what a purge would do.
func (c *purgeCmd) plan(m manager, pattern, volume string, at time.Time) error {
	if at.IsZero() {
		// Name the moment, so that --json can tell it.
		at = time.Now()
	}
	_, _, del, keep, warnings, err := m.PurgeWarned(volume, pattern, true, at)
	if err != nil {
		return err
	}
	c.warnPattern(warnings)
	sortPurgeRows(del)
	sortPurgeRows(keep)
	if c.json {
		return c.printJSON(struct {
			Volume  string         `json:"volume"`
			Pattern string         `json:"pattern"`
			At      usec           `json:"at"`
			Delete  []purgeRowJSON `json:"delete"`
			Keep    []purgeRowJSON `json:"keep"`
		}{volume, pattern, usec(at.UnixMicro()), purgeRowsJSON(del), purgeRowsJSON(keep)})
	}
	type line struct {
		verdict string
		row     dbusapi.PurgeRow
	}
	var lines []line
	for _, r := range del {
		lines = append(lines, line{"delete", r})
	}
	for _, r := range keep {
		lines = append(lines, line{"keep", r})
	}
	slices.SortStableFunc(lines, func(a, b line) int { return comparePurgeRows(a.row, b.row) })
	for _, l := range lines {
		s := l.verdict + " " + l.row.Name
		if l.row.Reason != "" {
			s += "  (" + oneLine(l.row.Reason) + ")"
		}
		if err := c.println(s); err != nil {
			return err
		}
	}
	return nil
}

// warnPattern prints the pattern's warnings on stderr.
func (c *purgeCmd) warnPattern(warnings []string) {
	for _, w := range warnings {
		fmt.Fprintf(c.stderr, "butterctl: warning: %s\n", oneLine(w))
	}
}

// purge deletes as a job and waits for it.
func (c *purgeCmd) purge(ctx context.Context, m manager, pattern, volume string) error {
	report := c.verbose || c.json
	var before []dbusapi.SnapshotRow
	if report {
		var err error
		if before, err = m.ListSnapshots(volume); err != nil {
			return err
		}
	}
	id, path, _, _, warnings, err := m.PurgeWarned(volume, pattern, false, time.Time{})
	if err != nil {
		return err
	}
	c.warnPattern(warnings)
	if c.verbose {
		fmt.Fprintf(c.stderr, "job %d started\n", id)
	}
	// Quiet as buttervolume was, unless asked or on a terminal, where the
	// progress line is cleared at the end.
	j, err := c.waitJob(ctx, m, "purge", id, !c.verbose && !isTerminal(c.stderr))
	if err != nil {
		return err
	}
	deleted := []string{}
	if report {
		after, err := m.ListSnapshots(volume)
		if err != nil {
			return err
		}
		left := map[string]bool{}
		for _, r := range after {
			left[r.Name] = true
		}
		for _, r := range before {
			if !left[r.Name] {
				deleted = append(deleted, r.Name)
			}
		}
	}
	if c.json {
		return c.printJSON(struct {
			JobID   uint32          `json:"job_id"`
			JobPath dbus.ObjectPath `json:"job_path"`
			Result  string          `json:"result"`
			Volume  string          `json:"volume"`
			Pattern string          `json:"pattern"`
			Deleted []string        `json:"deleted"`
		}{id, path, j.Result, volume, pattern, deleted})
	}
	for _, name := range deleted {
		if err := c.println(name); err != nil {
			return err
		}
	}
	return nil
}

type purgeRowJSON struct {
	Name   string `json:"name"`
	Time   usec   `json:"time"`
	Reason string `json:"reason"`
}

func purgeRowsJSON(rows []dbusapi.PurgeRow) []purgeRowJSON {
	out := make([]purgeRowJSON, len(rows))
	for i, r := range rows {
		out[i] = purgeRowJSON{r.Name, usec(r.Time), r.Reason}
	}
	return out
}

// comparePurgeRows orders by time, oldest first, names whose time is
// unknown last, then by name.
func comparePurgeRows(a, b dbusapi.PurgeRow) int {
	switch {
	case a.Time == b.Time:
		return strings.Compare(a.Name, b.Name)
	case a.Time == 0:
		return 1
	case b.Time == 0:
		return -1
	case a.Time < b.Time:
		return -1
	}
	return 1
}

func sortPurgeRows(rows []dbusapi.PurgeRow) { slices.SortFunc(rows, comparePurgeRows) }

// atLayouts are the local times --at accepts besides RFC 3339.
var atLayouts = []string{
	"2006-01-02",
	"2006-01-02T15:04",
	"2006-01-02T15:04:05.999999999",
}

// parseAt reads --at: RFC 3339, or a local YYYY-MM-DD[THH:MM[:SS]].
func parseAt(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	local := s
	if len(local) > 10 && local[10] == ' ' {
		local = local[:10] + "T" + local[11:]
	}
	for _, layout := range atLayouts {
		if t, err := time.ParseInLocation(layout, local, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, usagef("--at %q: use RFC 3339 (2026-11-22T20:57:08+01:00) or local time YYYY-MM-DD[THH:MM[:SS]]", s)
}

type pinCmd struct {
	*app
	on bool
}

func (c *pinCmd) Flags(*flag.FlagSet) {}

func (c *pinCmd) Run(ctx context.Context, args []string) error {
	if err := wantArgs(args, []string{"SNAP"}); err != nil {
		return err
	}
	name := args[0]
	if !strings.Contains(name, "@") {
		return usagef("%q is not a snapshot name (VOL@TIMESTAMP): 'butterctl snapshots %s' lists its snapshots", name, name)
	}
	m, err := c.bus()
	if err != nil {
		return err
	}
	if c.on {
		err = m.PinSnapshot(name)
	} else {
		err = m.UnpinSnapshot(name)
	}
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(struct {
			Name   string `json:"name"`
			Pinned bool   `json:"pinned"`
		}{name, c.on})
	}
	return nil
}
