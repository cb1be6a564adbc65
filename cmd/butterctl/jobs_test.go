package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"butterd/dbusapi"
)

const (
	snapA = "v1@2026-11-22T20:57:08.947340"
	snapB = "v1@2026-11-22T21:57:08.000001"
)

// exportFake answers an export of snapA as job 7 that writes "STREAM" and
// ends with result.
func exportFake(result, msg string) *fake {
	return &fake{exportID: 7, written: "STREAM",
		ended: dbusapi.JobInfo{ID: 7, Kind: "export", Target: snapA, State: result, Result: result, Error: msg, Progress: 1, BytesDone: 6}}
}

func readOr(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return "<none>"
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// export SNAP FILE: checks the names, creates FILE, passes it to butterd,
// prints the job id on stderr (never stdout), waits, and exits 0.
func TestExport(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		calls  []string
		stderr string
	}{
		{[]string{"export", snapA}, []string{`GetSnapshot("` + snapA + `")`, `ExportSnapshot("` + snapA + `", "")`, "WaitJob(7)"},
			"job 7 started\njob 7 done: 6 B in "},
		{[]string{"export", "--parent", snapB, snapA}, []string{`GetSnapshot("` + snapA + `")`, `GetSnapshot("` + snapB + `")`,
			`ExportSnapshot("` + snapA + `", "` + snapB + `")`, "WaitJob(7)"}, "job 7 started\njob 7 done: "},
		{[]string{"export", snapA, "-q"}, []string{`GetSnapshot("` + snapA + `")`, `ExportSnapshot("` + snapA + `", "")`, "WaitJob(7)"},
			"job 7 started\n"},
		{[]string{"export", "--compress", snapA, "-o"}, []string{`GetSnapshot("` + snapA + `")`, `ExportSnapshot("` + snapA + `", "", compressed)`, "WaitJob(7)"},
			"job 7 started\njob 7 done: "},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "s.stream")
			f := exportFake("done", "")
			r := runWith(t, f, append(tc.args, file)...)
			if r.code != 0 || r.stdout != "" || !strings.HasPrefix(r.stderr, tc.stderr) {
				t.Fatalf("exit %d, stdout %q, stderr %q (want it to start %q)", r.code, r.stdout, r.stderr, tc.stderr)
			}
			if tc.stderr == "job 7 started\n" && r.stderr != tc.stderr {
				t.Errorf("--quiet: stderr %q", r.stderr)
			}
			if got := f.callList(); !slices.Equal(got, tc.calls) {
				t.Errorf("calls %q, want %q", got, tc.calls)
			}
			if got := readOr(t, file); got != "STREAM" {
				t.Errorf("FILE holds %q", got)
			}
			if st, err := os.Stat(file); err != nil || st.Mode().Perm()&^0o666 != 0 {
				t.Errorf("FILE: %v, %v", st.Mode(), err)
			}
		})
	}

	// --json prints the result on stdout.
	file := filepath.Join(t.TempDir(), "s.stream")
	r := runWith(t, exportFake("done", ""), "--json", "export", snapA, file)
	var got map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || r.code != 0 {
		t.Fatalf("--json: exit %d, %v: %q", r.code, err, r.stdout)
	}
	want := map[string]any{"job_id": 7.0, "job_path": "/io/butterd/volumes1/job/7", "result": "done", "bytes_done": 6.0,
		"snapshot": snapA, "parent": "", "file": file}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("--json: %s = %v, want %v", k, got[k], v)
		}
	}
}

