package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/godbus/dbus/v5"

	"butterd/dbusapi"
)

// Consistent snapshots of groups of volumes: snapshot --group, --project.

const snapshotHelp = `Three forms:
  butterctl snapshot VOL
  butterctl snapshot --group NAME [VOL...]
  butterctl snapshot --project NAME

Docker containers that use a volume are quiesced around its snapshot as
their labels ask:
  butterd.action=pause|stop|none     pause or stop it, or neither (none,
                                     the default)
  butterd.pre=COMMAND                run COMMAND (with sh -c) in it before
  butterd.post=COMMAND               run COMMAND in it after
  butterd.user=USER                  the user the commands run as
  butterd.pre.on-error=abort|ignore  a failing pre command aborts the
                                     snapshot (abort, the default) or not
The post command and the unpause or restart run whatever happened between.
A container that is already paused or stopped is left as it was, and its
pre and post commands are skipped. Each snapshot involving containers, and
each that fails, is kept in the job history: 'butterctl job ID' shows how
long each container was paused or stopped.

--group NAME snapshots the volumes of group NAME; with VOL..., the group
is set to those volumes first (butterd keeps it). --project NAME
snapshots every volume the containers of compose project NAME use (label
com.docker.compose.project). Every container using one of the volumes is
quiesced before the first snapshot and resumed after the last; all the
snapshots have one timestamp. butterctl waits for the job, prints the
snapshots' names, one a line, and on stderr what was done with each
container.`

// groupSnapshot runs snapshot --group or --project as a job and waits.
func (c *snapshotCmd) groupSnapshot(ctx context.Context, args []string) error {
	switch {
	case c.group != "" && c.project != "":
		return usagef("give --group or --project, not both")
	case c.project != "" && len(args) > 0:
		return usagef("--project takes no VOL: its volumes are those its containers use")
	}
	for _, a := range args {
		if a == "" {
			return usagef("VOL is empty")
		}
	}
	m, err := c.bus()
	if err != nil {
		return err
	}
	id, path, err := m.CreateGroupSnapshot(c.group, c.project, args)
	if err != nil {
		return err
	}
	j, err := c.waitJob(ctx, m, "snapshot", id, true)
	if !c.json {
		writeContainerReport(c.stderr, j)
	}
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(struct {
			JobID      uint32          `json:"job_id"`
			JobPath    dbus.ObjectPath `json:"job_path"`
			Group      string          `json:"group,omitempty"`
			Project    string          `json:"project,omitempty"`
			Snapshots  []string        `json:"snapshots"`
			Containers []containerJSON `json:"containers"`
			Notes      []string        `json:"notes"`
		}{id, path, c.group, c.project, nonNilStrings(j.Snapshots), containersJSON(j.Containers), nonNilStrings(j.Notes)})
	}
	for _, name := range j.Snapshots {
		if err := c.println(name); err != nil {
			return err
		}
	}
	return nil
}

type containerJSON struct {
	Name     string `json:"name"`
	Action   string `json:"action"`
	HeldUsec uint64 `json:"held_usec"`
	Note     string `json:"note"`
}

