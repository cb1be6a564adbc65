package main

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"butterd/tests/testenv"
)

// A butterctl on PATH for the completions' operand lists: one volume and
// one snapshot.
const fakeButterctl = `#!/bin/sh
case "$*" in
"volume ls -q") echo vol-a ;;
snapshots) echo vol-a@2026-01-02T03:04:05.000006 ;;
esac
`

// The completions of every shell, run for real: the first word offers
// every verb of the command table, a verb (by each of its names) followed
// by "-" offers every flag of that verb, a group offers its subcommands,
// operands complete volumes, snapshots or files, and the value of a flag
// is neither a verb nor an operand.
func TestCompletions(t *testing.T) {
	ctl := testenv.BuildButterctl(t)
	doc, err := readHelp(ctl)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := completions(dir, ctl); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "butterctl"), []byte(fakeButterctl), 0o755); err != nil {
		t.Fatal(err)
	}

	type tc struct {
		line       string // what is typed, the word completed last
		want, deny []string
	}
	var cases []tc
	var top []string
	for _, v := range doc.Verbs {
		for _, name := range v.names() {
			if w := strings.Fields(name)[0]; !slices.Contains(top, w) {
				top = append(top, w)
			}
			var flags []string
			for _, f := range v.Flags {
				flags = append(flags, f.Name)
			}
			cases = append(cases, tc{line: "butterctl " + name + " -", want: append(flags, "--json")})
		}
	}
	var volumeSubs []string
	for _, v := range doc.Verbs {
		for _, name := range v.names() {
			if sub, ok := strings.CutPrefix(name, "volume "); ok {
				volumeSubs = append(volumeSubs, sub)
			}
		}
	}
	cases = append(cases,
		tc{line: "butterctl ", want: top, deny: []string{"vol-a"}},
		tc{line: "butterctl volume ", want: volumeSubs},
		tc{line: "butterctl volume rm ", want: []string{"vol-a"}, deny: []string{"create"}},
		tc{line: "butterctl restore ", want: []string{"vol-a@2026-01-02T03:04:05.000006"}},
		tc{line: "butterctl scheduled ", want: []string{"list", "pause", "resume"}},
		tc{line: "butterctl schedule --every 1h snapshot ", want: []string{"vol-a"}, deny: []string{"import"}},
		tc{line: "butterctl purge --at ", deny: []string{"vol-a", "--dry-run"}},
	)

	shells := map[string]func(t *testing.T, line string) []string{
		"bash": func(t *testing.T, line string) []string {
			return complete(t, bin, testenv.Command(t, "bash"), append([]string{"-c", `f=$1; shift
source "$f"; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _butterctl; printf '%s\n' "${COMPREPLY[@]}"`,
				"bash", filepath.Join(dir, "butterctl.bash")}, strings.Split(line, " ")...)...)
		},
		"zsh": func(t *testing.T, line string) []string {
			// compadd and _files stand in for zsh's completion system.
			return complete(t, bin, testenv.Command(t, "zsh"), append([]string{"-f", "-c", `compadd() { [[ $1 == -- ]] && shift; print -rl -- "$@" }
_files() { print -r -- _files }
_butterctl() { source "$1" }
f=$1; shift; words=("$@"); CURRENT=$#; _butterctl "$f"`,
				"zsh", filepath.Join(dir, "_butterctl")}, strings.Split(line, " ")...)...)
		},
		"fish": func(t *testing.T, line string) []string {
			var out []string
			for _, l := range complete(t, bin, testenv.Command(t, "fish"), "-N", "-c", `source $argv[1]; complete -C $argv[2]`,
				filepath.Join(dir, "butterctl.fish"), line) {
				out = append(out, strings.SplitN(l, "\t", 2)[0])
			}
			return out
		},
	}
	for shell, run := range shells {
		t.Run(shell, func(t *testing.T) {
			for _, c := range cases {
				got := run(t, c.line)
				for _, w := range c.want {
					if !slices.Contains(got, w) {
						t.Errorf("%q<TAB> does not offer %s; it offers %q", c.line, w, got)
					}
				}
				for _, w := range c.deny {
					if slices.Contains(got, w) {
						t.Errorf("%q<TAB> offers %s: %q", c.line, w, got)
					}
				}
			}
		})
	}
}

// complete runs a shell and returns the lines it printed.
func complete(t *testing.T, bin, shell string, args ...string) []string {
	t.Helper()
	cmd := exec.Command(shell, args...)
	cmd.Env = []string{"PATH=" + bin + ":/usr/bin:/bin", "HOME=" + t.TempDir(), "LANG=C.UTF-8"}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %q: %v\n%s", shell, args, err, out)
	}
	return strings.Fields(string(out))
}

// The man pages render without a warning; butterctl(8) has a section per
// verb of the command table with its synopsis and every flag, and
// butterd(8) describes the run and pool commands.
func TestManPages(t *testing.T) {
	groff := testenv.Command(t, "groff")
	ctl := testenv.BuildButterctl(t)
	doc, err := readHelp(ctl)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := manPages("9.9.9", dir, testenv.BuildButterd(t), ctl); err != nil {
		t.Fatal(err)
	}
	render := func(page string) string {
		f, err := os.Open(filepath.Join(dir, page+".8.gz"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		src, err := io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(groff, "-man", "-Tascii", "-ww", "-rLL=300n", "-P-cbou")
		cmd.Stdin = bytes.NewReader(src)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil || stderr.Len() > 0 {
			t.Errorf("groff %s(8): %v\n%s", page, err, stderr.String())
		}
		return string(out)
	}
	ctlPage := render("butterctl")
	for _, v := range doc.Verbs {
		if !strings.Contains(ctlPage, "\n   "+v.Name+"\n") || !strings.Contains(ctlPage, "butterctl "+v.Synopsis) {
			t.Errorf("butterctl(8) has no section %q with its synopsis %q", v.Name, v.Synopsis)
		}
		for _, f := range v.Flags {
			if !strings.Contains(ctlPage, "\n       "+f.Name) {
				t.Errorf("butterctl(8) does not describe %s of %s", f.Name, v.Name)
			}
		}
		for _, e := range v.Examples {
			if !strings.Contains(ctlPage, e) {
				t.Errorf("butterctl(8) lacks the example %q of %s", e, v.Name)
			}
		}
	}
	for _, want := range []string{"EXIT CODES", "GLOBAL FLAGS", "butterd 9.9.9"} {
		if !strings.Contains(ctlPage, want) {
			t.Errorf("butterctl(8) lacks %q", want)
		}
	}
	dPage := render("butterd")
	for _, want := range []string{"THE RUN COMMAND", "THE POOL COMMAND", "--mount-pool", "butterd-pool.service"} {
		if !strings.Contains(dPage, want) {
			t.Errorf("butterd(8) lacks %q", want)
		}
	}
}