// export SNAP -: the stream goes to stdout, every message to stderr.
func TestExportToStdout(t *testing.T) {
	out, err := os.Create(filepath.Join(t.TempDir(), "stdout"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	var errb bytes.Buffer
	f := exportFake("done", "")
	code := run(context.Background(), []string{"export", snapA, "-"}, out, &errb, func() (manager, error) { return f, nil })
	if code != 0 || !strings.HasPrefix(errb.String(), "job 7 started\n") {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
	if got := readOr(t, out.Name()); got != "STREAM" {
		t.Errorf("stdout holds %q, want the stream alone", got)
	}
	if _, err := out.Stat(); err != nil {
		t.Errorf("stdout was closed: %v", err)
	}
}

// An existing FILE is never overwritten without --force: exit 1, the file
// untouched, nothing exported. --force replaces it.
func TestExportNeverOverwrites(t *testing.T) {
	file := filepath.Join(t.TempDir(), "s.stream")
	if err := os.WriteFile(file, []byte("precious"), 0o640); err != nil {
		t.Fatal(err)
	}
	f := exportFake("done", "")
	r := runWith(t, f, "export", snapA, file)
	if r.code != exitFailed || r.stderr != "butterctl: "+file+" exists: export never overwrites a file (use --force to replace it)\n" {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
	if got := readOr(t, file); got != "precious" {
		t.Errorf("FILE holds %q", got)
	}
	if slices.ContainsFunc(f.callList(), func(c string) bool { return strings.HasPrefix(c, "ExportSnapshot") }) {
		t.Errorf("exported anyway: %q", f.callList())
	}

	// A symbolic link to a file is an existing file too.
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(file, link); err != nil {
		t.Fatal(err)
	}
	if r := runWith(t, exportFake("done", ""), "export", snapA, link); r.code != exitFailed || readOr(t, file) != "precious" {
		t.Errorf("through a link: exit %d, stderr %q, file %q", r.code, r.stderr, readOr(t, file))
	}
	// A directory is refused.
	if r := runWith(t, exportFake("done", ""), "export", snapA, t.TempDir()); r.code != exitFailed || !strings.Contains(r.stderr, "is a directory") {
		t.Errorf("directory: exit %d, stderr %q", r.code, r.stderr)
	}

	if r := runWith(t, exportFake("done", ""), "export", "--force", snapA, file); r.code != 0 {
		t.Fatalf("--force: exit %d, stderr %q", r.code, r.stderr)
	}
	if got := readOr(t, file); got != "STREAM" {
		t.Errorf("--force: FILE holds %q", got)
	}
	if st, err := os.Stat(file); err != nil || st.Mode().Perm() != 0o640 {
		t.Errorf("--force: FILE's mode %v (%v), want the old file's 0640", st.Mode(), err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(file)); len(entries) != 1 {
		t.Errorf("--force: the directory holds %v, want only FILE", entries)
	}

	// A device is written as is, without --force.
	if r := runWith(t, exportFake("done", ""), "export", snapA, os.DevNull); r.code != 0 {
		t.Errorf("%s: exit %d, stderr %q", os.DevNull, r.code, r.stderr)
	}
}

// A FILE that cannot be created is exit 1 and says why.
func TestExportCannotCreate(t *testing.T) {
	file := filepath.Join(t.TempDir(), "no", "such", "dir")
	r := runWith(t, exportFake("done", ""), "export", snapA, file)
	if r.code != exitFailed || r.stderr != "butterctl: cannot write "+file+": no such file or directory\n" {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
}

// When the job fails, butterctl exits 1 with the job's error in one line
// and removes the partial FILE; when butterd refuses the export, or the
// snapshot does not exist, no FILE is left either.
func TestExportFailure(t *testing.T) {
	file := filepath.Join(t.TempDir(), "s.stream")
	f := exportFake("failed", "send: no space left\non device")
	r := runWith(t, f, "export", snapA, file)
	if r.code != exitFailed || r.stderr != "job 7 started\nbutterctl: export job 7 failed: send: no space left on device\n" {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
	if got := readOr(t, file); got != "<none>" {
		t.Errorf("partial FILE left: %q", got)
	}

	// A file --force would replace stays as it was, and the stream's
	// temporary file is gone.
	os.WriteFile(file, []byte("old"), 0o644)
	if r := runWith(t, exportFake("failed", "boom"), "export", "--force", snapA, file); r.code != exitFailed || readOr(t, file) != "old" {
		t.Errorf("--force, failed: exit %d, file %q", r.code, readOr(t, file))
	}
	if entries, _ := os.ReadDir(filepath.Dir(file)); len(entries) != 1 {
		t.Errorf("--force, failed: the directory holds %v, want only the old file", entries)
	}
	os.Remove(file)

	f = exportFake("done", "")
	f.exportErr = dbusErr(dbusapi.ErrAccessDenied, `ExportSnapshot changes volumes: only root and members of group "butterd" may call it (caller uid 65534)`)
	r = runWith(t, f, "export", snapA, file)
	if r.code != exitDenied || !strings.HasPrefix(r.stderr, "butterctl: ExportSnapshot changes volumes") || readOr(t, file) != "<none>" {
		t.Errorf("denied: exit %d, stderr %q, file %q", r.code, r.stderr, readOr(t, file))
	}

	for _, args := range [][]string{{"export", "nosuch@x", file}, {"export", "--parent", "nosuch@x", snapA, file}} {
		f = exportFake("done", "")
		f.snapErrs = map[string]error{"nosuch@x": dbusErr(dbusapi.ErrNoSuchSnapshot, `no such snapshot "nosuch@x"`)}
		r = runWith(t, f, args...)
		if r.code != exitNotFound || r.stderr != "butterctl: no such snapshot \"nosuch@x\"\n" || readOr(t, file) != "<none>" {
			t.Errorf("%q: exit %d, stderr %q, file %q", args, r.code, r.stderr, readOr(t, file))
		}
		if slices.ContainsFunc(f.callList(), func(c string) bool { return strings.HasPrefix(c, "ExportSnapshot") }) {
			t.Errorf("%q: exported anyway: %q", args, f.callList())
		}
	}

	// Losing butterd while waiting: its error, and the job may still run,
	// so FILE stays.
	f = exportFake("", "")
	f.waitErr = dbusErr(busNoReply, "Did not receive a reply.")
	r = runWith(t, f, "export", snapA, file)
	if r.code != exitFailed || !strings.Contains(r.stderr, "butterd did not answer in time") || readOr(t, file) != "STREAM" {
		t.Errorf("wait error: exit %d, stderr %q, file %q", r.code, r.stderr, readOr(t, file))
	}
}

// Ctrl-C cancels the job, removes FILE and exits 130; a job canceled by
// someone else exits 130 too.
func TestExportCanceled(t *testing.T) {
	file := filepath.Join(t.TempDir(), "s.stream")
	f := exportFake("canceled", "canceled")
	f.block, f.canceled = true, make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out, errb bytes.Buffer
	code := run(ctx, []string{"export", snapA, file}, &out, &errb, func() (manager, error) { return f, nil })
	if code != exitCanceled || errb.String() != "job 7 started\nbutterctl: export job 7 canceled\n" {
		t.Errorf("exit %d, stderr %q", code, errb.String())
	}
	if !slices.Contains(f.callList(), "CancelJob(7)") {
		t.Errorf("calls %q: no CancelJob", f.callList())
	}
	if got := readOr(t, file); got != "<none>" {
		t.Errorf("FILE left: %q", got)
	}

	r := runWith(t, exportFake("canceled", "canceled"), "export", snapA, file)
	if r.code != exitCanceled || r.stderr != "job 7 started\nbutterctl: export job 7 canceled\n" {
		t.Errorf("canceled elsewhere: exit %d, stderr %q", r.code, r.stderr)
	}

	// The job ends done just as Ctrl-C comes: its result counts.
	f = exportFake("done", "")
	f.block, f.canceled = true, make(chan struct{})
	f.cancelErr = dbusErr(dbusapi.ErrInvalidArgument, "job 7 already finished (done)")
	close(f.canceled)
	code = run(ctx, []string{"export", snapA, file + "2"}, &out, &errb, func() (manager, error) { return f, nil })
	if code != 0 || readOr(t, file+"2") != "STREAM" {
		t.Errorf("done despite Ctrl-C: exit %d, file %q", code, readOr(t, file+"2"))
	}

	// A job that does not stop: butterctl gives up after cancelGrace.
	old := cancelGrace
	cancelGrace = 10 * time.Millisecond
	defer func() { cancelGrace = old }()
	f = exportFake("canceled", "")
	f.block, f.canceled = true, make(chan struct{})
	f.cancelErr = dbusErr(dbusapi.ErrFailed, "stuck")
	defer close(f.canceled)
	errb.Reset()
	code = run(ctx, []string{"export", snapA, file + "3"}, &out, &errb, func() (manager, error) { return f, nil })
	if code != exitFailed || !strings.Contains(errb.String(), "cannot cancel export job 7: stuck") {
		t.Errorf("stuck: exit %d, stderr %q", code, errb.String())
	}
}

// The job's result is the exit code.
func TestJobResultExitCode(t *testing.T) {
	for result, want := range map[string]int{"done": 0, "failed": exitFailed, "canceled": exitCanceled} {
		if r := runWith(t, exportFake(result, "x"), "export", snapA, filepath.Join(t.TempDir(), "f")); r.code != want {
			t.Errorf("%s: exit %d, want %d", result, r.code, want)
		}
	}
	for err, want := range map[error]int{
		&jobError{kind: "export", id: 3, result: "failed", msg: "boom"}:       exitFailed,
		&jobError{kind: "export", id: 3, result: "canceled", msg: "canceled"}: exitCanceled,
		&localError{"x exists"}: exitFailed,
	} {
		if code, _ := classify(err); code != want {
			t.Errorf("classify(%v) = %d, want %d", err, code, want)
		}
	}
}

func TestFormatBytes(t *testing.T) {
	for n, want := range map[uint64]string{
		0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 10 * 1024: "10 KiB",
		180 << 20: "180 MiB", 1288490188: "1.2 GiB", 5 << 40: "5.0 TiB", 1<<64 - 1: "16 EiB",
	} {
		if got := formatBytes(n); got != want {
			t.Errorf("formatBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestProgressLines(t *testing.T) {
	running := dbusapi.JobInfo{State: "running", Progress: -1, BytesDone: 1288490188, Rate: 180 << 20}
	half := dbusapi.JobInfo{State: "running", Progress: 0.42, BytesDone: 1288490188, Rate: 180 << 20}
	for _, tc := range []struct {
		j           dbusapi.JobInfo
		plain, term string
	}{
		{running, "export job 7: 1.2 GiB, 180 MiB/s", "export job 7: 1.2 GiB at 180 MiB/s"},
		{half, "export job 7: 1.2 GiB, 180 MiB/s, 42%", "export job 7 [##########..............]  42% 1.2 GiB at 180 MiB/s"},
		{dbusapi.JobInfo{State: "running", Progress: -1}, "export job 7: 0 B", "export job 7: 0 B"},
		{dbusapi.JobInfo{State: "queued", Progress: -1}, "export job 7: queued", "export job 7: queued"},
		{dbusapi.JobInfo{State: "running", Progress: 1.5, BytesDone: 10}, "export job 7: 10 B, 100%", "export job 7 [########################] 100% 10 B"},
	} {
		if got := plainLine("export", 7, tc.j); got != tc.plain {
			t.Errorf("plainLine(%+v) = %q, want %q", tc.j, got, tc.plain)
		}
		if got := termLine("export", 7, tc.j); got != tc.term {
			t.Errorf("termLine(%+v) = %q, want %q", tc.j, got, tc.term)
		}
		if len(termLine("export", 4294967295, tc.j)) > 79 {
			t.Errorf("termLine(%+v) is wider than a terminal", tc.j)
		}
	}
}

// On a terminal the line is redrawn in place and cleared at the end;
// otherwise a plain line at most every plainEvery; nothing with --quiet.
func TestProgressOutput(t *testing.T) {
	j := dbusapi.JobInfo{State: "running", Progress: -1, BytesDone: 2048, Rate: 1024}

	var b bytes.Buffer
	p := &progress{w: &b, term: true, kind: "export", id: 7, now: time.Now}
	p.update(j)
	p.update(j)
	p.stop()
	p.update(j)
	line := "\rexport job 7: 2.0 KiB at 1.0 KiB/s\x1b[K"
	if b.String() != line+line+"\r\x1b[K" {
		t.Errorf("terminal: %q", b.String())
	}
	if p.interval() != termEvery {
		t.Errorf("terminal interval %v", p.interval())
	}

	b.Reset()
	now := time.Unix(1000, 0)
	p = &progress{w: &b, kind: "export", id: 7, now: func() time.Time { return now }}
	p.start()
	for range 12 {
		now = now.Add(time.Second)
		p.update(j)
	}
	p.stop()
	want := strings.Repeat("export job 7: 2.0 KiB, 1.0 KiB/s\n", 2)
	if b.String() != want {
		t.Errorf("plain, 12 s: %q, want %q", b.String(), want)
	}

	b.Reset()
	p = &progress{w: &b, term: true, quiet: true, kind: "export", id: 7, now: time.Now}
	p.update(j)
	p.stop()
	if b.Len() != 0 || p.interval() != time.Second {
		t.Errorf("quiet: %q, interval %v", b.String(), p.interval())
	}
}

// The whole verb on a terminal and off one.
func TestExportProgress(t *testing.T) {
	steps := []dbusapi.JobInfo{
		{State: "queued", Progress: -1},
		{State: "running", Progress: -1, BytesDone: 3 << 20, Rate: 1 << 20},
	}
	old := isTerminal
	defer func() { isTerminal = old }()

	isTerminal = func(io.Writer) bool { return true }
	f := exportFake("done", "")
	f.steps = steps
	r := runWith(t, f, "export", snapA, filepath.Join(t.TempDir(), "f"))
	want := "job 7 started\n\rexport job 7: queued\x1b[K\rexport job 7: 3.0 MiB at 1.0 MiB/s\x1b[K\r\x1b[Kjob 7 done: 6 B in "
	if r.code != 0 || !strings.HasPrefix(r.stderr, want) || f.interval != termEvery {
		t.Errorf("terminal: exit %d, stderr %q, want it to start %q; interval %v", r.code, r.stderr, want, f.interval)
	}
	// Clear the line before an error.
	f = exportFake("failed", "boom")
	f.steps = steps
	r = runWith(t, f, "export", snapA, filepath.Join(t.TempDir(), "f"))
	if !strings.HasSuffix(r.stderr, "\x1b[K\r\x1b[Kbutterctl: export job 7 failed: boom\n") {
		t.Errorf("terminal, failed: stderr %q", r.stderr)
	}
	f = exportFake("done", "")
	f.steps = steps
	r = runWith(t, f, "export", "--quiet", snapA, filepath.Join(t.TempDir(), "f"))
	if r.stderr != "job 7 started\n" {
		t.Errorf("terminal, --quiet: stderr %q", r.stderr)
	}

	// Off a terminal, a wait this short prints no progress line.
	isTerminal = func(io.Writer) bool { return false }
	f = exportFake("done", "")
	f.steps = steps
	r = runWith(t, f, "export", snapA, filepath.Join(t.TempDir(), "f"))
	if !strings.HasPrefix(r.stderr, "job 7 started\njob 7 done: 6 B in ") || strings.Count(r.stderr, "\n") != 2 || f.interval != time.Second {
		t.Errorf("plain: stderr %q, interval %v", r.stderr, f.interval)
	}
}

func jobVariants(id uint32, kind, target, state string, progress float64, bytes uint64, rate float64, result, msg string) map[string]dbus.Variant {
	return map[string]dbus.Variant{
		"Id": dbus.MakeVariant(id), "Kind": dbus.MakeVariant(kind), "Target": dbus.MakeVariant(target),
		"State": dbus.MakeVariant(state), "Progress": dbus.MakeVariant(progress), "BytesDone": dbus.MakeVariant(bytes),
		"Rate": dbus.MakeVariant(rate), "Created": dbus.MakeVariant(created), "Started": dbus.MakeVariant(created + 1000),
		"Finished": dbus.MakeVariant(uint64(0)), "Result": dbus.MakeVariant(result), "Error": dbus.MakeVariant(msg),
	}
}

func jobsFake() *fake {
	return &fake{
		jobRows: []dbusapi.JobRow{
			{ID: 1, Path: dbusapi.JobPath(1), Kind: "export", Target: snapA, State: "done", Progress: 1},
			{ID: 2, Path: dbusapi.JobPath(2), Kind: "export", Target: snapB, State: "failed", Progress: -1},
			{ID: 3, Path: dbusapi.JobPath(3), Kind: "export", Target: snapB, State: "running", Progress: -1},
			{ID: 4, Path: dbusapi.JobPath(4), Kind: "export", Target: "gone@x", State: "canceled", Progress: -1},
		},
		jobProps: map[uint32]map[string]dbus.Variant{
			1: jobVariants(1, "export", snapA, "done", 1, 8<<20, 200<<20, "done", ""),
			2: jobVariants(2, "export", snapB, "failed", -1, 100, 10, "failed", "write stream: broken\npipe"),
			3: jobVariants(3, "export", snapB, "running", -1, 3<<30, 150<<20, "", ""),
		},
	}
}

func TestJobsTable(t *testing.T) {
	inZone(t)
	f := jobsFake()
	r := runWith(t, f, "jobs")
	want := "" +
		"ID   KIND     TARGET                          STATE      PROGRESS   BYTES     RATE        ERROR\n" +
		"1    export   v1@2026-11-22T20:57:08.947340   done       100%       8.0 MiB   200 MiB/s\n" +
		"2    export   v1@2026-11-22T21:57:08.000001   failed     -          100 B     10 B/s      write stream: broken pipe\n" +
		"3    export   v1@2026-11-22T21:57:08.000001   running    -          3.0 GiB   150 MiB/s\n" +
		"4    export   gone@x                          canceled   -          0 B       -\n"
	if r.code != 0 || r.stdout != want {
		t.Errorf("exit %d, stderr %q, table:\n%s\nwant:\n%s", r.code, r.stderr, r.stdout, want)
	}
	if got := f.callList(); !slices.Equal(got, []string{"ListJobs()", "JobsProperties([1 2 3 4])"}) {
		t.Errorf("calls %q", got)
	}

	r = runWith(t, jobsFake(), "jobs", "--json")
	var got []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	if len(got) != 4 || got[0]["id"] != 1.0 || got[0]["path"] != "/io/butterd/volumes1/job/1" || got[0]["state"] != "done" ||
		got[0]["bytes_done"] != float64(8<<20) || got[0]["created"] != "2026-11-22T20:57:08.947340+01:00" ||
		got[0]["started"] != "2026-11-22T20:57:08.948340+01:00" || got[0]["finished"] != nil ||
		got[1]["error"] != "write stream: broken\npipe" || got[1]["result"] != "failed" || got[2]["progress"] != -1.0 ||
		got[3]["state"] != "canceled" || got[3]["target"] != "gone@x" {
		t.Errorf("jobs --json: %s", r.stdout)
	}

	r = runWith(t, &fake{}, "jobs")
	if r.code != 0 || r.stdout != "ID   KIND   TARGET   STATE   PROGRESS   BYTES   RATE   ERROR\n" {
		t.Errorf("no jobs: %q", r.stdout)
	}
	if r = runWith(t, &fake{}, "jobs", "--json"); strings.TrimSpace(r.stdout) != "[]" {
		t.Errorf("no jobs, --json: %q", r.stdout)
	}
}

func TestJobShow(t *testing.T) {
	inZone(t)
	for _, args := range [][]string{{"jobs", "2"}, {"job", "2"}} {
		f := &fake{props: jobVariants(2, "export", snapB, "failed", -1, 8<<20, 10, "failed", "boom")}
		r := runWith(t, f, args...)
		want := "" +
			"Id:        2\n" +
			"Kind:      export\n" +
			"Target:    " + snapB + "\n" +
			"State:     failed\n" +
			"Result:    failed\n" +
			"Progress:  -\n" +
			"BytesDone: 8.0 MiB (8388608 bytes)\n" +
			"Rate:      10 B/s\n" +
			"Created:   2026-11-22 20:57:08\n" +
			"Started:   2026-11-22 20:57:08\n" +
			"Finished:  -\n" +
			"Error:     boom\n"
		if r.code != 0 || r.stdout != want {
			t.Errorf("%q: exit %d, stderr %q, text:\n%s\nwant:\n%s", args, r.code, r.stderr, r.stdout, want)
		}
		if got := f.callList(); !slices.Equal(got, []string{"Properties(/io/butterd/volumes1/job/2, io.butterd.volumes1.Job)"}) {
			t.Errorf("%q: calls %q", args, got)
		}
	}
	f := &fake{props: jobVariants(2, "export", snapB, "running", 0.5, 8<<20, 10, "", "")}
	r := runWith(t, f, "job", "2", "--json")
	var got map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatal(err)
	}
	if got["id"] != 2.0 || got["progress"] != 0.5 || got["bytes_done"] != float64(8<<20) || got["result"] != "" ||
		got["path"] != "/io/butterd/volumes1/job/2" || got["finished"] != nil {
		t.Errorf("job --json: %s", r.stdout)
	}

	r = runWith(t, &fake{err: dbusErr(dbusapi.ErrNotFound, "no such job 9 (butterctl jobs lists them)")}, "job", "9")
	if r.code != exitNotFound || r.stderr != "butterctl: no such job 9 (butterctl jobs lists them)\n" {
		t.Errorf("unknown job: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestCancel(t *testing.T) {
	f := &fake{}
	if r := runWith(t, f, "cancel", "7"); r.code != 0 || r.stdout != "" || r.stderr != "" || !slices.Equal(f.callList(), []string{"CancelJob(7)"}) {
		t.Errorf("cancel 7: exit %d, stdout %q, stderr %q, calls %q", r.code, r.stdout, r.stderr, f.callList())
	}
	if r := runWith(t, &fake{}, "cancel", "--json", "7"); strings.Join(strings.Fields(r.stdout), "") != `{"canceled":7}` {
		t.Errorf("cancel --json: %q", r.stdout)
	}
	r := runWith(t, &fake{err: dbusErr(dbusapi.ErrInvalidArgument, "job 7 already finished (done)")}, "cancel", "7")
	if r.code != exitFailed || r.stderr != "butterctl: job 7 already finished (done)\n" {
		t.Errorf("finished: exit %d, stderr %q", r.code, r.stderr)
	}
	r = runWith(t, &fake{err: dbusErr(busAccessDenied, "Rejected")}, "cancel", "7")
	if r.code != exitDenied {
		t.Errorf("denied: exit %d, stderr %q", r.code, r.stderr)
	}
}

// isatty tells a terminal from a file.
func TestIsatty(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "x")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if isatty(f) {
		t.Error("a file is a terminal")
	}
	tty, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0) // a pseudo-terminal, there even without one
	if err != nil {
		t.Fatalf("open /dev/ptmx: %v", err)
	}
	defer tty.Close()
	if !isatty(tty) {
		t.Error("/dev/ptmx is not a terminal")
	}
}
