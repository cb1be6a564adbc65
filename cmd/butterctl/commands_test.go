package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"slices"
	"strings"
	"testing"

	"butterd/dbusapi"
)

// Each verb's command line turns into the right call and prints what
// buttervolume printed.
func TestVerbs(t *testing.T) {
	const snap = "v1@2026-11-22T20:57:08.947340"
	for _, tc := range []struct {
		args   []string
		setup  func(*fake)
		calls  []string
		stdout string
		stderr string
	}{
		{args: []string{"snapshot", "v1"}, setup: func(f *fake) { f.snapName = snap },
			calls: []string{`CreateSnapshot("v1")`}, stdout: snap + "\n"},
		{args: []string{"snapshots"}, setup: func(f *fake) {
			f.snapshots = []dbusapi.SnapshotRow{{Name: snap}, {Name: "v2@2026-11-22T20:57:09.000001"}}
		}, calls: []string{`ListSnapshots("")`}, stdout: snap + "\nv2@2026-11-22T20:57:09.000001\n"},
		// A volume without snapshots: nothing.
		{args: []string{"snapshots", "v1"}, calls: []string{`ListSnapshots("v1")`, `GetVolume("v1")`}, stdout: ""},
		// The snapshots of a volume that is gone (removed, or received
		// from a peer) are listed all the same.
		{args: []string{"snapshots", "v1"}, setup: func(f *fake) {
			f.snapshots = []dbusapi.SnapshotRow{{Name: snap}}
			f.volumeErrs = map[string]error{"v1": dbusErr(dbusapi.ErrNoSuchVolume, `no such volume "v1"`)}
		}, calls: []string{`ListSnapshots("v1")`}, stdout: snap + "\n"},
		{args: []string{"restore", snap}, setup: func(f *fake) { f.restored = [3]string{snap, "v1", "v1@2026-11-23T10:00:00.000000"} },
			calls: []string{`Restore("` + snap + `", "", 0)`}, stdout: "v1@2026-11-23T10:00:00.000000\n"},
		{args: []string{"restore", "--force", "v1", "v9"}, setup: func(f *fake) { f.restored = [3]string{snap, "v9", ""} },
			calls: []string{`Restore("v1", "v9", 1)`}, stdout: ""},
		{args: []string{"restore", "v1", "v9", "--force"},
			calls: []string{`Restore("v1", "v9", 1)`}, stdout: ""},
		{args: []string{"clone", "v1", "v2"}, calls: []string{`CloneVolume("v1", "v2")`}, stdout: "v2\n"},
		{args: []string{"rm", snap}, calls: []string{`RemoveSnapshot("` + snap + `")`}, stdout: ""},
		{args: []string{"volume", "create", "v1"}, calls: []string{`CreateVolume("v1", map[])`}, stdout: "v1\n"},
		{args: []string{"volume", "create", "-o", "copyonwrite=false", "--opt=from=v0", "v1"},
			calls: []string{`CreateVolume("v1", map[copyonwrite:false from:v0])`}, stdout: "v1\n"},
		{args: []string{"volume", "create", "v1", "-o", "policy=a=b"},
			calls: []string{`CreateVolume("v1", map[policy:a=b])`}, stdout: "v1\n"},
		{args: []string{"volume", "rm", "v1"}, setup: func(f *fake) { f.final = snap },
			calls: []string{`RemoveVolume("v1", 0)`}, stdout: snap + "\n"},
		{args: []string{"volume", "remove", "--no-final-snapshot", "v1"},
			calls: []string{`RemoveVolume("v1", 1)`}, stdout: ""},
		{args: []string{"volume", "rm", "v1"}, setup: func(f *fake) { f.final = snap; f.removedSchedules = []string{"butterd-sched-snapshot-v1.timer"} },
			calls: []string{`RemoveVolume("v1", 0)`}, stdout: snap + "\n", stderr: "schedule removed with the volume: butterd-sched-snapshot-v1.timer\n"},
		{args: []string{"volume", "ls", "-q"}, setup: func(f *fake) {
			f.volumes = []dbusapi.VolumeRow{{Name: "a1"}, {Name: "b2"}}
		}, calls: []string{`ListVolumes()`}, stdout: "a1\nb2\n"},
		{args: []string{"volume", "list", "--quiet"}, calls: []string{`ListVolumes()`}, stdout: ""},
		{args: []string{"volume", "unmount", "--forget", "v1"}, setup: func(f *fake) { f.forgotten = 2 },
			calls: []string{`ForgetMounts("v1")`}, stdout: "2\n"},
		{args: []string{"volume", "inspect", "v1"},
			calls: []string{`GetVolume("v1")`, `Properties(/io/butterd/volumes1/volume/v1, io.butterd.volumes1.Volume)`}},
		// "--" ends the flags.
		{args: []string{"snapshot", "--", "v1"}, calls: []string{`CreateSnapshot("v1")`}, stdout: "\n"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			f := &fake{}
			if tc.setup != nil {
				tc.setup(f)
			}
			r := runWith(t, f, tc.args...)
			if r.code != 0 || r.stderr != tc.stderr {
				t.Fatalf("exit %d, stderr %q, want %q", r.code, r.stderr, tc.stderr)
			}
			if !slices.Equal(f.calls, tc.calls) {
				t.Errorf("calls %q, want %q", f.calls, tc.calls)
			}
			if r.stdout != tc.stdout {
				t.Errorf("stdout %q, want %q", r.stdout, tc.stdout)
			}
		})
	}
}

