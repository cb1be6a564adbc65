package main

import (
	"context"
	"flag"
	"regexp"
	"strconv"
	"strings"

	"github.com/godbus/dbus/v5"
)

const sendHelp = `butterd streams snapshot SNAP (VOL@TIMESTAMP) to the butterd on HOST over
SSH: incrementally against the newest snapshot both hosts hold (matched by
UUID, so a snapshot that came from HOST counts too), in full when they
share none, and not at all when HOST holds SNAP already. HOST is a peer's
name ('butterctl remote ls': the send goes to its address) or
HOST[:PORT] (port 1122 when none).

HOST's host key must be trusted first: an unknown key is refused with its
fingerprint and the 'butterctl remote trust' command that trusts it.
HOST's butterd must know this host's client key as a peer with the push
right ('butterctl remote key' here, 'butterctl remote add' there).

--compress sends the stream compressed with zstd (HOST decompresses it).
--bwlimit RATE caps the bytes per second on the wire: a number with an
optional unit K, M, G or T (powers of 1024; B, iB and /s may follow), as
10M or 512KiB/s; 0 means no limit.

The job's id is printed on stderr ("job 7 started"), then its progress;
at the end the summary says what was sent: "full: ...", "incremental
against ...", "no-op: ..." or "the shared parent is gone: full send (...)"
when the snapshot both hosts held was removed on one side. butterctl waits
for the job and exits with its result: 0 done, 1 failed (with the job's
error, which names HOST; nothing half-received is kept there, so running
the send again is safe), 130 canceled. Ctrl-C cancels the job.
With --json: {"job_id", "job_path", "result", "host", "snapshot",
"summary", "bytes_done"}.`

const replicateHelp = `butterd takes a fresh read-only snapshot of volume VOL, then sends it to
the butterd on HOST exactly as 'butterctl send HOST SNAP' does, in one job
of kind "replicate" (what a replicate:HOST schedule runs). HOST is a
peer's name or HOST[:PORT]; --compress and --bwlimit are those of send.

The job's target becomes the new snapshot once taken; its summary names
the snapshot and says what was sent, and is printed at the end. When the
send fails, the snapshot stays here and the job's error names both; the
next replicate sends a newer snapshot, incrementally when HOST holds an
older one. butterctl waits for the job and exits with its result: 0 done,
1 failed, 130 canceled. Ctrl-C cancels the job.
With --json: {"job_id", "job_path", "result", "host", "volume",
"snapshot", "summary", "bytes_done"}.`

// sendCmd is send HOST SNAP, or with replicate set, replicate HOST VOL.
type sendCmd struct {
	*app
	replicate bool
	compress  bool
	bwlimit   string
	quiet     bool
}

func (c *sendCmd) Flags(fs *flag.FlagSet) {
	fs.BoolVar(&c.compress, "compress", false, "compress the stream with zstd on the wire")
	fs.StringVar(&c.bwlimit, "bwlimit", "", "send at most `RATE` bytes per second (10M, 512K; 0: no limit)")
	fs.BoolVar(&c.quiet, "q", false, "print no progress and no summary on stderr (the job id and errors still)")
	fs.BoolVar(&c.quiet, "quiet", false, "same as -q")
}

func (c *sendCmd) Run(ctx context.Context, args []string) error {
	kind, what := "send", "SNAP"
	if c.replicate {
		kind, what = "replicate", "VOL"
	}
	if err := wantArgs(args, []string{"HOST", what}); err != nil {
		return err
	}
	host, name := args[0], args[1]
	var rate uint64
	if c.bwlimit != "" {
		var err error
		if rate, err = parseRate(c.bwlimit); err != nil {
			return err
		}
	}
	m, err := c.bus()
	if err != nil {
		return err
	}
	var id uint32
	var path dbus.ObjectPath
	if c.replicate {
		id, path, err = m.ReplicateVolume(name, host, rate, c.compress)
	} else {
		id, path, err = m.SendSnapshot(host, name, rate, c.compress)
	}
	if err != nil {
		return err
	}
	j, err := c.followJob(ctx, m, kind, id, c.quiet)
	if err != nil {
		return err
	}
	if !c.json {
		return c.println(j.Summary)
	}
	out := struct {
		JobID     uint32          `json:"job_id"`
		JobPath   dbus.ObjectPath `json:"job_path"`
		Result    string          `json:"result"`
		Host      string          `json:"host"`
		Volume    string          `json:"volume,omitempty"`
		Snapshot  string          `json:"snapshot"`
		Summary   string          `json:"summary"`
		BytesDone uint64          `json:"bytes_done"`
	}{id, path, j.Result, host, "", name, j.Summary, j.BytesDone}
	if c.replicate {
		out.Volume, out.Snapshot = name, j.Target
	}
	return c.printJSON(out)
}

// rateSyntax is a rate: a number, an optional unit K, M, G or T, then
// optionally B or iB (iB only after a unit) and /s.
var rateSyntax = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?)(?:([kKmMgGtT])(i?B)?|B)?(/s)?$`)

// parseRate reads a rate in bytes per second (units are powers of 1024).
func parseRate(s string) (uint64, error) {
	m := rateSyntax.FindStringSubmatch(s)
	f := 0.0
	if m != nil {
		f, _ = strconv.ParseFloat(m[1], 64)
		if m[2] != "" {
			f *= float64(uint64(1) << (10 * (strings.IndexByte("KMGT", m[2][0]&^0x20) + 1)))
		}
	}
	if m == nil || f >= 1<<62 {
		return 0, usagef("--bwlimit %q: give bytes per second, as 10M, 512KiB/s or 1048576 (units K, M, G, T are powers of 1024; 0: no limit)", s)
	}
	if f > 0 && f < 1 {
		return 1, nil
	}
	return uint64(f), nil
}
