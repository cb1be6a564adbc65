// Command gen writes what the packages ship that is derived from the code:
// man pages from the binaries' own --help, butterctl's shell completions
// from its verb list, and butterd-schedules.target from units.RenderTarget.
//
//	go run ./packaging/gen man VERSION OUTDIR BUTTERD BUTTERCTL
//	go run ./packaging/gen completions OUTDIR BUTTERCTL
//	go run ./packaging/gen target >packaging/systemd/butterd-schedules.target
package main

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"butterd/units"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch a := os.Args[2:]; os.Args[1] {
	case "man":
		if len(a) != 4 {
			usage()
		}
		err = manPages(a[0], a[1], a[2], a[3])
	case "completions":
		if len(a) != 2 {
			usage()
		}
		err = completions(a[0], a[1])
	case "target":
		_, err = os.Stdout.Write(units.RenderTarget())
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: gen man VERSION OUTDIR BUTTERD BUTTERCTL | gen completions OUTDIR BUTTERCTL | gen target")
	os.Exit(2)
}

// help runs a binary with args and returns what it printed (Go's flag
// package prints usage on stderr).
func help(bin string, args ...string) (string, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LANG=C"}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s %s: %v\n%s", bin, strings.Join(args, " "), err, out)
	}
	return strings.ReplaceAll(string(out), "\t", "    "), nil
}

// --- man pages ---

// A page is the text of a help output turned into sections.
type page struct {
	name, summary, version string
	b                      strings.Builder
}

func manPages(version, outDir, butterd, butterctl string) error {
	top, err := help(butterd, "--help")
	if err != nil {
		return err
	}
	run, err := help(butterd, "run", "--help")
	if err != nil {
		return err
	}
	ctl, err := help(butterctl, "help")
	if err != nil {
		return err
	}
	d := &page{name: "butterd", summary: "Docker volumes as BTRFS subvolumes, with snapshots, schedules and replication", version: version}
	d.helpText(top, "DESCRIPTION")
	d.helpText(run, "THE RUN COMMAND")
	d.section("FILES")
	d.item("/etc/butterd/butterd.conf", "the configuration file (KEY = value lines, [policy NAME] sections)")
	d.item("/var/lib/butterd", "the data root: volumes/, snapshots/, received/ and butterd's state")
	d.item("butterd.service, butterd-pool.service, butterd.socket, butterd-ssh.socket, butterd-schedules.target", "the systemd units (butterd-pool.service runs butterd pool before butterd.service); schedules are butterd-sched-*.timer and .service units in /etc/systemd/system")
	d.seeAlso("butterctl(8), systemd.socket(5), systemd.timer(5)")

	c := &page{name: "butterctl", summary: "manage butterd's volumes, snapshots, schedules and jobs", version: version}
	c.helpText(ctl, "DESCRIPTION")
	c.seeAlso("butterd(8), busctl(1)")

	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return err
	}
	for _, p := range []*page{d, c} {
		if err := writeGzip(filepath.Join(outDir, p.name+".8.gz"), p.roff()); err != nil {
			return err
		}
	}
	return nil
}

var (
	usageLine = regexp.MustCompile(`^usage: (\S+)(.*)$`)
	heading   = regexp.MustCompile(`^([A-Z][^:]*):$`)
	goFlag    = regexp.MustCompile(`^  (-\S+)( \S+)?$`)
	item      = regexp.MustCompile(`^ {0,2}(\S.*?) {2,}(\S.*)$`)
)