// snapshots VOL of a name that is neither a volume nor in any snapshot's
// name is not found: exit 1, as buttervolume's verbs exit, naming it.
func TestSnapshotsOfNothing(t *testing.T) {
	for _, args := range [][]string{{"snapshots", "v1x"}, {"snapshots", "-l", "v1x"}, {"--json", "snapshots", "v1x"}} {
		f := &fake{volumeErrs: map[string]error{"v1x": dbusErr(dbusapi.ErrNoSuchVolume, `no such volume "v1x"`)}}
		r := runWith(t, f, args...)
		if r.code != exitFailed || r.stdout != "" || !strings.HasPrefix(r.stderr, `butterctl: no volume "v1x" and no snapshot of it`) {
			t.Errorf("%q: exit %d, stdout %q, stderr %q", args, r.code, r.stdout, r.stderr)
		}
	}
}

// Wrong command lines exit 2 with one line naming the problem and the
// verb's usage, before anything is asked of the bus.
func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"snapshot"}, "snapshot: missing VOL (usage: butterctl snapshot [--group NAME] [--project NAME] VOL)"},
		{[]string{"snapshot", "a1", "b2"}, `snapshot: unexpected argument "b2"`},
		{[]string{"snapshot", ""}, "snapshot: VOL is empty"},
		{[]string{"snapshots", "a1", "b2"}, `snapshots: unexpected argument "b2"`},
		{[]string{"restore"}, "restore: missing SNAP|VOL (usage: butterctl restore [--force] [--group NAME] [--project NAME] SNAP|VOL [TARGET])"},
		{[]string{"restore", "a1", "b2", "c3"}, `restore: unexpected argument "c3"`},
		{[]string{"restore", "--forse", "a1"}, "restore: unknown flag -forse"},
		{[]string{"clone", "a1"}, "clone: missing NEW"},
		{[]string{"clone"}, "clone: missing VOL NEW"},
		{[]string{"rm"}, "rm: missing SNAP"},
		{[]string{"rm", "v1"}, `rm: "v1" is not a snapshot name (VOL@TIMESTAMP): rm removes snapshots; to remove a volume, run 'butterctl volume rm v1'`},
		{[]string{"volume"}, "volume needs a subcommand: create, rm, ls, inspect, unmount"},
		{[]string{"volume", "frobnicate"}, `unknown subcommand "frobnicate" of volume`},
		{[]string{"volume", "create"}, "volume create: missing NAME"},
		{[]string{"volume", "create", "-o", "novalue", "v1"}, `volume create: invalid value "novalue" for flag -o: option "novalue" is not KEY=VALUE`},
		{[]string{"volume", "create", "-o", "=x", "v1"}, `option "=x" has an empty key`},
		{[]string{"volume", "create", "-o", "a=1", "-o", "a=2", "v1"}, `option "a" given twice`},
		{[]string{"volume", "create", "v1", "-o"}, "volume create: flag needs an argument: -o"},
		{[]string{"volume", "rm"}, "volume rm: missing NAME"},
		{[]string{"volume", "rm", "--force", "v1"}, "volume rm: unknown flag -force"},
		{[]string{"volume", "ls", "x1"}, `volume ls: unexpected argument "x1"`},
		{[]string{"volume", "inspect"}, "volume inspect: missing NAME"},
		{[]string{"volume", "unmount", "v1"}, "Docker unmounts volumes itself when their containers stop; --forget drops mount references left by a crashed container"},
		{[]string{"volume", "unmount", "--forget"}, "volume unmount: missing NAME"},
		{[]string{"export"}, "export: missing SNAP FILE|- (usage: butterctl export [--compress] [--force] [--parent SNAP] [-q] SNAP -o FILE|-)"},
		{[]string{"export", "-o", "f"}, "export: missing SNAP"},
		{[]string{"export", "v1@x", "f", "-o", "g"}, "export: give FILE with -o or after SNAP, not both"},
		{[]string{"export", "v1@x"}, "export: missing FILE|-"},
		{[]string{"export", "v1@x", "f", "g"}, `export: unexpected argument "g"`},
		{[]string{"export", "v1@x", ""}, "export: FILE|- is empty"},
		{[]string{"export", "--parent", "v1@x"}, "export: missing SNAP FILE|-"},
		{[]string{"export", "v1@x", "f", "--parent"}, "export: flag needs an argument: -parent"},
		{[]string{"export", "--json", "v1@x", "-"}, "--json prints on standard output, which 'export SNAP -' fills with the stream: give a FILE"},
		{[]string{"jobs", "1", "2"}, `jobs: unexpected argument "2"`},
		{[]string{"jobs", "seven"}, `jobs: "seven" is not a job id: ids are numbers ('butterctl jobs' lists them)`},
		{[]string{"job"}, "job: missing ID"},
		{[]string{"job", "-1"}, "job: unknown flag -1"},
		{[]string{"job", "--", "-1"}, `job: "-1" is not a job id`},
		{[]string{"cancel"}, "cancel: missing ID (usage: butterctl cancel ID)"},
		{[]string{"cancel", "4294967296"}, `cancel: "4294967296" is not a job id`},
		{[]string{"frobnicate", "1h", "v1"}, `unknown verb "frobnicate": run 'butterctl help' for the list`},
		{[]string{"send", "h"}, "send: missing SNAP (usage: butterctl send [--bwlimit RATE] [--compress] [-q] HOST SNAP)"},
		{[]string{"send", "--bwlimit", "fast", "h", "v1@x"}, `send: --bwlimit "fast": give bytes per second`},
		{[]string{"send", "--bwlimit", "-1", "h", "v1@x"}, `send: --bwlimit "-1": give bytes per second`},
		{[]string{"remote"}, "remote needs a subcommand: add, ls, rm, trust, key"},
		{[]string{"remote", "add", "b"}, "remote add: --key is required"},
		{[]string{"remote", "add", "--key", "k"}, "remote add: missing PEER"},
		{[]string{"remote", "add", "--volume", "", "--key", "k", "b"}, `remote add: invalid value "" for flag -volume: empty value`},
		{[]string{"remote", "ls", "b"}, `remote ls: unexpected argument "b"`},
		{[]string{"remote", "rm"}, "remote rm: missing PEER"},
		{[]string{"remote", "trust", "h"}, "remote trust: missing FINGERPRINT"},
		{[]string{"remote", "trust", "h", "MD5:ab"}, `remote trust: FINGERPRINT "MD5:ab" is not of the form SHA256:...`},
		{[]string{"remote", "key", "x"}, `remote key: unexpected argument "x"`},
		{[]string{"--json=maybe", "volume", "ls"}, `--json="maybe": use true or false`},
		{[]string{"help", "nothing"}, `unknown verb "nothing"`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			f := &fake{}
			r := runWith(t, f, tc.args...)
			if r.code != exitUsage {
				t.Errorf("exit %d, want %d", r.code, exitUsage)
			}
			if !strings.HasPrefix(r.stderr, "butterctl: ") || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("stderr %q, want one line butterctl: ...%s...", r.stderr, tc.want)
			}
			if r.dialed || len(f.calls) > 0 {
				t.Errorf("usage error reached the bus: %q", f.calls)
			}
			if r.stdout != "" {
				t.Errorf("stdout %q, want nothing", r.stdout)
			}
		})
	}
}

