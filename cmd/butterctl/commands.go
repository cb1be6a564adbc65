package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
)

// verb is one subcommand: a small struct holding its flags.
type verb interface {
	Flags(fs *flag.FlagSet)
	Run(ctx context.Context, args []string) error
}

// command describes a verb for dispatch and help.
type command struct {
	name    string   // the words after butterctl: "snapshot", "volume rm"
	aliases []string // other last words: "list" for "volume ls"
	args    string   // the synopsis after the name
	short   string   // one line
	long    string   // more, for --help (optional)
	new     func(a *app) verb
}

func (c *command) synopsis() string {
	if c.args == "" {
		return c.name
	}
	return c.name + " " + c.args
}

// groups are verbs that take a subcommand.
var groups = map[string]string{
	"volume": "manage volumes",
	"remote": "manage replication peers",
}

func isGroup(word string) bool { _, ok := groups[word]; return ok }

// commandTable lists every verb, in the order help shows them.
func commandTable() []*command {
	return []*command{
		{name: "snapshot", args: "VOL", short: "take a read-only snapshot of VOL (--group, --project: of several) and print its name",
			long: snapshotHelp,
			new:  func(a *app) verb { return &snapshotCmd{app: a} }},
		{name: "groups", args: "[list|rm NAME]", short: "list the groups of volumes snapshotted together, or forget one",
			long: groupsHelp,
			new:  func(a *app) verb { return &groupsCmd{app: a} }},
		{name: "snapshots", args: "[-l] [VOL]", short: "list snapshots (all, or of VOL), one name per line",
			long: `With -l, a table: NAME, TIME and PEERS, the replication peers that hold
each snapshot by butterd's records (updated at each send; "(from)" marks
the peer a snapshot was received from). With --json -l each snapshot has
"peers": [{"peer", "received", "newest", "time"}], "newest" marking the
newest snapshot shared with that peer, which purge keeps.`,
			new: func(a *app) verb { return &snapshotsCmd{app: a} }},
		{name: "restore", args: "[--force] SNAP|VOL [TARGET]", short: "restore a snapshot (VOL: its latest) and print the safety snapshot's name",
			long: `SNAP is a snapshot name (VOL@TIMESTAMP); a volume name VOL means its
latest snapshot that is not a safety snapshot. When TARGET exists, butterd
first snapshots it (the safety snapshot, whose name is printed) and then
swaps the restored copy in atomically; nothing is printed when TARGET is
new. A volume in use by containers is refused unless --force is given.

--group NAME [TIMESTAMP] and --project NAME [TIMESTAMP] restore every
volume of a group or compose project to its snapshot of TIMESTAMP (by
default the newest one all have), all or none, and print the safety
snapshots.`,
			new: func(a *app) verb { return &restoreCmd{app: a} }},
		{name: "clone", args: "VOL NEW", short: "make volume NEW a writable copy of volume VOL and print NEW",
			new: func(a *app) verb { return &cloneCmd{app: a} }},
		{name: "rm", args: "SNAP", short: "remove snapshot SNAP (VOL@TIMESTAMP)",
			new: func(a *app) verb { return &rmCmd{app: a} }},
		{name: "purge", args: "[--dry-run [--at TIME]] PATTERN VOL", short: "delete snapshots of VOL by retention PATTERN (--dry-run: show the plan)",
			long: purgeHelp,
			new:  func(a *app) verb { return &purgeCmd{app: a} }},
		{name: "pin", args: "SNAP", short: "keep snapshot SNAP from being purged",
			long: `A pinned snapshot is kept by every purge, by hand or scheduled, until
'butterctl unpin SNAP'. Removing it by name ('butterctl rm') still works.`,
			new: func(a *app) verb { return &pinCmd{app: a, on: true} }},
		{name: "unpin", args: "SNAP", short: "let purges delete snapshot SNAP again",
			new: func(a *app) verb { return &pinCmd{app: a} }},
		{name: "schedule", args: "[--every SPAN|--on-calendar EXPR] ACTION [TIMER] VOL", short: "create, replace, remove, pause or resume a scheduled ACTION on VOL",
			long: scheduleHelp,
			new:  func(a *app) verb { return &scheduleCmd{app: a} }},
		{name: "schedule import", args: "FILE", short: "create the schedules of a buttervolume schedule.csv, reporting each row",
			long: importHelp,
			new:  func(a *app) verb { return &scheduleImportCmd{app: a} }},
		{name: "scheduled", args: "[-l] [list|pause|resume]", short: "list the schedules, or pause or resume them all",
			long: scheduledHelp,
			new:  func(a *app) verb { return &scheduledCmd{app: a} }},
		{name: "export", args: "[--parent SNAP] [--compress] SNAP -o FILE|-", short: "write the send stream of snapshot SNAP (zstd-compressed with --compress) into FILE (- for stdout) and wait for the job",
			long: exportHelp,
			new:  func(a *app) verb { return &exportCmd{app: a} }},
		{name: "import", args: "FILE|-", short: "make the snapshot held in a send stream (plain or zstd) read from FILE (- for stdin) and print its name",
			long: streamImportHelp,
			new:  func(a *app) verb { return &importCmd{app: a} }},
		{name: "sync", args: "[--force] VOL HOST [HOST...]", short: "pull into VOL the newer files of each HOST's volume VOL and wait for the job",
			long: syncHelp,
			new:  func(a *app) verb { return &syncCmd{app: a} }},
		{name: "send", args: "[--compress] [--bwlimit RATE] HOST SNAP", short: "send snapshot SNAP to the butterd on HOST, incrementally when both hold an older one, and print what was sent",
			long: sendHelp,
			new:  func(a *app) verb { return &sendCmd{app: a} }},
		{name: "replicate", args: "[--compress] [--bwlimit RATE] HOST VOL", short: "snapshot VOL, send the new snapshot to the butterd on HOST, and print what was sent",
			long: replicateHelp,
			new:  func(a *app) verb { return &sendCmd{app: a, replicate: true} }},
		{name: "jobs", args: "[ID]", short: "list jobs, running and finished (with ID: show that job)",
			long: jobsHelp,
			new:  func(a *app) verb { return &jobsCmd{app: a} }},
		{name: "job", args: "ID", short: "show the properties of job ID",
			long: jobsHelp,
			new:  func(a *app) verb { return &jobsCmd{app: a, one: true} }},
		{name: "cancel", args: "ID", short: "cancel job ID, queued or running",
			long: `A job that already finished cannot be canceled: cancel fails (exit 1) and
says so. A verb that waits for its job (export, purge) is canceled with Ctrl-C.`,
			new: func(a *app) verb { return &cancelCmd{app: a} }},
		{name: "remote add", args: "PEER --key LINE [--address HOST[:PORT]] [--push] [--pull] [--volume V]...", short: "add replication peer PEER, known by its client key, with its rights here",
			long: remoteAddHelp,
			new:  func(a *app) verb { return &remoteAddCmd{app: a} }},
		{name: "remote ls", aliases: []string{"list"}, short: "list the replication peers, their addresses and rights",
			long: remoteLsHelp,
			new:  func(a *app) verb { return &remoteLsCmd{app: a} }},
		{name: "remote rm", aliases: []string{"remove"}, args: "PEER", short: "remove replication peer PEER",
			long: remoteRmHelp,
			new:  func(a *app) verb { return &remoteRmCmd{app: a} }},
		{name: "remote trust", args: "[--replace] HOST FINGERPRINT", short: "trust HOST's host key if its fingerprint is FINGERPRINT, and print it",
			long: remoteTrustHelp,
			new:  func(a *app) verb { return &remoteTrustCmd{app: a} }},
		{name: "remote key", short: "print this host's client key and host key fingerprint, for its peers",
			long: remoteKeyHelp,
			new:  func(a *app) verb { return &remoteKeyCmd{app: a} }},
		{name: "volume create", args: "[-o KEY=VALUE]... NAME", short: "create volume NAME and print NAME",
			long: `Options are those of docker volume create -d btrfs -o, such as
copyonwrite=false, finalsnapshot=false or from=SNAP|VOL; butterd refuses
unknown ones and lists the allowed ones. Creating an existing volume
succeeds.`,
			new: func(a *app) verb { return &volumeCreateCmd{app: a} }},
		{name: "volume rm", aliases: []string{"remove"}, args: "[--no-final-snapshot] NAME", short: "remove volume NAME and print the name of its final snapshot",
			long: `Unless --no-final-snapshot is given (or the volume was created with
-o finalsnapshot=false), butterd first takes a final snapshot
NAME@TIMESTAMP, so that 'butterctl restore NAME@TIMESTAMP' undoes the
removal. A mounted volume is refused. The volume's schedules are removed
with it (its snapshots stay), each named on stderr: "schedule removed
with the volume: TIMER".`,
			new: func(a *app) verb { return &volumeRmCmd{app: a} }},
		{name: "volume ls", aliases: []string{"list"}, args: "[-q]", short: "list volumes: name, mounts, creation time, mount point",
			new: func(a *app) verb { return &volumeLsCmd{app: a} }},
		{name: "volume inspect", args: "NAME", short: "show the properties of volume NAME",
			long: `Size is what the volume references, data shared with its snapshots
included; ExclusiveSize is what only it holds (about what removing it
frees). BTRFS counts both only while quotas are on, which is the
operator's choice ('btrfs quota enable DATA_ROOT'); otherwise they show as
unknown, and as null with --json.`,
			new: func(a *app) verb { return &volumeInspectCmd{app: a} }},
		{name: "volume unmount", args: "--forget NAME", short: "drop stale mount references of volume NAME and print how many",
			long: forgetHelp,
			new:  func(a *app) verb { return &volumeUnmountCmd{app: a} }},
	}
}