// helpText turns a help output into roff: the usage line becomes the
// synopsis (or a paragraph after the first), "Heading:" lines sections,
// "  TERM  text" lines and Go flag listings tagged paragraphs, and the rest
// paragraphs.
func (p *page) helpText(text, first string) {
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	inItem, inPara, started := false, false, false
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		switch {
		case strings.TrimSpace(l) == "":
			inItem, inPara = false, false
		case usageLine.MatchString(l):
			m := usageLine.FindStringSubmatch(l)
			if p.b.Len() == 0 {
				p.section("SYNOPSIS")
			} else {
				p.section(first)
				started = true
			}
			fmt.Fprintf(&p.b, ".B %s\n%s\n", esc(m[1]), esc(strings.TrimSpace(m[2])))
		case heading.MatchString(l):
			p.section(strings.ToUpper(heading.FindStringSubmatch(l)[1]))
			started = true
		case goFlag.MatchString(l):
			m := goFlag.FindStringSubmatch(l)
			desc := ""
			for i+1 < len(lines) && strings.HasPrefix(lines[i+1], "    ") {
				i++
				desc += " " + strings.TrimSpace(lines[i])
			}
			term := "-" + m[1] // butterd's flags are written --name
			if m[2] != "" {
				term += " " + strings.ToUpper(strings.TrimSpace(m[2]))
			}
			p.item(term, strings.TrimSpace(desc))
			inItem = true
		case !strings.HasPrefix(l, "   ") && item.MatchString(l):
			m := item.FindStringSubmatch(l)
			p.item(m[1], m[2])
			inItem = true
		case inItem:
			p.b.WriteString(esc(strings.TrimSpace(l)) + "\n")
		default:
			if !started {
				p.section(first)
				started = true
			}
			if !inPara {
				p.b.WriteString(".PP\n")
				inPara = true
			}
			p.b.WriteString(esc(strings.TrimSpace(l)) + "\n")
		}
	}
}

func (p *page) section(name string) { fmt.Fprintf(&p.b, ".SH %s\n", esc(name)) }

func (p *page) item(term, desc string) {
	fmt.Fprintf(&p.b, ".TP\n.B %s\n%s\n", esc(term), esc(desc))
}

func (p *page) seeAlso(refs string) {
	p.section("SEE ALSO")
	p.b.WriteString(esc(refs) + "\n")
}

func (p *page) roff() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, ".\\\" Generated by packaging/gen from %s's own help; do not edit.\n", p.name)
	fmt.Fprintf(&b, ".TH %s 8 \"\" \"butterd %s\" \"System Administration\"\n", strings.ToUpper(p.name), esc(p.version))
	fmt.Fprintf(&b, ".SH NAME\n%s \\- %s\n", p.name, esc(p.summary))
	b.WriteString(p.b.String())
	return b.Bytes()
}