// No verb prints the verb list on stderr and exits 2; help prints it on
// stdout and exits 0.
func TestHelp(t *testing.T) {
	r := runWith(t, &fake{})
	if r.code != exitUsage || r.stdout != "" || !strings.Contains(r.stderr, "Verbs:") {
		t.Errorf("no verb: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	for _, args := range [][]string{{"help"}, {"--help"}, {"-h"}, {"--json", "help"}} {
		r := runWith(t, &fake{}, args...)
		if r.code != 0 || r.stderr != "" || r.dialed {
			t.Fatalf("%q: exit %d, stderr %q", args, r.code, r.stderr)
		}
		if args[0] == "--json" {
			r.stdout = checkHelpJSON(t, r.stdout)
		}
		for _, c := range commandTable() {
			if !strings.Contains(r.stdout, "\n  "+c.shortSynopsis()+"  ") {
				t.Errorf("%q: verb list lacks %q:\n%s", args, c.shortSynopsis(), r.stdout)
			}
		}
		for _, line := range strings.Split(r.stdout, "\n") {
			if len(line) > helpWidth {
				t.Errorf("%q: a line of %d columns: %q", args, len(line), line)
			}
		}
		for code := exitOK; code <= exitUnreachable; code++ {
			if !strings.Contains(r.stdout, fmt.Sprintf("\n  %d  ", code)) {
				t.Errorf("%q: exit code %d is not documented:\n%s", args, code, r.stdout)
			}
		}
		if !strings.Contains(r.stdout, fmt.Sprintf("\n%d  the job was canceled", exitCanceled)) {
			t.Errorf("%q: exit code %d is not documented:\n%s", args, exitCanceled, r.stdout)
		}
	}
	for _, c := range commandTable() {
		for _, args := range [][]string{
			append(strings.Fields(c.name), "--help"),
			append(strings.Fields(c.name), "-h"),
			append([]string{"help"}, strings.Fields(c.name)...),
			append(strings.Fields(c.name), "x1", "--help"),
		} {
			r := runWith(t, &fake{}, args...)
			if r.code != 0 || r.stderr != "" || r.dialed {
				t.Errorf("%q: exit %d, stderr %q", args, r.code, r.stderr)
				continue
			}
			usage, rest, _ := strings.Cut(r.stdout, "\n\n")
			if strings.Join(strings.Fields(usage), " ") != "usage: butterctl "+c.synopsis() ||
				!strings.HasPrefix(strings.Join(strings.Fields(rest), " "), capitalize(c.short)+".") || !strings.Contains(r.stdout, "--json") {
				t.Errorf("%q: help is\n%s", args, r.stdout)
			}
			text, _, _ := strings.Cut(r.stdout, "\nExamples:\n") // examples may be long commands
			for _, line := range strings.Split(text, "\n") {
				if len([]rune(line)) > helpWidth {
					t.Errorf("%q: help line of %d columns: %q", args, len([]rune(line)), line)
				}
			}
			_, examples, ok := strings.Cut(r.stdout, "\nExamples:\n")
			if !ok || !strings.Contains(examples, "butterctl "+c.name+" ") && !strings.Contains(examples, "butterctl "+c.name+"\n") &&
				!strings.Contains(examples, "butterctl --json "+c.name) {
				t.Errorf("%q: no example of %s:\n%s", args, c.name, r.stdout)
			}
		}
	}
	for _, args := range [][]string{{"volume", "--help"}, {"help", "volume"}} {
		r := runWith(t, &fake{}, args...)
		if r.code != 0 || !strings.Contains(r.stdout, "volume unmount --forget NAME") {
			t.Errorf("%q: exit %d, stdout %q", args, r.code, r.stdout)
		}
	}
	r = runWith(t, &fake{}, "volume", "rm", "--help")
	for _, want := range []string{"--no-final-snapshot", "Also: butterctl volume remove."} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("volume rm --help lacks %q:\n%s", want, r.stdout)
		}
	}
	r = runWith(t, &fake{}, "volume", "unmount", "--help")
	if !strings.Contains(r.stdout, "crashed") {
		t.Errorf("volume unmount --help does not explain --forget:\n%s", r.stdout)
	}
}

