package main

import (
	"context"
	"flag"
	"fmt"
	"strings"

	"butterd/dbusapi"
)

// The verbs buttervolume users know: snapshot, snapshots, restore, clone,
// rm, with the same arguments and output.

type snapshotCmd struct {
	*app
	group, project string
}

func (c *snapshotCmd) Flags(fs *flag.FlagSet) {
	fs.StringVar(&c.group, "group", "", "snapshot group `NAME` (with VOL...: set the group to them first)")
	fs.StringVar(&c.project, "project", "", "snapshot the volumes of compose project `NAME`")
}

func (c *snapshotCmd) Run(ctx context.Context, args []string) error {
	if c.group != "" || c.project != "" {
		return c.groupSnapshot(ctx, args)
	}
	if err := wantArgs(args, []string{"VOL"}); err != nil {
		return err
	}
	m, err := c.bus()
	if err != nil {
		return err
	}
	name, err := m.CreateSnapshot(args[0])
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(struct {
			Name   string `json:"name"`
			Volume string `json:"volume"`
		}{name, args[0]})
	}
	return c.println(name)
}

type snapshotsCmd struct {
	*app
	long bool
}

func (c *snapshotsCmd) Flags(fs *flag.FlagSet) {
	fs.BoolVar(&c.long, "l", false, "a table: name, time and the replication peers that hold each snapshot")
}

func (c *snapshotsCmd) Run(ctx context.Context, args []string) error {
	if err := wantArgs(args, nil, "VOL"); err != nil {
		return err
	}
	volume := ""
	if len(args) == 1 {
		volume = args[0]
	}
	m, err := c.bus()
	if err != nil {
		return err
	}
	rows, err := m.ListSnapshots(volume)
	if err != nil {
		return err
	}
	if len(rows) == 0 && volume != "" {
		if err := c.checkVolume(m, volume); err != nil {
			return err
		}
	}
	if c.long {
		reps, err := m.ListReplicas(volume)
		if err != nil {
			return err
		}
		if c.json {
			return c.printJSON(snapshotsLongJSON(rows, reps))
		}
		return snapshotsTable(c.out, rows, reps)
	}
	if c.json {
		return c.printJSON(snapshotsJSON(rows))
	}
	for _, r := range rows {
		if err := c.println(r.Name); err != nil {
			return err
		}
	}
	return nil
}

// checkVolume tells a volume without snapshots from a name that is
// neither a volume nor in any snapshot's name (a typo).
func (c *snapshotsCmd) checkVolume(m manager, volume string) error {
	_, err := m.GetVolume(volume)
	if dbusapi.ErrorName(err) == dbusapi.ErrNoSuchVolume {
		return &notFoundError{fmt.Sprintf("no volume %q and no snapshot of it ('butterctl volume ls' lists the volumes, 'butterctl snapshots' every snapshot)", volume)}
	}
	return err
}

type restoreCmd struct {
	*app
	force          bool
	group, project string
}

func (c *restoreCmd) Flags(fs *flag.FlagSet) {
	fs.BoolVar(&c.force, "force", false, "restore even when TARGET is in use by containers")
	fs.StringVar(&c.group, "group", "", "restore every volume of group `NAME` (then the argument is an optional TIMESTAMP)")
	fs.StringVar(&c.project, "project", "", "restore every volume of compose project `NAME` (then the argument is an optional TIMESTAMP)")
}

func (c *restoreCmd) Run(ctx context.Context, args []string) error {
	if c.group != "" || c.project != "" {
		return c.groupRestore(args)
	}
	if err := wantArgs(args, []string{"SNAP|VOL"}, "TARGET"); err != nil {
		return err
	}
	target := ""
	if len(args) == 2 {
		target = args[1]
	}
	m, err := c.bus()
	if err != nil {
		return err
	}
	snap, volume, safety, err := m.Restore(args[0], target, c.flags())
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(struct {
			Snapshot string `json:"snapshot"`
			Volume   string `json:"volume"`
			Safety   string `json:"safety_snapshot"`
		}{snap, volume, safety})
	}
	if safety == "" {
		return nil
	}
	return c.println(safety)
}

// flags are RestoreSnapshot's and RestoreGroup's flags.
func (c *restoreCmd) flags() uint64 {
	if c.force {
		return dbusapi.RestoreForce
	}
	return 0
}

type cloneCmd struct{ *app }

func (c *cloneCmd) Flags(*flag.FlagSet) {}

func (c *cloneCmd) Run(ctx context.Context, args []string) error {
	if err := wantArgs(args, []string{"VOL", "NEW"}); err != nil {
		return err
	}
	m, err := c.bus()
	if err != nil {
		return err
	}
	if _, err := m.CloneVolume(args[0], args[1]); err != nil {
		return err
	}
	if c.json {
		return c.printJSON(struct {
			Name   string `json:"name"`
			Source string `json:"source"`
		}{args[1], args[0]})
	}
	return c.println(args[1])
}

type rmCmd struct{ *app }

func (c *rmCmd) Flags(*flag.FlagSet) {}

func (c *rmCmd) Run(ctx context.Context, args []string) error {
	if err := wantArgs(args, []string{"SNAP"}); err != nil {
		return err
	}
	if !strings.Contains(args[0], "@") {
		return usagef("%q is not a snapshot name (VOL@TIMESTAMP): rm removes snapshots; to remove a volume, run 'butterctl volume rm %s'", args[0], args[0])
	}
	m, err := c.bus()
	if err != nil {
		return err
	}
	if err := m.RemoveSnapshot(args[0]); err != nil {
		return err
	}
	if c.json {
		return c.printJSON(struct {
			Removed string `json:"removed"`
		}{args[0]})
	}
	return nil
}
