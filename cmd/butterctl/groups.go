package main

import (
	"context"
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
  butterd.action=pause|stop|none     pause or stop it (none, the default: neither)
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
	held := roundDuration(time.Duration(r.Held) * time.Microsecond)
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
