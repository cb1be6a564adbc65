package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
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
	// args are the operands, with the flags a verb requires: "SNAP -o
	// FILE|-". The synopsis puts the optional flags, from the verb's flag
	// set, before them.
	args     string
	short    string   // one line
	long     string   // more, for --help (optional)
	examples []string // command lines, each may end in "  # what it does"
	// buttervolume marks buttervolume's verbs: no such volume or snapshot
	// exits 1 there, as buttervolume did.
	buttervolume bool
	new          func(a *app) verb
}

// synopsis is the verb's full usage: its name, its optional flags and its
// arguments.
func (c *command) synopsis() string {
	return strings.Join(c.synopsisParts(), " ")
}

// shortSynopsis is the name and the arguments, for the verb list.
func (c *command) shortSynopsis() string {
	if c.args == "" {
		return c.name
	}
	return c.name + " " + c.args
}

// synopsisParts are the words of the synopsis that stay together: the
// name, each optional flag ("[--at TIME]", "[-o KEY=VALUE]..."; a flag of
// the same value as one before, such as --quiet after -q, is left out),
// and the arguments.
func (c *command) synopsisParts() []string {
	required := map[string]bool{}
	for _, w := range strings.Fields(c.args) {
		if w = strings.Trim(w, "[]."); strings.HasPrefix(w, "-") {
			required[strings.TrimLeft(w, "-")] = true
		}
	}
	parts := []string{c.name}
	seen := map[[2]any]bool{}
	newFlagSet(c, c.new(nil)).VisitAll(func(f *flag.Flag) {
		if id, ok := valueID(f.Value); ok {
			if seen[id] {
				return
			}
			seen[id] = true
		}
		if required[f.Name] {
			return
		}
		name, _ := flag.UnquoteUsage(f)
		item := "[" + dashes(f.Name) + f.Name
		if name != "" {
			item += " " + name
		}
		item += "]"
		if _, ok := f.Value.(repeatable); ok {
			item += "..."
		}
		parts = append(parts, item)
	})
	if c.args != "" {
		parts = append(parts, c.args)
	}
	return parts
}

// valueID names the variable behind a flag, so that two names of one
// flag (-q and --quiet) show once.
func valueID(v flag.Value) ([2]any, bool) {
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Slice:
		return [2]any{rv.Type(), rv.Pointer()}, true
	}
	return [2]any{}, false
}

// repeatable is a flag that may be given more than once.
type repeatable interface{ repeatable() }

// dashes is "-" before a one-letter flag, "--" before the others.
func dashes(name string) string {
	if len(name) == 1 {
		return "-"
	}
	return "--"
}

// groups are verbs that take a subcommand.
var groups = map[string]string{
	"volume": "manage volumes",
	"remote": "manage replication peers",
}

func isGroup(word string) bool { _, ok := groups[word]; return ok }