// A verb's synopsis names each of its flags (one name of a flag that has
// two); the verb list keeps to the arguments.
func TestSynopsisFlags(t *testing.T) {
	for _, c := range commandTable() {
		syn := c.synopsis()
		fs := newFlagSet(c, c.new(nil))
		fs.VisitAll(func(f *flag.Flag) {
			if strings.HasPrefix(f.Usage, "same as ") {
				return
			}
			if !strings.Contains(syn, dashes(f.Name)+f.Name+" ") && !strings.Contains(syn, dashes(f.Name)+f.Name+"]") {
				t.Errorf("%s: synopsis %q lacks %s%s", c.name, syn, dashes(f.Name), f.Name)
			}
		})
		if strings.Contains(c.shortSynopsis(), "[-") {
			t.Errorf("%s: the verb list shows its flags: %q", c.name, c.shortSynopsis())
		}
	}
	for name, want := range map[string]string{
		"snapshot":       "snapshot [--group NAME] [--project NAME] VOL",
		"restore":        "restore [--force] [--group NAME] [--project NAME] SNAP|VOL [TARGET]",
		"export":         "export [--compress] [--force] [--parent SNAP] [-q] SNAP -o FILE|-",
		"purge":          "purge [--at TIME] [--dry-run] [-v] PATTERN VOL",
		"remote add":     "remote add [--address HOST[:PORT]] [--pull] [--push] [--volume V]... PEER --key LINE",
		"volume create":  "volume create [-o KEY=VALUE]... NAME",
		"volume unmount": "volume unmount --forget NAME",
	} {
		c, _, err := findCommand(strings.Fields(name))
		if err != nil || c.synopsis() != want {
			t.Errorf("%s: synopsis %q, want %q", name, c.synopsis(), want)
		}
	}
}