// esc escapes text for roff: backslashes, minus signs, and a leading . or '.
func esc(s string) string {
	s = strings.NewReplacer(`\`, `\e`, `-`, `\-`).Replace(s)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}

// writeGzip writes data gzip-compressed at the best level, with neither
// name nor time in the header (reproducible, as Debian wants man pages).
func writeGzip(path string, data []byte) error {
	var b bytes.Buffer
	zw, err := gzip.NewWriterLevel(&b, gzip.BestCompression)
	if err != nil {
		return err
	}
	zw.Header.OS = 3 // Unix, as gzip -n writes it
	if _, err := zw.Write(data); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}

// --- completions ---

// A verb of butterctl as its help lists it: "volume create [-o KEY=VALUE]... NAME".
type verb struct {
	name  string
	subs  []string // subverbs: volume create, scheduled pause...
	flags []string
	arg   string // what its operands are: volume, snapshot, file or ""
}

var (
	flagWord = regexp.MustCompile(`(?:^|[\[|])(--?[a-z][a-z-]*)`)
	choice   = regexp.MustCompile(`^\[?([a-z]+(\|[a-z]+)+)\]?$`)
)

// verbs reads the "Verbs:" section of `butterctl help`.
func verbs(text string) ([]*verb, []string) {
	var out []*verb
	byName := map[string]*verb{}
	var global []string
	section := ""
	for _, l := range strings.Split(text, "\n") {
		if m := heading.FindStringSubmatch(l); m != nil {
			section = m[1]
			continue
		}
		m := item.FindStringSubmatch(l)
		if m == nil || strings.HasPrefix(l, "   ") {
			continue
		}
		if strings.HasPrefix(section, "Global flags") {
			for _, w := range strings.Fields(strings.ReplaceAll(m[1], ",", " ")) {
				global = append(global, flagWords(w)...)
			}
			continue
		}
		if section != "Verbs" {
			continue
		}
		words := strings.Fields(m[1])
		v := byName[words[0]]
		if v == nil {
			v = &verb{name: words[0]}
			byName[v.name] = v
			out = append(out, v)
		}
		for i, w := range words[1:] {
			switch {
			case i == 0 && regexp.MustCompile(`^[a-z]+$`).MatchString(w):
				v.subs = append(v.subs, w)
			case choice.MatchString(w):
				v.subs = append(v.subs, strings.Split(choice.FindStringSubmatch(w)[1], "|")...)
			case flagWord.MatchString(w):
				v.flags = append(v.flags, flagWords(w)...)
			case v.arg == "":
				switch {
				case strings.Contains(w, "SNAP"):
					v.arg = "snapshot"
				case strings.Contains(w, "VOL") || w == "NAME" && words[1] != "create":
					v.arg = "volume"
				case strings.Contains(w, "FILE"):
					v.arg = "file"
				}
			}
		}
	}
	for _, v := range out {
		v.subs, v.flags = uniq(v.subs), uniq(v.flags)
	}
	return out, uniq(global)
}

// flagWords are the flags a word of a usage line names: --force,
// [--dry-run, SPAN|--on-calendar.
func flagWords(w string) []string {
	var out []string
	for _, m := range flagWord.FindAllStringSubmatch(w, -1) {
		out = append(out, m[1])
	}
	return out
}

func uniq(s []string) []string {
	sort.Strings(s)
	var out []string
	for i, x := range s {
		if i == 0 || x != s[i-1] {
			out = append(out, x)
		}
	}
	return out
}

func completions(outDir, butterctl string) error {
	text, err := help(butterctl, "help")
	if err != nil {
		return err
	}
	vs, global := verbs(text)
	if len(vs) == 0 {
		return fmt.Errorf("%s help lists no verbs", butterctl)
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return err
	}
	for name, data := range map[string]string{
		"butterctl.bash": bash(vs, global),
		"_butterctl":     zsh(vs, global),
		"butterctl.fish": fish(vs, global),
	} {
		if err := os.WriteFile(filepath.Join(outDir, name), []byte(data), 0o644); err != nil {
			return err
		}
	}
	return nil
}

const generated = "# Generated by packaging/gen from `butterctl help`; do not edit.\n"

func names(vs []*verb) string {
	var n []string
	for _, v := range vs {
		n = append(n, v.name)
	}
	return strings.Join(n, " ")
}

func bash(vs []*verb, global []string) string {
	var b strings.Builder
	b.WriteString(generated)
	b.WriteString("_butterctl() {\n\tCOMPREPLY=()\n\tlocal cur=${COMP_WORDS[COMP_CWORD]} verb= sub= i\n")
	b.WriteString("\tfor ((i = 1; i < COMP_CWORD; i++)); do\n\t\tcase ${COMP_WORDS[i]} in -*) ;; *) if [[ -z $verb ]]; then verb=${COMP_WORDS[i]}; elif [[ -z $sub ]]; then sub=${COMP_WORDS[i]}; fi ;; esac\n\tdone\n")
	fmt.Fprintf(&b, "\tif [[ -z $verb ]]; then\n\t\tCOMPREPLY=($(compgen -W '%s %s' -- \"$cur\"))\n\t\treturn\n\tfi\n", names(vs), strings.Join(global, " "))
	b.WriteString("\tlocal words= arg=\n\tcase $verb in\n")
	for _, v := range vs {
		fmt.Fprintf(&b, "\t%s) words='%s'; arg=%s", v.name, strings.Join(append(append([]string{}, v.flags...), global...), " "), v.arg)
		if len(v.subs) > 0 {
			fmt.Fprintf(&b, "; [[ -z $sub ]] && words=\"$words %s\"", strings.Join(v.subs, " "))
		}
		b.WriteString(" ;;\n")
	}
	b.WriteString("\tesac\n\tcase $arg in\n")
	b.WriteString("\tvolume) words=\"$words $(butterctl volume ls -q 2>/dev/null)\" ;;\n")
	b.WriteString("\tsnapshot) words=\"$words $(butterctl snapshots 2>/dev/null)\" ;;\n")
	b.WriteString("\tfile) COMPREPLY=($(compgen -f -- \"$cur\")) ;;\n\tesac\n")
	b.WriteString("\tCOMPREPLY+=($(compgen -W \"$words\" -- \"$cur\"))\n}\ncomplete -F _butterctl butterctl\n")
	return b.String()
}

func zsh(vs []*verb, global []string) string {
	var b strings.Builder
	b.WriteString("#compdef butterctl\n" + generated)
	// words is zsh's own array of the command line: the candidates are cands.
	b.WriteString("local verb=${words[2]} arg=\nlocal -a cands\n")
	fmt.Fprintf(&b, "if (( CURRENT == 2 )); then\n\tcompadd -- %s %s\n\treturn\nfi\n", names(vs), strings.Join(global, " "))
	b.WriteString("case $verb in\n")
	for _, v := range vs {
		fmt.Fprintf(&b, "%s) cands=(%s)", v.name, strings.Join(append(append([]string{}, v.flags...), global...), " "))
		if len(v.subs) > 0 {
			fmt.Fprintf(&b, "; (( CURRENT == 3 )) && cands+=(%s)", strings.Join(v.subs, " "))
		}
		fmt.Fprintf(&b, "; arg=%s ;;\n", v.arg)
	}
	b.WriteString("esac\ncompadd -- $cands\ncase $arg in\n")
	b.WriteString("volume) compadd -- ${(f)\"$(butterctl volume ls -q 2>/dev/null)\"} ;;\n")
	b.WriteString("snapshot) compadd -- ${(f)\"$(butterctl snapshots 2>/dev/null)\"} ;;\n")
	b.WriteString("file) _files ;;\nesac\n")
	return b.String()
}

func fish(vs []*verb, global []string) string {
	var b strings.Builder
	b.WriteString(generated)
	fmt.Fprintf(&b, "set -l butterctl_verbs %s\n", names(vs))
	b.WriteString("complete -c butterctl -f\n")
	for _, g := range global {
		fmt.Fprintf(&b, "complete -c butterctl %s\n", fishFlag(g))
	}
	for _, v := range vs {
		fmt.Fprintf(&b, "complete -c butterctl -n 'not __fish_seen_subcommand_from $butterctl_verbs' -a %s\n", v.name)
		cond := "__fish_seen_subcommand_from " + v.name
		if len(v.subs) > 0 {
			fmt.Fprintf(&b, "complete -c butterctl -n '%s; and not __fish_seen_subcommand_from %s' -a '%s'\n", cond, strings.Join(v.subs, " "), strings.Join(v.subs, " "))
		}
		for _, f := range v.flags {
			fmt.Fprintf(&b, "complete -c butterctl -n '%s' %s\n", cond, fishFlag(f))
		}
		switch v.arg {
		case "volume":
			fmt.Fprintf(&b, "complete -c butterctl -n '%s' -a '(butterctl volume ls -q 2>/dev/null)'\n", cond)
		case "snapshot":
			fmt.Fprintf(&b, "complete -c butterctl -n '%s' -a '(butterctl snapshots 2>/dev/null)'\n", cond)
		case "file":
			fmt.Fprintf(&b, "complete -c butterctl -n '%s' -F\n", cond)
		}
	}
	return b.String()
}

func fishFlag(f string) string {
	if strings.HasPrefix(f, "--") {
		return "-l " + f[2:]
	}
	return "-s " + f[1:]
}