// commandTable lists every verb, in the order help shows them.
func commandTable() []*command {
	const snap = "pgdata@2026-11-22T20:57:08.947340"
	return []*command{
		{name: "snapshot", args: "VOL", short: "take a read-only snapshot of VOL (--group, --project: of several) and print its name",
			long: snapshotHelp, buttervolume: true,
			examples: []string{
				"butterctl snapshot pgdata",
				"butterctl snapshot --group shop shop_db shop_static   # set group shop, snapshot it",
				"butterctl snapshot --project shop                     # the volumes of compose project shop",
			},
			new: func(a *app) verb { return &snapshotCmd{app: a} }},
		{name: "groups", args: "[list|rm NAME]", short: "list the groups of volumes snapshotted together, or forget one",
			long:     groupsHelp,
			examples: []string{"butterctl groups", "butterctl groups rm shop"},
			new:      func(a *app) verb { return &groupsCmd{app: a} }},
		{name: "snapshots", args: "[VOL]", short: "list snapshots (all, or of VOL), one name per line",
			long: `VOL need not exist any more: the snapshots of a removed volume, or those
received from another host, are listed all the same. A VOL that is
neither a volume nor has any snapshot is an error (exit 1), so that a
mistyped name does not pass for a volume without snapshots.

With -l, a table: NAME, TIME and PEERS, the replication peers that hold
each snapshot by butterd's records (updated at each send; "(from)" marks
the peer a snapshot was received from). With --json -l each snapshot has
"peers": [{"peer", "received", "newest", "time"}], "newest" marking the
newest snapshot shared with that peer, which purge keeps.`,
			buttervolume: true,
			examples:     []string{"butterctl snapshots", "butterctl snapshots pgdata", "butterctl snapshots -l pgdata   # and the peers holding each"},
			new:          func(a *app) verb { return &snapshotsCmd{app: a} }},
		{name: "restore", args: "SNAP|VOL [TARGET]", short: "restore a snapshot (VOL: its latest) and print the safety snapshot's name",
			long: `SNAP is a snapshot name (VOL@TIMESTAMP); a volume name VOL means its
latest snapshot that is not a safety snapshot. When TARGET exists, butterd
first snapshots it (the safety snapshot, whose name is printed) and then
swaps the restored copy in atomically; nothing is printed when TARGET is
new. A volume in use by containers is refused unless --force is given.
With --force, stop the containers that use the volume and start them
again: a running container keeps the replaced tree open, and what it
writes there afterwards is lost with it.

--group NAME [TIMESTAMP] and --project NAME [TIMESTAMP] restore every
volume of a group or compose project to its snapshot of TIMESTAMP (by
default the newest one all have), all or none, and print the safety
snapshots.`,
			buttervolume: true,
			examples: []string{
				"butterctl restore pgdata                  # its latest snapshot",
				"butterctl restore " + snap + " pgcopy",
				"butterctl restore --group shop            # the newest snapshot of the whole group",
			},
			new: func(a *app) verb { return &restoreCmd{app: a} }},
		{name: "clone", args: "VOL NEW", short: "make volume NEW a writable copy of volume VOL and print NEW",
			buttervolume: true,
			examples:     []string{"butterctl clone pgdata pgtest"},
			new:          func(a *app) verb { return &cloneCmd{app: a} }},
		{name: "rm", args: "SNAP", short: "remove snapshot SNAP (VOL@TIMESTAMP)",
			buttervolume: true,
			examples:     []string{"butterctl rm " + snap},
			new:          func(a *app) verb { return &rmCmd{app: a} }},
		{name: "purge", args: "PATTERN VOL", short: "delete snapshots of VOL by retention PATTERN (--dry-run: show the plan)",
			long: purgeHelp, buttervolume: true,
			examples: []string{
				"butterctl purge --dry-run 1h:1d:4w:1y pgdata   # what would go, and why",
				"butterctl purge -v 1h:1d:4w:1y pgdata          # and print what went",
			},
			new: func(a *app) verb { return &purgeCmd{app: a} }},
		{name: "pin", args: "SNAP", short: "keep snapshot SNAP from being purged",
			long: `A pinned snapshot is kept by every purge, by hand or scheduled, until
'butterctl unpin SNAP'. Removing it by name ('butterctl rm') still works.`,
			examples: []string{"butterctl pin " + snap},
			new:      func(a *app) verb { return &pinCmd{app: a, on: true} }},
		{name: "unpin", args: "SNAP", short: "let purges delete snapshot SNAP again",
			examples: []string{"butterctl unpin " + snap},
			new:      func(a *app) verb { return &pinCmd{app: a} }},
		{name: "schedule", args: "ACTION [TIMER] VOL", short: "create, replace, remove, pause or resume a scheduled ACTION on VOL",
			long: scheduleHelp, buttervolume: true,
			examples: []string{
				"butterctl schedule snapshot 60 pgdata          # every hour",
				"butterctl schedule --every 15min snapshot pgdata",
				"butterctl schedule --on-calendar daily purge:1d:4w:1y pgdata",
				"butterctl schedule --every 6h replicate:hostb pgdata",
				"butterctl schedule snapshot pause pgdata",
				"butterctl schedule snapshot delete pgdata",
			},
			new: func(a *app) verb { return &scheduleCmd{app: a} }},
		{name: "schedule import", args: "FILE", short: "create the schedules of a buttervolume schedule.csv, reporting each row",
			long:     importHelp,
			examples: []string{"butterctl schedule import schedule.csv"},
			new:      func(a *app) verb { return &scheduleImportCmd{app: a} }},
		{name: "scheduled", args: "[list|pause|resume]", short: "list the schedules, or pause or resume them all",
			long: scheduledHelp, buttervolume: true,
			examples: []string{
				"butterctl scheduled            # snapshot 60 pgdata",
				"butterctl scheduled -l         # with state, last and next run",
				"butterctl scheduled pause",
			},
			new: func(a *app) verb { return &scheduledCmd{app: a} }},
		{name: "export", args: "SNAP -o FILE|-", short: "write the send stream of snapshot SNAP (zstd-compressed with --compress) into FILE (- for stdout) and wait for the job",
			long: exportHelp,
			examples: []string{
				"butterctl export " + snap + " -o full.stream",
				"butterctl export --compress --parent OLD NEW -o delta.stream.zst",
				"butterctl export -q " + snap + " - | ssh hostb butterctl import -",
			},
			new: func(a *app) verb { return &exportCmd{app: a} }},
		{name: "import", args: "FILE|-", short: "make the snapshot held in a send stream (plain or zstd) read from FILE (- for stdin) and print its name",
			long:     streamImportHelp,
			examples: []string{"butterctl import full.stream.zst", "ssh hosta butterctl export -q " + snap + " - | butterctl import -"},
			new:      func(a *app) verb { return &importCmd{app: a} }},
		{name: "sync", args: "VOL HOST [HOST...]", short: "pull into VOL the newer files of each HOST's volume VOL and wait for the job",
			long: syncHelp, buttervolume: true,
			examples: []string{"butterctl sync pgdata hostb hostc", "butterctl sync --force -q pgdata hostb"},
			new:      func(a *app) verb { return &syncCmd{app: a} }},
		{name: "send", args: "HOST SNAP", short: "send snapshot SNAP to the butterd on HOST, incrementally when both hold an older one, and print what was sent",
			long: sendHelp, buttervolume: true,
			examples: []string{"butterctl send hostb " + snap, "butterctl send --compress --bwlimit 10M 10.0.0.2:1122 " + snap},
			new:      func(a *app) verb { return &sendCmd{app: a} }},
		{name: "replicate", args: "HOST VOL", short: "snapshot VOL, send the new snapshot to the butterd on HOST, and print what was sent",
			long:     replicateHelp,
			examples: []string{"butterctl replicate hostb pgdata", "butterctl replicate -q --compress hostb pgdata"},
			new:      func(a *app) verb { return &sendCmd{app: a, replicate: true} }},
		{name: "jobs", args: "[ID]", short: "list jobs, running and finished (with ID: show that job)",
			long:     jobsHelp,
			examples: []string{"butterctl jobs", "butterctl --json jobs"},
			new:      func(a *app) verb { return &jobsCmd{app: a} }},
		{name: "job", args: "ID", short: "show the properties of job ID",
			long:     jobHelp,
			examples: []string{"butterctl job 7", "butterctl --json job 7"},
			new:      func(a *app) verb { return &jobsCmd{app: a, one: true} }},
		{name: "cancel", args: "ID", short: "cancel job ID, queued or running",
			long: `A job that already finished cannot be canceled: cancel fails (exit 1) and
says so. A verb that waits for its job is canceled with Ctrl-C; those are
  ` + jobVerbs + `.`,
			examples: []string{"butterctl cancel 7"},
			new:      func(a *app) verb { return &cancelCmd{app: a} }},
		{name: "remote add", args: "PEER --key LINE", short: "add replication peer PEER, known by its client key, with its rights here",
			long: remoteAddHelp,
			examples: []string{
				"butterctl remote add hosta --key 'ssh-ed25519 AAAA... butterd@hosta' --push",
				"butterctl remote add hostb --address 10.0.0.2:1122 --key \"$KEY\" --pull --volume pgdata",
			},
			new: func(a *app) verb { return &remoteAddCmd{app: a} }},
		{name: "remote ls", aliases: []string{"list"}, short: "list the replication peers, their addresses and rights",
			long:     remoteLsHelp,
			examples: []string{"butterctl remote ls"},
			new:      func(a *app) verb { return &remoteLsCmd{app: a} }},
		{name: "remote rm", aliases: []string{"remove"}, args: "PEER", short: "remove replication peer PEER",
			long:     remoteRmHelp,
			examples: []string{"butterctl remote rm hostb"},
			new:      func(a *app) verb { return &remoteRmCmd{app: a} }},
		{name: "remote trust", args: "HOST FINGERPRINT", short: "trust HOST's host key if its fingerprint is FINGERPRINT, and print it",
			long:     remoteTrustHelp,
			examples: []string{"butterctl remote trust hostb SHA256:...   # the fingerprint hostb's 'remote key' printed"},
			new:      func(a *app) verb { return &remoteTrustCmd{app: a} }},
		{name: "remote key", short: "print this host's client key and host key fingerprint, for its peers",
			long:     remoteKeyHelp,
			examples: []string{"butterctl remote key"},
			new:      func(a *app) verb { return &remoteKeyCmd{app: a} }},
		{name: "volume create", args: "NAME", short: "create volume NAME and print NAME",
			long: `Options are those of docker volume create -d btrfs -o, such as
copyonwrite=false, finalsnapshot=false or from=SNAP|VOL; butterd refuses
unknown ones and lists the allowed ones. Creating an existing volume
succeeds.`,
			examples: []string{
				"butterctl volume create pgdata",
				"butterctl volume create -o copyonwrite=false -o snapshot=1h pgdata",
				"butterctl volume create -o from=" + snap + " pgold",
			},
			new: func(a *app) verb { return &volumeCreateCmd{app: a} }},
		{name: "volume rm", aliases: []string{"remove"}, args: "NAME", short: "remove volume NAME and print the name of its final snapshot",
			long: `Unless --no-final-snapshot is given (or the volume was created with
-o finalsnapshot=false), butterd first takes a final snapshot
NAME@TIMESTAMP, so that 'butterctl restore NAME@TIMESTAMP' undoes the
removal. A mounted volume is refused. The volume's schedules are removed
with it (its snapshots stay), each named on stderr: "schedule removed
with the volume: TIMER".`,
			examples: []string{"butterctl volume rm pgtest", "butterctl volume rm --no-final-snapshot pgtest"},
			new:      func(a *app) verb { return &volumeRmCmd{app: a} }},
		{name: "volume ls", aliases: []string{"list"}, short: "list volumes: name, mounts, creation time, mount point",
			examples: []string{"butterctl volume ls", "butterctl volume ls -q"},
			new:      func(a *app) verb { return &volumeLsCmd{app: a} }},
		{name: "volume inspect", args: "NAME", short: "show the properties of volume NAME",
			long: `Size is what the volume references, data shared with its snapshots
included; ExclusiveSize is what only it holds (about what removing it
frees). BTRFS counts both only while quotas are on, which is the
operator's choice ('btrfs quota enable DATA_ROOT'); otherwise they show as
unknown, and as null with --json.`,
			examples: []string{"butterctl volume inspect pgdata", "butterctl --json volume inspect pgdata"},
			new:      func(a *app) verb { return &volumeInspectCmd{app: a} }},
		{name: "volume unmount", args: "--forget NAME", short: "drop stale mount references of volume NAME and print how many",
			long:     forgetHelp,
			examples: []string{"butterctl volume unmount --forget pgdata"},
			new:      func(a *app) verb { return &volumeUnmountCmd{app: a} }},
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

// helpWidth is the width help text keeps within.
const helpWidth = 80

func mainUsage() string {
	var b strings.Builder
	b.WriteString(`usage: butterctl [--json] VERB [ARGS]

butterctl manages butterd's volumes and snapshots over the system D-Bus
(DBUS_SYSTEM_BUS_ADDRESS when set). Reading works for every user; changes
need root or membership in group "butterd".

Verbs:
`)
	var rows [][2]string
	for _, c := range commandTable() {
		rows = append(rows, [2]string{c.shortSynopsis(), c.short})
	}
	rows = append(rows, [2]string{"help [VERB]", "show this list, or a verb's usage"})
	writeList(&b, rows)
	b.WriteString(`
'butterctl VERB --help' shows a verb's flags and examples.

Global flags (before or after the verb):
  --json      print JSON instead of text
  -h, --help  show help (after a verb: that verb's usage)

`)
	b.WriteString(exitCodesHelp())
	return b.String()
}

// writeList writes two columns, the second wrapped within helpWidth.
func writeList(b *strings.Builder, rows [][2]string) {
	w := 0
	for _, r := range rows {
		w = max(w, len(r[0]))
	}
	indent := 2 + w + 2
	for _, r := range rows {
		for i, line := range wrap(strings.Fields(r[1]), helpWidth-indent) {
			if i == 0 {
				fmt.Fprintf(b, "  %-*s  %s\n", w, r[0], line)
			} else {
				fmt.Fprintf(b, "%*s%s\n", indent, "", line)
			}
		}
	}
}

// wrap joins words into lines of at most width columns (a longer word
// stands alone).
func wrap(words []string, width int) []string {
	var lines []string
	line := ""
	for _, w := range words {
		switch {
		case line == "":
			line = w
		case len(line)+1+len(w) <= width:
			line += " " + w
		default:
			lines = append(lines, line)
			line = w
		}
	}
	return append(lines, line)
}

func groupUsage(group string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "usage: butterctl %s SUBCOMMAND [ARGS]\n\n%s.\n\nSubcommands:\n", group, capitalize(groups[group]))
	var rows [][2]string
	for _, c := range commandTable() {
		if strings.HasPrefix(c.name, group+" ") {
			rows = append(rows, [2]string{c.shortSynopsis(), c.short})
		}
	}
	writeList(&b, rows)
	fmt.Fprintf(&b, "\nRun 'butterctl help %s SUBCOMMAND' for one's flags and examples.\n", group)
	return b.String()
}

// verbHelp is the text of `butterctl VERB --help`.
func verbHelp(c *command, fs *flag.FlagSet) string {
	var b strings.Builder
	const lead = "usage: butterctl "
	parts := c.synopsisParts()
	indent := len(lead) + len(c.name) + 1
	b.WriteString(lead + parts[0])
	col := len(lead) + len(parts[0])
	for _, p := range parts[1:] {
		if col+1+len(p) > helpWidth && col > indent {
			fmt.Fprintf(&b, "\n%*s%s", indent, "", p)
			col = indent + len(p)
			continue
		}
		b.WriteString(" " + p)
		col += 1 + len(p)
	}
	fmt.Fprintf(&b, "\n\n%s\n", strings.Join(wrap(strings.Fields(capitalize(c.short)+"."), helpWidth), "\n"))
	if c.long != "" {
		fmt.Fprintf(&b, "\n%s\n", c.long)
	}
	if len(c.aliases) > 0 {
		g, _, _ := strings.Cut(c.name, " ")
		fmt.Fprintf(&b, "\nAlso: butterctl %s %s.\n", g, strings.Join(c.aliases, ", "))
	}
	b.WriteString("\nFlags:\n")
	var rows [][2]string
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		if name != "" {
			name = " " + name
		}
		rows = append(rows, [2]string{dashes(f.Name) + f.Name + name, usage})
	})
	rows = append(rows, [2]string{"--json", "print JSON instead of text"}, [2]string{"-h, --help", "show this help"})
	writeRows(&b, rows)
	if len(c.examples) > 0 {
		b.WriteString("\nExamples:\n")
		for _, e := range c.examples {
			fmt.Fprintf(&b, "  %s\n", e)
		}
	}
	return b.String()
}

// writeRows writes two-column rows indented by two, the second column
// wrapped within helpWidth under itself.
func writeRows(b *strings.Builder, rows [][2]string) {
	col := 0
	for _, r := range rows {
		col = max(col, len(r[0]))
	}
	col += 4 // the indent and the gap
	for _, r := range rows {
		for i, line := range wrap(strings.Fields(r[1]), max(helpWidth-col, 20)) {
			first := ""
			if i == 0 {
				first = r[0]
			}
			fmt.Fprintf(b, "  %-*s%s\n", col-2, first, line)
		}
	}
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