// findCommand resolves the first words of args to a command.
func findCommand(args []string) (*command, []string, error) {
	word, rest := args[0], args[1:]
	if isGroup(word) {
		if len(rest) == 0 {
			return nil, nil, usagef("%s needs a subcommand: %s (see 'butterctl help %s')", word, strings.Join(groupVerbs(word), ", "), word)
		}
		sub := rest[0]
		for _, c := range commandTable() {
			g, last, ok := strings.Cut(c.name, " ")
			if ok && g == word && (last == sub || slices.Contains(c.aliases, sub)) {
				return c, rest[1:], nil
			}
		}
		return nil, nil, usagef("unknown subcommand %q of %s: use %s (see 'butterctl help %s')", sub, word, strings.Join(groupVerbs(word), ", "), word)
	}
	// A verb of two words, such as "schedule import", before the verb of
	// its first word.
	if len(rest) > 0 {
		for _, c := range commandTable() {
			if c.name == word+" "+rest[0] {
				return c, rest[1:], nil
			}
		}
	}
	for _, c := range commandTable() {
		if c.name == word {
			return c, rest, nil
		}
	}
	return nil, nil, usagef("unknown verb %q: run 'butterctl help' for the list", word)
}

func groupVerbs(group string) []string {
	var out []string
	for _, c := range commandTable() {
		if g, last, ok := strings.Cut(c.name, " "); ok && g == group {
			out = append(out, last)
		}
	}
	return out
}

