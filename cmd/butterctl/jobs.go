package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/godbus/dbus/v5"

	"butterd/dbusapi"
	"butterd/internal/atomicfile"
)

// Long operations run as butterd jobs: the verb starts one, prints its id on
// stderr ("job 7 started"; stdout may be the stream), waits for it while
// showing its progress on stderr, and exits with its result. Ctrl-C cancels
// the job. jobs, job and cancel look at and stop jobs.

// cancelGrace is how long a verb waits for its job to end after asking
// butterd to cancel it.
var cancelGrace = 10 * time.Second

// waitJob waits for job id to end, showing its progress on stderr unless
// quiet, and cancels it when ctx ends (Ctrl-C, SIGTERM). It returns the
// job's last state and, unless the job is done, an error holding its result
// (a *jobError) or the failure to follow it.
func (a *app) waitJob(ctx context.Context, m manager, kind string, id uint32, quiet bool) (dbusapi.JobInfo, error) {
	p := newProgress(a.stderr, kind, id, quiet)
	p.start()
	type waited struct {
		j   dbusapi.JobInfo
		err error
	}
	done := make(chan waited, 1)
	go func() {
		j, err := m.WaitJob(id, p.interval(), p.update)
		done <- waited{j, err}
	}()
	var w waited
	select {
	case w = <-done:
	case <-ctx.Done():
		p.stop()
		// A job that finished meanwhile refuses the cancel: its result
		// comes from the wait.
		cancelErr := m.CancelJob(id)
		select {
		case w = <-done:
		case <-time.After(cancelGrace):
			if cancelErr != nil {
				return dbusapi.JobInfo{}, fmt.Errorf("cannot cancel %s job %d: %s", kind, id, dbusapi.Message(cancelErr))
			}
			return dbusapi.JobInfo{}, &jobError{kind: kind, id: id, result: "canceled",
				msg: fmt.Sprintf("cancel requested, but the job was still stopping after %v (see 'butterctl job %d')", cancelGrace, id)}
		}
	}
	p.stop()
	switch {
	case w.err != nil:
		return w.j, w.err
	case w.j.Result == "done":
		return w.j, nil
	}
	return w.j, &jobError{kind: kind, id: id, result: w.j.Result, msg: w.j.Error}
}

// followJob says "job N started" on stderr, waits for the job (waitJob)
// and, unless quiet, says "job N done: SIZE in TIME" when it is done.
func (a *app) followJob(ctx context.Context, m manager, kind string, id uint32, quiet bool) (dbusapi.JobInfo, error) {
	fmt.Fprintf(a.stderr, "job %d started\n", id)
	began := time.Now()
	j, err := a.waitJob(ctx, m, kind, id, quiet)
	if err == nil && !quiet {
		fmt.Fprintf(a.stderr, "job %d done: %s in %v\n", id, formatBytes(j.BytesDone), roundDuration(time.Since(began)))
	}
	return j, err
}

// parseJobID reads a job id.
func parseJobID(s string) (uint32, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, usagef("%q is not a job id: ids are numbers ('butterctl jobs' lists them)", s)
	}
	return uint32(n), nil
}

const exportHelp = `butterd writes the BTRFS send stream of snapshot SNAP (incremental
against --parent when given) into FILE, given with -o FILE or after SNAP,
or into standard output for -; 'btrfs receive -f FILE DIR' applies it, and
'butterctl import FILE' on any host. butterctl opens FILE itself, with
your own rights, and hands butterd the open file, never the path.

--compress has butterd write the stream compressed with zstd ('zstd -d'
restores the plain stream; 'butterctl import' takes either as it is).
The bytes shown count the stream before compression.

FILE is created; an existing file is never overwritten unless --force is
given (export fails, exit 1, and leaves it alone); with --force the stream
goes to a temporary file beside it, which replaces FILE only when the
export succeeds. A pipe or a device is written as is. When the export
fails or is canceled, the partly written FILE is removed.

The job's id is printed on stderr at the start ("job 7 started"), then its
progress: a line redrawn in place on a terminal, plain lines every few
seconds otherwise, nothing with --quiet. butterctl waits for the job and
exits with its result: 0 done, 1 failed (with the job's error), 130
canceled. Ctrl-C cancels the job.`