func containersJSON(rows []dbusapi.ContainerRow) []containerJSON {
	out := make([]containerJSON, len(rows))
	for i, r := range rows {
		out[i] = containerJSON{r.Name, r.Action, r.Held, r.Note}
	}
	return out
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// writeContainerReport says what a snapshot job did with each container.
func writeContainerReport(w io.Writer, j dbusapi.JobInfo) {
	for _, n := range j.Notes {
		fmt.Fprintln(w, n)
	}
	for _, r := range j.Containers {
		fmt.Fprintln(w, "container "+containerText(r))
	}
}

// containerText is "NAME: paused for 3ms (NOTE)" and the like.
func containerText(r dbusapi.ContainerRow) string {
	held := time.Duration(r.Held) * time.Microsecond
	if held < time.Second {
		held = held.Round(10 * time.Microsecond) // pauses are milliseconds
	} else {
		held = roundDuration(held)
	}
	var s string
	switch r.Action {
	case "pause":
		s = fmt.Sprintf("%s: paused for %v", r.Name, held)
	case "stop":
		s = fmt.Sprintf("%s: stopped for %v", r.Name, held)
	case "none":
		s = fmt.Sprintf("%s: neither paused nor stopped", r.Name)
	default:
		return fmt.Sprintf("%s: %s", r.Name, r.Note)
	}
	if r.Note != "" {
		s += " (" + r.Note + ")"
	}
	return s
}

// containersText is a job's Containers property as `job ID` shows it.
func containersText(v dbus.Variant) (string, bool) {
	var rows []dbusapi.ContainerRow
	if err := v.Store(&rows); err != nil {
		return "", false
	}
	if len(rows) == 0 {
		return "-", true
	}
	parts := make([]string, len(rows))
	for i, r := range rows {
		parts[i] = containerText(r)
	}
	return strings.Join(parts, "; "), true
}

// groupRestore runs restore --group or --project.
func (c *restoreCmd) groupRestore(args []string) error {
	if c.group != "" && c.project != "" {
		return usagef("give --group or --project, not both")
	}
	if err := wantArgs(args, nil, "TIMESTAMP"); err != nil {
		return err
	}
	stamp := ""
	if len(args) == 1 {
		stamp = args[0]
	}
	m, err := c.bus()
	if err != nil {
		return err
	}
	stamp, rows, err := m.RestoreGroup(c.group, c.project, stamp, c.flags())
	if err != nil {
		return err
	}
	if c.json {
		type restored struct {
			Snapshot string `json:"snapshot"`
			Volume   string `json:"volume"`
			Safety   string `json:"safety_snapshot"`
		}
		out := make([]restored, len(rows))
		for i, r := range rows {
			out[i] = restored{r.Snapshot, r.Volume, r.Safety}
		}
		return c.printJSON(struct {
			Group     string     `json:"group,omitempty"`
			Project   string     `json:"project,omitempty"`
			Timestamp string     `json:"timestamp"`
			Restored  []restored `json:"restored"`
		}{c.group, c.project, stamp, out})
	}
	for _, r := range rows {
		if r.Safety == "" {
			continue
		}
		if err := c.println(r.Safety); err != nil {
			return err
		}
	}
	return nil
}

const groupsHelp = `'groups' and 'groups list' print one group a line: its name, then its
volumes. 'butterctl snapshot --group NAME VOL...' makes or changes a
group; 'groups rm NAME' forgets one, with its snapshot-group schedules
(its volumes and snapshots stay).`

type groupsCmd struct{ *app }

func (c *groupsCmd) Flags(*flag.FlagSet) {}

func (c *groupsCmd) Run(ctx context.Context, args []string) error {
	if len(args) > 0 && args[0] == "rm" {
		if err := wantArgs(args[1:], []string{"NAME"}); err != nil {
			return err
		}
		m, err := c.bus()
		if err != nil {
			return err
		}
		timers, err := m.RemoveGroup(args[1])
		if err != nil {
			return err
		}
		if c.json {
			return c.printJSON(struct {
				Removed   string   `json:"removed"`
				Schedules []string `json:"schedules_removed"`
			}{args[1], nonNilStrings(timers)})
		}
		return nil
	}
	if err := wantArgs(args, nil, "list|rm"); err != nil {
		return err
	}
	if len(args) == 1 && args[0] != "list" {
		return usagef("unknown subcommand %q: use list or rm NAME", args[0])
	}
	m, err := c.bus()
	if err != nil {
		return err
	}
	rows, err := m.ListGroups()
	if err != nil {
		return err
	}
	if c.json {
		type group struct {
			Name    string   `json:"name"`
			Volumes []string `json:"volumes"`
		}
		out := make([]group, len(rows))
		for i, r := range rows {
			out[i] = group{r.Name, r.Volumes}
		}
		return c.printJSON(out)
	}
	for _, r := range rows {
		if err := c.println(r.Name + " " + strings.Join(r.Volumes, " ")); err != nil {
			return err
		}
	}
	return nil
}