func mainUsage() string {
	var b strings.Builder
	b.WriteString(`usage: butterctl [--json] VERB [ARGS]

butterctl manages butterd's volumes and snapshots over the system D-Bus
(DBUS_SYSTEM_BUS_ADDRESS when set). Reading works for every user; changes
need root or membership in group "butterd".

Verbs:
`)
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	for _, c := range commandTable() {
		fmt.Fprintf(tw, "  %s\t%s\n", c.synopsis(), c.short)
	}
	fmt.Fprintf(tw, "  %s\t%s\n", "help [VERB]", "show this list, or a verb's usage")
	tw.Flush()
	b.WriteString(`
Global flags (before or after the verb):
  --json      print JSON instead of text
  -h, --help  show help (after a verb: that verb's usage)

`)
	b.WriteString(exitCodesHelp)
	return b.String()
}

func groupUsage(group string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "usage: butterctl %s SUBCOMMAND [ARGS]\n\n%s.\n\nSubcommands:\n", group, capitalize(groups[group]))
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	for _, c := range commandTable() {
		if strings.HasPrefix(c.name, group+" ") {
			fmt.Fprintf(tw, "  %s\t%s\n", c.synopsis(), c.short)
		}
	}
	tw.Flush()
	fmt.Fprintf(&b, "\nRun 'butterctl help %s SUBCOMMAND' for one's flags.\n", group)
	return b.String()
}

// verbHelp is the text of `butterctl VERB --help`.
func verbHelp(c *command, fs *flag.FlagSet) string {
	var b strings.Builder
	fmt.Fprintf(&b, "usage: butterctl %s\n\n%s.\n", c.synopsis(), capitalize(c.short))
	if c.long != "" {
		fmt.Fprintf(&b, "\n%s\n", c.long)
	}
	if len(c.aliases) > 0 {
		g, _, _ := strings.Cut(c.name, " ")
		fmt.Fprintf(&b, "\nAlso: butterctl %s %s.\n", g, strings.Join(c.aliases, ", "))
	}
	b.WriteString("\nFlags:\n")
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		dash := "--"
		if len(f.Name) == 1 {
			dash = "-"
		}
		if name != "" {
			name = " " + name
		}
		fmt.Fprintf(tw, "  %s%s%s\t%s\n", dash, f.Name, name, usage)
	})
	fmt.Fprintf(tw, "  --json\tprint JSON instead of text\n")
	fmt.Fprintf(tw, "  -h, --help\tshow this help\n")
	tw.Flush()
	return b.String()
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func newFlagSet(c *command, v verb) *flag.FlagSet {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	v.Flags(fs)
	return fs
}

var errHelp = flag.ErrHelp

func isHelpFlag(arg string) bool {
	switch arg {
	case "-h", "-help", "--help", "--h":
		return true
	}
	return false
}

// parseInterspersed parses flags wherever they stand among the arguments,
// up to a "--", and returns the arguments.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, errHelp
			}
			return nil, errors.New(flagMessage(err))
		}
		rest := fs.Args()
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// flagMessage rewords the flag package's errors.
func flagMessage(err error) string {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: "); ok {
		return "unknown flag " + name
	}
	return msg
}

// wantArgs checks the argument count against the names of the required
// and optional arguments; no argument may be empty.
func wantArgs(args []string, required []string, optional ...string) error {
	if len(args) < len(required) {
		return usagef("missing %s", strings.Join(required[len(args):], " "))
	}
	if len(args) > len(required)+len(optional) {
		return usagef("unexpected argument %q", args[len(required)+len(optional)])
	}
	names := append(required[:len(required):len(required)], optional...)
	for i, a := range args {
		if a == "" {
			return usagef("%s is empty", names[i])
		}
	}
	return nil
}