type exportCmd struct {
	*app
	parent   string
	output   string
	compress bool
	force    bool
	quiet    bool
}

func (c *exportCmd) Flags(fs *flag.FlagSet) {
	fs.StringVar(&c.parent, "parent", "", "write an incremental stream against snapshot `SNAP`")
	fs.StringVar(&c.output, "o", "", "write the stream into `FILE` (- for standard output)")
	fs.BoolVar(&c.compress, "compress", false, "compress the stream with zstd")
	fs.BoolVar(&c.force, "force", false, "replace FILE when it exists")
	fs.BoolVar(&c.quiet, "q", false, "print no progress and no summary (the job id and errors still)")
	fs.BoolVar(&c.quiet, "quiet", false, "same as -q")
}

func (c *exportCmd) Run(ctx context.Context, args []string) error {
	if c.output != "" {
		if len(args) == 0 {
			return usagef("missing SNAP")
		}
		if len(args) > 1 {
			return usagef("give FILE with -o or after SNAP, not both")
		}
		args = append(args, c.output)
	}
	if err := wantArgs(args, []string{"SNAP", "FILE|-"}); err != nil {
		return err
	}
	snap, file := args[0], args[1]
	var out *os.File
	if file == "-" {
		if c.json {
			return usagef("--json prints on standard output, which 'export SNAP -' fills with the stream: give a FILE")
		}
		f, ok := c.stdout.(*os.File)
		if !ok {
			return &localError{"standard output is not a file"}
		}
		if isatty(f) {
			return usagef("refusing to write a send stream to a terminal: redirect standard output or give a FILE")
		}
		out = f
	}
	m, err := c.bus()
	if err != nil {
		return err
	}
	// Check the names before touching FILE, so that a typo never creates
	// or truncates it.
	if _, err := m.GetSnapshot(snap); err != nil {
		return err
	}
	if c.parent != "" {
		if _, err := m.GetSnapshot(c.parent); err != nil {
			return err
		}
	}
	var made *madeFile
	if out == nil {
		if made, err = createOutput(ctx, file, c.force); err != nil {
			return err
		}
		out = made.f
	}
	id, path, err := m.ExportSnapshot(snap, c.parent, out, c.compress)
	if made != nil {
		// butterd holds its own copy of the descriptor.
		made.f.Close()
	}
	if err != nil {
		made.remove()
		return err
	}
	j, err := c.followJob(ctx, m, "export", id, c.quiet)
	var je *jobError
	if errors.As(err, &je) || err != nil && made.replacing() {
		made.remove()
	}
	if err != nil {
		return err
	}
	if err := made.commit(); err != nil {
		return err
	}
	if c.json {
		return c.printJSON(struct {
			JobID     uint32          `json:"job_id"`
			JobPath   dbus.ObjectPath `json:"job_path"`
			Result    string          `json:"result"`
			BytesDone uint64          `json:"bytes_done"`
			Snapshot  string          `json:"snapshot"`
			Parent    string          `json:"parent"`
			File      string          `json:"file"`
			Compress  bool            `json:"compressed"`
		}{id, path, j.Result, j.BytesDone, snap, c.parent, file, c.compress})
	}
	return nil
}

func roundDuration(d time.Duration) time.Duration {
	if d < time.Second {
		return d.Round(time.Millisecond)
	}
	return d.Round(100 * time.Millisecond)
}

// madeFile is an output file butterctl opened: removed again when the job
// fails, if it is a regular file (not a pipe or a device). With target set
// it is a temporary file that replaces target once the job succeeded.
type madeFile struct {
	f       *os.File
	path    string
	regular os.FileInfo // nil unless a regular file
	target  string      // the file --force replaces
}

// remove deletes the file, if it is a regular file and the path still
// names it. It accepts nil.
func (m *madeFile) remove() {
	if m == nil || m.regular == nil {
		return
	}
	if st, err := os.Lstat(m.path); err == nil && os.SameFile(st, m.regular) {
		os.Remove(m.path)
	}
}