// --json works before or after the verb, and not after "--".
func TestJSONFlagPlacement(t *testing.T) {
	for _, args := range [][]string{
		{"--json", "snapshot", "v1"},
		{"snapshot", "--json", "v1"},
		{"snapshot", "v1", "--json"},
		{"-json", "snapshot", "v1"},
		{"snapshot", "v1", "--json=true"},
	} {
		f := &fake{snapName: "v1@2026-11-22T20:57:08.947340"}
		r := runWith(t, f, args...)
		var got map[string]string
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &got) != nil || got["name"] != f.snapName || got["volume"] != "v1" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q", args, r.code, r.stdout, r.stderr)
		}
	}
	f := &fake{snapName: "v1@2026-11-22T20:57:08.947340"}
	if r := runWith(t, f, "--json=false", "snapshot", "v1"); r.stdout != f.snapName+"\n" {
		t.Errorf("--json=false: stdout %q", r.stdout)
	}
	// After "--", --json is an argument (and not a valid name).
	f = &fake{}
	r := runWith(t, f, "snapshot", "--", "--json")
	if !slices.Equal(f.calls, []string{`CreateSnapshot("--json")`}) {
		t.Errorf(`snapshot -- --json: calls %q, stdout %q, stderr %q`, f.calls, r.stdout, r.stderr)
	}
}

// checkHelpJSON checks that butterctl --json help lists every verb of the
// command table with the flags its help shows, and returns its help text.
func checkHelpJSON(t *testing.T, out string) string {
	t.Helper()
	var doc helpDoc
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("--json help: %v:\n%s", err, out)
	}
	table := commandTable()
	if len(doc.Verbs) != len(table) {
		t.Errorf("--json help lists %d verbs, the command table has %d", len(doc.Verbs), len(table))
	}
	for i, v := range doc.Verbs {
		if i >= len(table) || v.Name != table[i].name || v.Synopsis != table[i].synopsis() {
			t.Errorf("--json help verb %d: %q %q", i, v.Name, v.Synopsis)
			continue
		}
		verbOut := runWith(t, &fake{}, append([]string{"help"}, strings.Fields(v.Name)...)...).stdout
		for _, f := range v.Flags {
			if f.Usage == "" || !strings.Contains(verbOut, "  "+f.Name) {
				t.Errorf("--json help: flag %s of %s is not in its help:\n%s", f.Name, v.Name, verbOut)
			}
		}
		if n := strings.Count(verbOut, "\n  -") - 2; n != len(v.Flags) { // less --json and -h, --help
			t.Errorf("--json help: %s has %d flags, its help shows %d:\n%s", v.Name, len(v.Flags), n, verbOut)
		}
	}
	return doc.Help
}
