package main

import (
	"context"
	"flag"
	"fmt"
	"os"
)

const streamImportHelp = `Reads a send stream (full or incremental, as written by 'butterctl export'
or 'btrfs send', plain or compressed with zstd: butterd tells them apart by
their first bytes) from FILE, or from standard input for -, and makes the
read-only snapshot it holds. butterctl opens FILE with your own rights and
passes butterd only the descriptor. butterd checks the stream's header
before it writes anything: a valid snapshot name not yet taken, and for an
incremental stream a parent among the snapshots it has. A corrupt
compressed stream is refused and leaves nothing behind. Prints the new
snapshot's name. butterctl waits for the job and exits with its result:
0 done, 1 failed (with the job's error), 130 canceled. Ctrl-C cancels the
job.`

type importCmd struct {
	*app
	quiet bool
}

func (c *importCmd) Flags(fs *flag.FlagSet) {
	fs.BoolVar(&c.quiet, "q", false, "print no progress and no summary (the job id and errors still)")
	fs.BoolVar(&c.quiet, "quiet", false, "same as -q")
}

func (c *importCmd) Run(ctx context.Context, args []string) error {
	if err := wantArgs(args, []string{"FILE|-"}); err != nil {
		return err
	}
	in := os.Stdin
	if args[0] == "-" {
		if isatty(in) {
			return usagef("refusing to read a send stream from a terminal: redirect standard input or give a FILE")
		}
	} else {
		f, err := os.Open(args[0])
		if err != nil {
			return pathErr(err)
		}
		defer f.Close()
		in = f
	}
	m, err := c.bus()
	if err != nil {
		return err
	}
	id, _, err := m.ImportSnapshot(in)
	if err != nil {
		return err
	}
	j, err := c.followJob(ctx, m, "import", id, c.quiet)
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(struct {
			JobID     uint32 `json:"job_id"`
			Snapshot  string `json:"snapshot"`
			BytesDone uint64 `json:"bytes_done"`
		}{id, j.Target, j.BytesDone})
	}
	fmt.Fprintln(c.out, j.Target)
	return nil
}