// replacing tells whether m is a temporary file for --force.
func (m *madeFile) replacing() bool { return m != nil && m.target != "" }

// commit puts the finished temporary file of --force in place of its
// target. It accepts nil.
func (m *madeFile) commit() error {
	if !m.replacing() {
		return nil
	}
	err := atomicfile.Sync(m.path)
	if err == nil {
		err = os.Rename(m.path, m.target)
	}
	if err == nil {
		err = atomicfile.Sync(filepath.Dir(m.target))
	}
	if err != nil {
		m.remove()
		return &localError{fmt.Sprintf("cannot replace %s: %v", m.target, pathErr(err))}
	}
	return nil
}

// createOutput opens FILE for writing with the caller's own rights: it
// creates a new file; an existing regular file is refused unless force, and
// then a temporary file in its directory, with its mode, stands in for it
// until the export succeeds; an existing pipe or device is opened as it is
// (a pipe waits for its reader, or for ctx).
func createOutput(ctx context.Context, file string, force bool) (*madeFile, error) {
	target := ""
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666)
	if errors.Is(err, fs.ErrExist) {
		st, serr := os.Stat(file)
		switch {
		case serr != nil:
			// A dangling symbolic link: O_EXCL does not follow it.
			return nil, &localError{fmt.Sprintf("%s exists (%v): export never overwrites it", file, pathErr(serr))}
		case st.IsDir():
			return nil, &localError{fmt.Sprintf("%s is a directory: give a file name", file)}
		case st.Mode().IsRegular() && !force:
			return nil, &localError{fmt.Sprintf("%s exists: export never overwrites a file (use --force to replace it)", file)}
		case st.Mode().IsRegular():
			target = file
			f, err = os.CreateTemp(filepath.Dir(file), "."+filepath.Base(file)+".tmp-*")
			if err == nil {
				if err = f.Chmod(st.Mode().Perm()); err != nil {
					f.Close()
					os.Remove(f.Name())
				}
			}
		default:
			f, err = openWait(ctx, file)
		}
	}
	if err != nil {
		return nil, &localError{fmt.Sprintf("cannot write %s: %v", file, pathErr(err))}
	}
	m := &madeFile{f: f, path: f.Name(), target: target}
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
		m.regular = st
	}
	return m, nil
}

// openWait opens a pipe or device for writing; opening a pipe waits for a
// reader, and gives up when ctx ends.
func openWait(ctx context.Context, file string) (*os.File, error) {
	type opened struct {
		f   *os.File
		err error
	}
	ch := make(chan opened, 1)
	go func() {
		f, err := os.OpenFile(file, os.O_WRONLY, 0)
		ch <- opened{f, err}
	}()
	select {
	case o := <-ch:
		return o.f, o.err
	case <-ctx.Done():
		go func() {
			if o := <-ch; o.f != nil {
				o.f.Close()
			}
		}()
		return nil, errors.New("interrupted while waiting for a reader")
	}
}

// pathErr drops the "open FILE:" of a *fs.PathError.
func pathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

const jobsHelp = `Long operations run as butterd jobs: queued, running, then done, failed
or canceled. The verbs that start one wait for it and exit with its
result:
  ` + jobVerbs + `.
Snapshots that quiesce containers, and any snapshot that fails, are jobs
too. Finished jobs stay listed (butterd keeps a history) with their bytes
and error.

The table has ID, KIND, TARGET, STATE, PROGRESS ("-" while butterd cannot
tell how far a job is), BYTES, RATE and, for a job that failed or was
canceled, its ERROR. With ID, or with 'butterctl job ID', one job's
properties. With --json: a list of every job's properties and its "path".`

const jobHelp = `Prints every property of job ID, one a line: its kind, target and
state, progress, bytes and files done and rate, when it was created,
started and finished, its result, error and summary, and the snapshots it
made. For a snapshot job, Containers says how long each container was
paused or stopped, and Notes what else was done. With --json: the
properties as an object, with the job's object "path".

Finished jobs stay in butterd's history; an id that is not there, or no
longer, is not found (exit 3). 'butterctl jobs' lists them all.`

