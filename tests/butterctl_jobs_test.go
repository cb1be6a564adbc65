package tests

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"butterd/tests/testenv"
)

// butterctl export, jobs, job and cancel against a real butterd on a
// private system bus with the project's policy: the stream butterd writes
// into the file butterctl opened is a valid send stream that `btrfs
// receive` applies on another BTRFS.

// startJobsEnv is startButterdOnBus that also returns the bus, for busctl.
func startJobsEnv(t *testing.T, extraPolicies ...string) (*ctlEnv, *testenv.Bus) {
	t.Helper()
	testenv.Root(t)
	testenv.Command(t, "btrfs")
	buildButterctl(t)
	bus := testenv.StartBus(t, extraPolicies...)
	root := filepath.Join(testenv.Btrfs(t), "root")
	sock := filepath.Join(t.TempDir(), "btrfs.sock")
	testenv.StartButterdWith(t, root, sock, testenv.ButterdOptions{Bus: bus})
	return newCtl(t, bus), bus
}

var jobStarted = regexp.MustCompile(`^job (\d+) started\n`)

// exportOK runs butterctl export, requires exit 0, nothing on stdout and
// "job N started" first on stderr, and returns N.
func (c *ctlEnv) exportOK(args ...string) uint32 {
	c.t.Helper()
	r := c.run(append([]string{"export"}, args...)...)
	m := jobStarted.FindStringSubmatch(r.stderr)
	if r.code != 0 || r.stdout != "" || m == nil || !strings.Contains(r.stderr, "job "+m[1]+" done: ") {
		c.t.Fatalf("butterctl export %s: exit %d, stdout %q, stderr %q", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	id, _ := strconv.ParseUint(m[1], 10, 32)
	return uint32(id)
}

// newVolume creates a volume through butterctl and returns its mount point.
func (c *ctlEnv) newVolume(name string) string {
	c.t.Helper()
	c.ok("volume", "create", name)
	var info map[string]any
	c.okJSON(&info, "volume", "inspect", name)
	return info["mountpoint"].(string)
}

// sameFiles requires the files named in want to hold the same bytes in
// both directories, and dir to hold no others.
func sameFiles(t *testing.T, want, got string, names ...string) {
	t.Helper()
	for _, name := range names {
		a, err := os.ReadFile(filepath.Join(want, name))
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(got, name))
		if err != nil {
			t.Errorf("received copy: %v", err)
			continue
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s: the received copy differs (%d bytes, want %d)", name, len(b), len(a))
		}
	}
	entries, err := os.ReadDir(got)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(names) {
		var have []string
		for _, e := range entries {
			have = append(have, e.Name())
		}
		t.Errorf("%s holds %q, want %q", got, have, names)
	}
}

func btrfsReceive(t *testing.T, stream, dir string) {
	t.Helper()
	out, err := exec.Command("btrfs", "receive", "-f", stream, dir).CombinedOutput()
	if err != nil {
		t.Fatalf("btrfs receive -f %s %s: %v\n%s", stream, dir, err, out)
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

func TestButterctlExport(t *testing.T) {
	ctl, bus := startJobsEnv(t)
	vol := ctl.newVolume("v1")

	big := make([]byte, 8<<20)
	rng := rand.NewChaCha8([32]byte{1, 2, 3})
	rng.Read(big)
	if err := os.WriteFile(filepath.Join(vol, "big.bin"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(vol, "small.txt"), []byte("one\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	snap1 := snapName(t, ctl.ok("snapshot", "v1"), "v1")

	out := t.TempDir()
	full := filepath.Join(out, "full.stream")
	id1 := ctl.exportOK(snap1, full)
	recv := testenv.Btrfs(t)
	btrfsReceive(t, full, recv)
	sameFiles(t, vol, filepath.Join(recv, snap1), "big.bin", "small.txt")

	// An incremental stream after a small change: much smaller, and it
	// applies on top of the received parent.
	if err := os.WriteFile(filepath.Join(vol, "small.txt"), []byte("two\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(vol, "new.txt"), []byte("new\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	snap2 := snapName(t, ctl.ok("snapshot", "v1"), "v1")
	incr := filepath.Join(out, "incr.stream")
	id2 := ctl.exportOK("--parent", snap1, snap2, incr)
	if fs, is := fileSize(t, full), fileSize(t, incr); fs < 8<<20 || is*100 > fs {
		t.Errorf("full stream %d bytes, incremental %d: want the incremental one under 1%% of the full one", fs, is)
	}
	btrfsReceive(t, incr, recv)
	sameFiles(t, vol, filepath.Join(recv, snap2), "big.bin", "new.txt", "small.txt")

	// To standard output, into a pipe: the same stream.
	piped := testenv.Btrfs(t)
	sh := exec.Command("bash", "-o", "pipefail", "-c", `"$0" export "$1" - | btrfs receive "$2"`, ctl.bin, snap1, piped)
	sh.Env = ctl.env
	if shOut, err := sh.CombinedOutput(); err != nil || !regexp.MustCompile(`(?m)^job \d+ started$`).Match(shOut) {
		t.Fatalf("butterctl export %s - | btrfs receive: %v\n%s", snap1, err, shOut)
	}
	sameFiles(t, filepath.Join(recv, snap1), filepath.Join(piped, snap1), "big.bin", "small.txt")

	// jobs lists both jobs as done, with their bytes; then the piped one.
	table := strings.Split(strings.TrimSuffix(ctl.ok("jobs"), "\n"), "\n")
	if len(table) != 4 || !strings.HasPrefix(table[0], "ID") || !strings.Contains(table[0], "ERROR") {
		t.Fatalf("jobs:\n%s", strings.Join(table, "\n"))
	}
	for i, want := range []struct {
		id     uint32
		target string
	}{{id1, snap1}, {id2, snap2}} {
		f := strings.Fields(table[i+1])
		if len(f) < 8 || f[0] != fmt.Sprint(want.id) || f[1] != "export" || f[2] != want.target || f[3] != "done" ||
			f[4] != "100%" || f[5] == "0" || !strings.HasSuffix(f[6], "B") {
			t.Errorf("jobs row %q: want job %d, export, %s, done, 100%%, its bytes", table[i+1], want.id, want.target)
		}
	}
	var jobs []struct {
		ID        uint32  `json:"id"`
		Path      string  `json:"path"`
		Kind      string  `json:"kind"`
		Target    string  `json:"target"`
		State     string  `json:"state"`
		Result    string  `json:"result"`
		Progress  float64 `json:"progress"`
		BytesDone int64   `json:"bytes_done"`
		Error     string  `json:"error"`
		Finished  *string `json:"finished"`
	}
	ctl.okJSON(&jobs, "jobs")
	if len(jobs) != 3 {
		t.Fatalf("jobs --json: %+v", jobs)
	}
	for i, want := range []struct {
		id     uint32
		target string
		size   int64
	}{{id1, snap1, fileSize(t, full)}, {id2, snap2, fileSize(t, incr)}} {
		j := jobs[i]
		if j.ID != want.id || j.Path != fmt.Sprintf("/io/butterd/volumes1/job/%d", want.id) || j.Kind != "export" ||
			j.Target != want.target || j.State != "done" || j.Result != "done" || j.Progress != 1 ||
			j.BytesDone != want.size || j.Error != "" || j.Finished == nil {
			t.Errorf("jobs --json [%d]: %+v, want job %d done with %d bytes", i, j, want.id, want.size)
		}
	}

	// One job: butterctl job ID and busctl get-property.
	text := ctl.ok("job", fmt.Sprint(id1))
	for _, want := range []string{"Id:", "Kind:", "export\n", "Result:", "done\n", "BytesDone:", "Finished:"} {
		if !strings.Contains(text, want) {
			t.Errorf("job %d lacks %q:\n%s", id1, want, text)
		}
	}
	if text2 := ctl.ok("jobs", fmt.Sprint(id1)); text2 != text {
		t.Errorf("jobs %d printed\n%s\nand job %d\n%s", id1, text2, id1, text)
	}
	props, stderr, err := runBusctl(bus, nil, "--json=short", "get-property", "io.butterd.volumes1",
		fmt.Sprintf("/io/butterd/volumes1/job/%d", id1), "io.butterd.volumes1.Job", "Progress", "BytesDone", "Result")
	if err != nil {
		t.Fatalf("busctl get-property: %v: %s", err, stderr)
	}
	var got []string
	for line := range strings.Lines(props) {
		var v struct {
			Type string          `json:"type"`
			Data json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("busctl printed %q: %v", props, err)
		}
		// busctl writes doubles as 1.000000000000000000000e+00.
		if f, err := strconv.ParseFloat(string(v.Data), 64); v.Type == "d" && err == nil {
			v.Data = json.RawMessage(strconv.FormatFloat(f, 'g', -1, 64))
		}
		got = append(got, v.Type+":"+string(v.Data))
	}
	if want := []string{"d:1", fmt.Sprintf("t:%d", fileSize(t, full)), `s:"done"`}; !slices.Equal(got, want) {
		t.Errorf("busctl get-property Progress BytesDone Result: %q, want %q", got, want)
	}

	// An existing FILE is left alone without --force.
	before := readFile(t, full)
	ctl.fails(1, full+" exists: export never overwrites a file (use --force to replace it)", "export", snap2, full)
	if readFile(t, full) != before {
		t.Errorf("export without --force changed %s", full)
	}
	// With --force it is replaced.
	ctl.exportOK("--force", "--parent", snap1, snap2, full)
	if fileSize(t, full) != fileSize(t, incr) {
		t.Errorf("export --force: %s holds %d bytes, want the incremental stream's %d", full, fileSize(t, full), fileSize(t, incr))
	}

	// Unknown snapshots: exit 3, and no file.
	nofile := filepath.Join(out, "none.stream")
	ctl.fails(3, `no such snapshot "v1@2000-01-01T00:00:00.000000"`, "export", "v1@2000-01-01T00:00:00.000000", nofile)
	ctl.fails(3, `no such snapshot "v1@2000-01-01T00:00:00.000000"`, "export", "--parent", "v1@2000-01-01T00:00:00.000000", snap2, nofile)
	if _, err := os.Lstat(nofile); !os.IsNotExist(err) {
		t.Errorf("export of an unknown snapshot left %s: %v", nofile, err)
	}

	// Finished jobs cannot be canceled; unknown ones are not found.
	ctl.fails(1, fmt.Sprintf("job %d already finished (done)", id1), "cancel", fmt.Sprint(id1))
	ctl.fails(3, "no such job 999", "cancel", "999")
	ctl.fails(3, "no such job 999", "job", "999")

	// uid 65534 opens the file itself (in a directory it may write) and
	// the bus refuses the export: exit 4, and no file left.
	shared := worldWritableDir(t)
	nobody := ctl.nobody()
	nobody.fails(4, "access denied by the system bus policy", "export", snap1, filepath.Join(shared, "n.stream"))
	if entries, _ := os.ReadDir(shared); len(entries) != 0 {
		t.Errorf("a refused export left %v", entries)
	}
}

// Ctrl-C cancels the job and exits 130. The export goes into a FIFO that
// the test reads slowly, so that the job runs until the signal; meanwhile
// butterctl, whose stderr is no terminal, prints plain progress lines.
func TestButterctlExportInterrupted(t *testing.T) {
	ctl, _ := startJobsEnv(t)
	ctl.ok("volume", "create", "v1")
	var info map[string]any
	ctl.okJSON(&info, "volume", "inspect", "v1")
	big := make([]byte, 4<<20)
	rand.NewChaCha8([32]byte{4}).Read(big)
	if err := os.WriteFile(filepath.Join(info["mountpoint"].(string), "big.bin"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	snap := snapName(t, ctl.ok("snapshot", "v1"), "v1")

	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(ctl.bin, "export", snap, fifo)
	cmd.Env = ctl.env
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	next := func() string {
		t.Helper()
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("butterctl closed its stderr")
			}
			return l
		case <-time.After(30 * time.Second):
			t.Fatal("butterctl printed nothing for 30 s")
		}
		return ""
	}
	r, err := os.Open(fifo)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := io.ReadFull(r, make([]byte, 64<<10)); err != nil {
		t.Fatalf("read the stream: %v", err)
	}
	m := regexp.MustCompile(`^job (\d+) started$`).FindStringSubmatch(next())
	if m == nil {
		t.Fatal("butterctl did not print the job id first")
	}
	id := m[1]
	// A plain line within plainEvery (5 s) and a bit: bytes and rate, no
	// percentage (export cannot tell how far it is).
	if l := next(); !regexp.MustCompile(`^export job ` + id + `: \d+(\.\d)? [KM]iB, \d+(\.\d)? [KM]?i?B/s$`).MatchString(l) {
		t.Errorf("progress line %q, want \"export job %s: BYTES, RATE/s\"", l, id)
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, r)
	var rest []string
	for l := range lines {
		rest = append(rest, l)
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 {
		t.Errorf("after Ctrl-C: %v, want exit 130", err)
	}
	if want := "butterctl: export job " + id + " canceled"; len(rest) == 0 || rest[len(rest)-1] != want {
		t.Errorf("after Ctrl-C, stderr %q, want it to end %q", rest, want)
	}
	var job map[string]any
	ctl.okJSON(&job, "job", id)
	if job["state"] != "canceled" || job["result"] != "canceled" {
		t.Errorf("job %s after Ctrl-C: %v", id, job)
	}
}

// worldWritableDir is a fresh directory every user may write.
func worldWritableDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "butterctl-export-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	return dir
}

// With a policy that lets everyone call butterd, butterd itself refuses
// the export of uid 65534, which got as far as passing its own open file:
// exit 4 with butterd's message, and no file left.
func TestButterctlExportDeniedByButterd(t *testing.T) {
	const loose = `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <policy context="default">
    <allow send_destination="io.butterd.volumes1"/>
  </policy>
</busconfig>
`
	ctl, _ := startJobsEnv(t, loose)
	ctl.ok("volume", "create", "v1")
	snap := snapName(t, ctl.ok("snapshot", "v1"), "v1")
	shared := worldWritableDir(t)
	nobody := ctl.nobody()
	nobody.fails(4, `ExportSnapshot changes volumes: only root and members of group "butterd" may call it`,
		"export", snap, filepath.Join(shared, "n.stream"))
	if entries, _ := os.ReadDir(shared); len(entries) != 0 {
		t.Errorf("a refused export left %v", entries)
	}
	// Reads stay open: uid 65534 lists jobs (none ran).
	if out := nobody.ok("jobs"); strings.Count(out, "\n") != 1 {
		t.Errorf("jobs as uid 65534: %q", out)
	}
	nobody.fails(4, "CancelJob changes volumes", "cancel", "1")
}
