package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/godbus/dbus/v5"
)

const syncHelp = `Pulls into volume VOL, from each HOST in turn, the files of HOST's
volume of the same name that VOL lacks or holds older (by modification
time). HOST is a replication peer's name or address. Before its first
change butterd takes a safety snapshot of VOL. Nothing in VOL is ever
deleted, no symlink is followed, and each file appears whole (written
aside, then renamed into place). What VOL holds in another form (a
directory where HOST has a file, a symlink where HOST has a directory) is
left alone and reported. A volume in use by containers is refused unless
--force is given.

butterctl waits for the job and prints what it did: the safety snapshot,
then per host what was created, updated, unchanged and left alone.
Exit status: 0 done, 1 failed (with the job's error), 130 canceled.
Ctrl-C cancels the job.`

type syncCmd struct {
	*app
	force bool
	quiet bool
}

func (c *syncCmd) Flags(fs *flag.FlagSet) {
	fs.BoolVar(&c.force, "force", false, "sync a volume that containers use")
	fs.BoolVar(&c.quiet, "q", false, "print no progress (the job id, the summary and errors still)")
	fs.BoolVar(&c.quiet, "quiet", false, "same as -q")
}

func (c *syncCmd) Run(ctx context.Context, args []string) error {
	if err := wantArgs(args[:min(2, len(args))], []string{"VOL", "HOST"}); err != nil {
		return err
	}
	volume, hosts := args[0], args[1:]
	for _, h := range hosts {
		if h == "" {
			return usagef("HOST is empty")
		}
	}
	m, err := c.bus()
	if err != nil {
		return err
	}
	id, path, err := m.SyncVolume(volume, hosts, c.force)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stderr, "job %d started\n", id)
	began := time.Now()
	j, err := c.waitJob(ctx, m, "sync", id, c.quiet)
	if c.json {
		if jerr := c.printJSON(struct {
			JobID     uint32          `json:"job_id"`
			JobPath   dbus.ObjectPath `json:"job_path"`
			Result    string          `json:"result"`
			Volume    string          `json:"volume"`
			Hosts     []string        `json:"hosts"`
			BytesDone uint64          `json:"bytes_done"`
			FilesDone uint64          `json:"files_done"`
			Summary   string          `json:"summary"`
		}{id, path, j.Result, volume, hosts, j.BytesDone, j.FilesDone, j.Summary}); jerr != nil {
			return jerr
		}
		return err
	}
	if j.Summary != "" {
		fmt.Fprintln(c.out, j.Summary)
	}
	if err == nil && !c.quiet {
		fmt.Fprintf(c.stderr, "job %d done: %s, %d files in %v\n", id, formatBytes(j.BytesDone), j.FilesDone, roundDuration(time.Since(began)))
	}
	return err
}