// jobsCmd is `jobs [ID]` and `job ID`.
type jobsCmd struct {
	*app
	one bool // job ID: the id is required
}

func (c *jobsCmd) Flags(*flag.FlagSet) {}

func (c *jobsCmd) Run(ctx context.Context, args []string) error {
	var err error
	if c.one {
		err = wantArgs(args, []string{"ID"})
	} else {
		err = wantArgs(args, nil, "ID")
	}
	if err != nil {
		return err
	}
	if len(args) == 1 {
		id, err := parseJobID(args[0])
		if err != nil {
			return err
		}
		return c.show(id)
	}
	m, err := c.bus()
	if err != nil {
		return err
	}
	rows, err := m.ListJobs()
	if err != nil {
		return err
	}
	ids := make([]uint32, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	all, err := m.JobsProperties(ids)
	if err != nil {
		return err
	}
	jobs := make([]map[string]dbus.Variant, 0, len(rows))
	for i, r := range rows {
		props := all[i]
		if props == nil {
			// Dropped from the history since ListJobs: what the row says.
			props = map[string]dbus.Variant{
				"Id": dbus.MakeVariant(r.ID), "Kind": dbus.MakeVariant(r.Kind), "Target": dbus.MakeVariant(r.Target),
				"State": dbus.MakeVariant(r.State), "Progress": dbus.MakeVariant(r.Progress),
			}
		}
		jobs = append(jobs, props)
	}
	if c.json {
		out := make([]map[string]any, len(jobs))
		for i, props := range jobs {
			out[i] = propsJSON(props)
			out[i]["path"] = rows[i].Path
		}
		return c.printJSON(out)
	}
	return jobTable(c.out, jobs)
}

// show prints one job's properties.
func (c *jobsCmd) show(id uint32) error {
	m, err := c.bus()
	if err != nil {
		return err
	}
	props, err := m.Properties(dbusapi.JobPath(id), dbusapi.JobIface)
	if err != nil {
		return err
	}
	if c.json {
		out := propsJSON(props)
		out["path"] = dbusapi.JobPath(id)
		return c.printJSON(out)
	}
	return propsText(c.out, props)
}

// jobTable writes the `jobs` table; the error shows for jobs that failed
// or were canceled.
func jobTable(w io.Writer, jobs []map[string]dbus.Variant) error {
	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "ID\tKIND\tTARGET\tSTATE\tPROGRESS\tBYTES\tRATE\tERROR")
	for _, props := range jobs {
		j := dbusapi.JobInfoOf(props)
		msg := ""
		if j.State == "failed" || j.State == "canceled" {
			msg = oneLine(j.Error)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", j.ID, j.Kind, j.Target, j.State,
			progressText(j.Progress), formatBytes(j.BytesDone), rateText(j.Rate), msg)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	// Rows without an error end in the padding of the RATE column.
	for line := range bytes.Lines(b.Bytes()) {
		if _, err := fmt.Fprintf(w, "%s\n", bytes.TrimRight(line, " \n")); err != nil {
			return err
		}
	}
	return nil
}

func progressText(f float64) string {
	if f < 0 {
		return "-"
	}
	return formatPercent(f)
}

func rateText(r float64) string {
	if r <= 0 {
		return "-"
	}
	return formatBytes(uint64(r)) + "/s"
}

type cancelCmd struct{ *app }

func (c *cancelCmd) Flags(*flag.FlagSet) {}

func (c *cancelCmd) Run(ctx context.Context, args []string) error {
	if err := wantArgs(args, []string{"ID"}); err != nil {
		return err
	}
	id, err := parseJobID(args[0])
	if err != nil {
		return err
	}
	m, err := c.bus()
	if err != nil {
		return err
	}
	if err := m.CancelJob(id); err != nil {
		if dbusapi.ErrorName(err) == dbusapi.ErrInvalidArgument {
			// The job already finished: a failed operation, not bad input.
			return errors.New(dbusapi.Message(err))
		}
		return err
	}
	if c.json {
		return c.printJSON(struct {
			Canceled uint32 `json:"canceled"`
		}{id})
	}
	return nil
}
