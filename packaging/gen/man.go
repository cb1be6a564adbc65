package main

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

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
	pool, err := help(butterd, "pool", "--help")
	if err != nil {
		return err
	}
	doc, err := readHelp(butterctl)
	if err != nil {
		return err
	}
	d := &page{name: "butterd", summary: "Docker volumes as BTRFS subvolumes, with snapshots, schedules and replication", version: version}
	d.helpText(top, "DESCRIPTION")
	d.helpText(run, "THE RUN COMMAND")
	d.helpText(pool, "THE POOL COMMAND")
	d.section("FILES")
	d.item("/etc/butterd/butterd.conf", "the configuration file (KEY = value lines, [policy NAME] sections)")
	d.item("/var/lib/butterd", "the data root: volumes/, snapshots/, received/ and butterd's state")
	d.item("butterd.service, butterd-pool.service, butterd.socket, butterd-ssh.socket, butterd-schedules.target", "the systemd units (butterd-pool.service runs butterd pool before butterd.service); schedules are butterd-sched-*.timer and .service units in /etc/systemd/system")
	d.seeAlso("butterctl(8), systemd.socket(5), systemd.timer(5)")

	c := &page{name: "butterctl", summary: "manage butterd's volumes, snapshots, schedules and jobs", version: version}
	// The main help, its verb list replaced by a section per verb.
	before, after, _ := cutSection(doc.Help, "Verbs")
	c.helpText(before, "DESCRIPTION")
	c.section("VERBS")
	for i := range doc.Verbs {
		c.verb(&doc.Verbs[i])
	}
	c.helpText(after, "")
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

// cutSection cuts the section "name:" out of a help text: the text before
// its heading and from the next heading on.
func cutSection(text, name string) (before, after string, found bool) {
	lines := strings.SplitAfter(text, "\n")
	for i, l := range lines {
		if strings.TrimSpace(l) != name+":" {
			continue
		}
		j := i + 1
		for j < len(lines) && !heading.MatchString(strings.TrimRight(lines[j], "\n")) {
			j++
		}
		return strings.Join(lines[:i], ""), strings.Join(lines[j:], ""), true
	}
	return text, "", false
}

// verb writes a verb's subsection: its synopsis, what it does, its long
// help, its flags and its examples.
func (p *page) verb(v *helpVerb) {
	fmt.Fprintf(&p.b, ".SS %s\n", esc(v.Name))
	fmt.Fprintf(&p.b, ".B butterctl %s\n%s\n", esc(v.Name), esc(strings.TrimSpace(strings.TrimPrefix(v.Synopsis, v.Name))))
	fmt.Fprintf(&p.b, ".PP\n%s.\n", esc(strings.ToUpper(v.Short[:1])+v.Short[1:]))
	if v.Long != "" {
		p.text(v.Long)
	}
	if names := v.names(); len(names) > 1 {
		fmt.Fprintf(&p.b, ".PP\nAlso: \\fBbutterctl %s\\fR.\n", esc(strings.Join(names[1:], ", butterctl ")))
	}
	for _, f := range v.Flags {
		term := f.Name
		if f.Arg != "" {
			term += " " + f.Arg
		}
		p.item(term, f.Usage)
	}
	if len(v.Examples) > 0 {
		p.text("Examples:\n  " + strings.Join(v.Examples, "\n  "))
	}
}

// text writes paragraphs; indented lines are shown as they are.
func (p *page) text(s string) {
	para, literal := false, false
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		indented := strings.HasPrefix(l, " ")
		if literal && !indented {
			p.b.WriteString(".fi\n.RE\n")
			literal, para = false, false
		}
		switch {
		case strings.TrimSpace(l) == "":
			para = false
			continue
		case indented && !literal:
			p.b.WriteString(".RS\n.nf\n")
			literal = true
		case !indented && !para:
			p.b.WriteString(".PP\n")
			para = true
		}
		p.b.WriteString(esc(strings.TrimSpace(l)) + "\n")
	}
	if literal {
		p.b.WriteString(".fi\n.RE\n")
	}
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
