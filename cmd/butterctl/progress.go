package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"butterd/dbusapi"
)

// Progress of a job a verb waits for goes to stderr: on a terminal one line
// redrawn in place and cleared at the end; otherwise (a log, a pipe, a
// systemd unit) a plain line at most every plainEvery.

const (
	termEvery  = 250 * time.Millisecond // how often a terminal line is redrawn
	plainEvery = 5 * time.Second        // the least time between plain lines
	barWidth   = 24
)

// isTerminal reports whether w is a terminal that understands redrawing a
// line (not TERM=dumb). Tests replace it.
var isTerminal = func(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && os.Getenv("TERM") != "dumb" && isatty(f)
}

// isatty reports whether f is a terminal.
func isatty(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// progress prints a job's progress. Its methods may be called from the
// goroutine that waits for the job and from the verb's own.
type progress struct {
	mu      sync.Mutex
	w       io.Writer
	term    bool // redraw one line in place
	quiet   bool // print nothing
	kind    string
	id      uint32
	now     func() time.Time
	last    time.Time // when the last plain line was printed
	shown   bool      // a terminal line is on screen
	stopped bool
}

func newProgress(w io.Writer, kind string, id uint32, quiet bool) *progress {
	return &progress{w: w, term: isTerminal(w), quiet: quiet, kind: kind, id: id, now: time.Now}
}

// interval is how often the job's state should be read.
func (p *progress) interval() time.Duration {
	if p.term && !p.quiet {
		return termEvery
	}
	return time.Second
}

// start marks the beginning of the wait: the first plain line comes
// plainEvery later.
func (p *progress) start() {
	p.mu.Lock()
	p.last = p.now()
	p.mu.Unlock()
}

// update shows the job's state.
func (p *progress) update(j dbusapi.JobInfo) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.quiet || p.stopped {
		return
	}
	if p.term {
		fmt.Fprintf(p.w, "\r%s\x1b[K", termLine(p.kind, p.id, j))
		p.shown = true
		return
	}
	if now := p.now(); now.Sub(p.last) >= plainEvery {
		fmt.Fprintln(p.w, plainLine(p.kind, p.id, j))
		p.last = now
	}
}

// stop clears the terminal line and ends updates, so that what is printed
// next starts on a clean line.
func (p *progress) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.shown {
		fmt.Fprint(p.w, "\r\x1b[K")
		p.shown = false
	}
	p.stopped = true
}

// plainLine is a line for a log: "export job 7: 1.2 GiB, 180 MiB/s", with
// ", 42%" when the progress is known and the state when the job does not
// run yet.
func plainLine(kind string, id uint32, j dbusapi.JobInfo) string {
	parts := []string{formatBytes(j.BytesDone)}
	if j.FilesDone > 0 {
		parts = append(parts, fmt.Sprintf("%d files", j.FilesDone))
	}
	if j.State != "" && j.State != "running" {
		parts = []string{j.State}
	}
	if j.Rate > 0 {
		parts = append(parts, formatBytes(uint64(j.Rate))+"/s")
	}
	if j.Progress >= 0 {
		parts = append(parts, formatPercent(j.Progress))
	}
	return fmt.Sprintf("%s job %d: %s", kind, id, strings.Join(parts, ", "))
}

// termLine is the line redrawn on a terminal: a bar and a percentage when
// the progress is known, then the bytes and the rate. It stays short, so
// that it never wraps on an 80-column terminal.
func termLine(kind string, id uint32, j dbusapi.JobInfo) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s job %d", kind, id)
	if j.State != "" && j.State != "running" {
		fmt.Fprintf(&b, ": %s", j.State)
		return b.String()
	}
	if j.Progress >= 0 {
		f := min(j.Progress, 1)
		n := int(f * barWidth)
		fmt.Fprintf(&b, " [%s%s] %4s", strings.Repeat("#", n), strings.Repeat(".", barWidth-n), formatPercent(f))
	} else {
		b.WriteString(":")
	}
	fmt.Fprintf(&b, " %s", formatBytes(j.BytesDone))
	if j.FilesDone > 0 {
		fmt.Fprintf(&b, " %d files", j.FilesDone)
	}
	if j.Rate > 0 {
		fmt.Fprintf(&b, " at %s/s", formatBytes(uint64(j.Rate)))
	}
	return b.String()
}

func formatPercent(f float64) string {
	return fmt.Sprintf("%d%%", int(min(f, 1)*100))
}

// formatBytes writes a size in binary units: 512 B, 1.2 GiB, 180 MiB.
func formatBytes(n uint64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	v := float64(n)
	units := []string{"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	i := -1
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	if v < 9.95 {
		return fmt.Sprintf("%.1f %s", v, units[i])
	}
	return fmt.Sprintf("%.0f %s", v, units[i])
}
