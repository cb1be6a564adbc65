package tests

// Consistent snapshots with a real dockerd: butterd finds the containers
// using a volume through the Docker Engine API and quiesces them as their
// labels ask. Like the other Docker tests, none runs in parallel.

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"butterd/tests/testenv"
)

// consistentEnv is a dockerd, then butterd on a private bus with that
// dockerd as its Docker Engine API (butterd connects to it lazily), and
// butterctl on the bus.
type consistentEnv struct {
	dockerEnv
	bus *testenv.Bus
	ctl *ctlEnv
}

func startConsistentEnv(t *testing.T) *consistentEnv {
	t.Helper()
	testenv.Command(t, "btrfs")
	dataRoot := filepath.Join(testenv.Btrfs(t), "butterd")
	bus := testenv.StartBus(t)
	dk := testenv.StartDocker(t)
	d := testenv.StartButterdWith(t, dataRoot, testenv.PluginSocket, testenv.ButterdOptions{
		Bus: bus, Args: []string{"--docker-host=unix://" + dk.Socket}})
	e := &consistentEnv{dockerEnv: dockerEnv{dataRoot: dataRoot, butterd: d, docker: dk}, bus: bus, ctl: newCtl(t, bus)}
	e.removeContainersFirst(t)
	return e
}

// removeContainersFirst removes every container before the cleanups
// registered so far run (they run last first): the containers go while
// butterd serves, so that Docker can unmount their volumes.
func (e *consistentEnv) removeContainersFirst(t testing.TB) {
	t.Cleanup(func() {
		if ids, err := e.docker.Run("ps", "-aq"); err == nil && strings.TrimSpace(ids) != "" {
			e.docker.Run(append([]string{"rm", "-f"}, strings.Fields(ids)...)...)
		}
	})
}

// runContainer starts a container in the background with labels (KEY=VALUE)
// and the volumes (VOL:/PATH), running script.
func (e *consistentEnv) runContainer(t *testing.T, name string, labels, volumes []string, script string) {
	t.Helper()
	args := []string{"run", "-d", "--network", "none", "--name", name}
	for _, l := range labels {
		args = append(args, "--label", l)
	}
	for _, v := range volumes {
		args = append(args, "-v", v)
	}
	e.docker.MustRun(append(args, testenv.Image, "sh", "-c", script)...)
}

// state is a container's state: running, paused, exited...
func (e *consistentEnv) state(t *testing.T, name string) string {
	t.Helper()
	return e.docker.MustRun("inspect", "-f", "{{.State.Status}}", name)
}

// lastJob is the newest job's properties as butterctl --json job shows
// them.
func (e *consistentEnv) lastJob(t *testing.T) map[string]any {
	t.Helper()
	var jobs []map[string]any
	if err := json.Unmarshal([]byte(e.ctl.ok("--json", "jobs")), &jobs); err != nil || len(jobs) == 0 {
		t.Fatalf("butterctl --json jobs: %v, %d jobs", err, len(jobs))
	}
	id := fmt.Sprint(jobs[len(jobs)-1]["id"])
	var j map[string]any
	if err := json.Unmarshal([]byte(e.ctl.ok("--json", "job", id)), &j); err != nil {
		t.Fatal(err)
	}
	return j
}

// containerOf finds a container's entry in a job's containers:
// [name, action, held_usec, note].
func containerOf(t *testing.T, job map[string]any, name string) []any {
	t.Helper()
	list, _ := job["containers"].([]any)
	for _, c := range list {
		if row, ok := c.([]any); ok && len(row) == 4 && row[0] == name {
			return row
		}
	}
	t.Fatalf("job %v has no entry for container %q", job, name)
	return nil
}

// waitFile waits until path holds a line.
func waitFile(t *testing.T, path string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if b, err := os.ReadFile(path); err == nil && strings.Contains(string(b), "\n") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s stayed empty", path)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// lastNumber is the number on the last complete line of a file.
func lastNumber(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	s = s[:strings.LastIndexByte(s, '\n')+1]
	lines := strings.Fields(s)
	if len(lines) == 0 {
		t.Fatalf("%s holds no complete line: %q", path, b)
	}
	n, err := strconv.Atoi(lines[len(lines)-1])
	if err != nil {
		t.Fatalf("%s: last line %q", path, lines[len(lines)-1])
	}
	return n
}

// frozen tells whether a container's cgroup is frozen (as while Docker
// pauses it), through the cgroup v1 freezer (freezer.state FROZEN) or
// cgroup v2 (cgroup.events "frozen 1"), whichever the machine has.
func (e *consistentEnv) frozen(t *testing.T, name string) func() bool {
	t.Helper()
	pid := e.docker.MustRun("inspect", "-f", "{{.State.Pid}}", name)
	b, err := os.ReadFile("/proc/" + pid + "/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	read := func(path string) string {
		b, _ := os.ReadFile(path)
		return string(b)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		if v1 := filepath.Join("/sys/fs/cgroup/freezer", f[2], "freezer.state"); f[1] == "freezer" && exists(v1) {
			return func() bool { return strings.TrimSpace(read(v1)) == "FROZEN" }
		}
		for _, root := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
			if v2 := filepath.Join(root, f[2], "cgroup.events"); f[0] == "0" && f[1] == "" && exists(v2) && exists(filepath.Join(root, f[2], "cgroup.freeze")) {
				return func() bool { return slices.Contains(strings.Split(read(v2), "\n"), "frozen 1") }
			}
		}
	}
	testenv.Need(t, false, "needs the cgroup v1 freezer or cgroup v2 freezing (to see the pause from outside)")
	return nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// A container writing a counter every millisecond is paused around the
// snapshot: the snapshot's last value is the one the file held while the
// container was frozen, and the container writes on afterwards.
func TestConsistentPauseAroundSnapshot(t *testing.T) {
	e := startConsistentEnv(t)
	e.docker.MustRun("volume", "create", "-d", "btrfs", "data")
	e.runContainer(t, "writer", []string{"butterd.action=pause"}, []string{"data:/data"},
		"i=0; while :; do i=$((i+1)); echo $i >> /data/counter; usleep 1000; done")
	counter := filepath.Join(e.volumePath("data"), "counter")
	waitFile(t, counter)
	frozen := e.frozen(t, "writer")

	// Watch the container from outside: the counter's value while its
	// cgroup is frozen (read between two reads that both say FROZEN).
	var mu sync.Mutex
	atPause, frozenSeen := -1, 0
	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if frozen() {
				b, err := os.ReadFile(counter)
				if err == nil && frozen() {
					s := strings.TrimSpace(string(b))
					n, _ := strconv.Atoi(s[strings.LastIndexByte(s, '\n')+1:])
					mu.Lock()
					atPause, frozenSeen = n, frozenSeen+1
					mu.Unlock()
				}
			}
			time.Sleep(100 * time.Microsecond)
		}
	}()
	snap := strings.TrimSpace(e.ctl.ok("snapshot", "data"))
	close(stop)
	<-watched

	if frozenSeen == 0 {
		t.Fatalf("the writer's cgroup was never seen frozen during butterctl snapshot")
	}
	got := lastNumber(t, filepath.Join(e.dataRoot, "snapshots", snap, "counter"))
	if got != atPause {
		t.Errorf("snapshot %s ends at %d; while the writer was paused the file ended at %d", snap, got, atPause)
	}
	if st := e.state(t, "writer"); st != "running" {
		t.Errorf("writer is %s after the snapshot, want running", st)
	}
	// It writes on.
	deadline := time.Now().Add(30 * time.Second)
	for lastNumber(t, counter) <= got && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := lastNumber(t, counter); n <= got {
		t.Errorf("the writer stopped writing after the snapshot: counter at %d", n)
	}

	// The job history keeps how long it was paused.
	job := e.lastJob(t)
	if job["kind"] != "snapshot" || job["result"] != "done" || fmt.Sprint(job["snapshots"]) != "["+snap+"]" {
		t.Errorf("last job %v: want a done snapshot job that made %s", job, snap)
	}
	if c := containerOf(t, job, "writer"); c[1] != "pause" || c[2].(float64) <= 0 {
		t.Errorf("job's entry for the writer: %v, want pause held for some time", c)
	}
}

// Pre and post commands run in the container, as the label's user, before
// and after the snapshot: the snapshot holds the pre command's line, not
// the post command's.
func TestConsistentPrePostOrder(t *testing.T) {
	e := startConsistentEnv(t)
	e.docker.MustRun("volume", "create", "-d", "btrfs", "app")
	e.run(t, "app", "chmod 777 /data")
	e.runContainer(t, "app", []string{
		"butterd.action=pause", "butterd.user=65534:65534",
		"butterd.pre=echo pre $(id -u) >> /data/order",
		"butterd.post=echo post $(id -u) >> /data/order",
	}, []string{"app:/data"}, "sleep 300")

	// A container without butterd's labels asks for nothing: the snapshot
	// of its volume is a plain one, no job.
	e.docker.MustRun("volume", "create", "-d", "btrfs", "other")
	e.runContainer(t, "plain", nil, []string{"other:/data"}, "sleep 300")
	e.ctl.ok("snapshot", "other")
	if jobs := e.ctl.ok("jobs"); strings.Count(jobs, "\n") != 1 {
		t.Errorf("a snapshot of a volume no labelled container uses left jobs:\n%s", jobs)
	}

	snap := strings.TrimSpace(e.ctl.ok("snapshot", "app"))
	requireFile(t, filepath.Join(e.dataRoot, "snapshots", snap, "order"), "pre 65534\n")
	requireFile(t, filepath.Join(e.volumePath("app"), "order"), "pre 65534\npost 65534\n")
	if st := e.state(t, "app"); st != "running" {
		t.Errorf("container is %s after the snapshot, want running", st)
	}
	c := containerOf(t, e.lastJob(t), "app")
	if c[3] != "pre: exit code 0; post: exit code 0" {
		t.Errorf("job's note for the container: %q", c[3])
	}
}

// A failing pre command with on-error=abort (the default) takes no
// snapshot, runs the post command, and leaves the container running; the
// failed job is in the history.
func TestConsistentPreAbort(t *testing.T) {
	e := startConsistentEnv(t)
	e.docker.MustRun("volume", "create", "-d", "btrfs", "db")
	e.runContainer(t, "db", []string{
		"butterd.action=pause",
		"butterd.pre=echo cannot flush >&2; exit 3",
		"butterd.post=touch /data/post-ran",
	}, []string{"db:/data"}, "sleep 300")

	r := e.ctl.run("snapshot", "db")
	if r.code != 1 || !strings.Contains(r.stderr, `pre command of container "db" failed (exit code 3: cannot flush): no snapshot taken`) {
		t.Errorf("butterctl snapshot db: exit %d, stderr %q", r.code, r.stderr)
	}
	if snaps := e.snapshotsOf(t, "db"); len(snaps) != 0 {
		t.Errorf("snapshots %q after an aborted pre command", snaps)
	}
	if out := e.ctl.ok("snapshots", "db"); out != "" {
		t.Errorf("butterctl snapshots db: %q", out)
	}
	if st := e.state(t, "db"); st != "running" {
		t.Errorf("container is %s, want running", st)
	}
	if _, err := os.Stat(filepath.Join(e.volumePath("db"), "post-ran")); err != nil {
		t.Errorf("the post command did not run after the failed pre command: %v", err)
	}
	job := e.lastJob(t)
	if job["kind"] != "snapshot" || job["result"] != "failed" || !strings.Contains(fmt.Sprint(job["error"]), "exit code 3") {
		t.Errorf("last job %v: want the failed snapshot job", job)
	}
}

// A pre command whose output is not text (a byte that is not UTF-8, a NUL,
// an escape character) still fails the snapshot with its own cause, and the
// job stays readable on the bus for everyone: the bad bytes show as U+FFFD.
func TestConsistentPreOutputNotText(t *testing.T) {
	e := startConsistentEnv(t)
	e.docker.MustRun("volume", "create", "-d", "btrfs", "db")
	e.runContainer(t, "db", []string{
		"butterd.action=pause",
		`butterd.pre=printf 'bad \377 \000 \033 end\n' >&2; exit 3`,
	}, []string{"db:/data"}, "sleep 300")

	want := "exit code 3: bad \uFFFD \uFFFD \uFFFD end"
	r := e.ctl.run("snapshot", "db")
	if r.code != 1 || !strings.Contains(r.stderr, `pre command of container "db" failed (`+want+`): no snapshot taken`) {
		t.Errorf("butterctl snapshot db: exit %d, stderr %q", r.code, r.stderr)
	}
	job := e.lastJob(t)
	if job["result"] != "failed" || !strings.Contains(fmt.Sprint(job["error"]), want) {
		t.Errorf("last job %v: want the failed snapshot job with the pre command's line", job)
	}
	if c := containerOf(t, job, "db"); !strings.Contains(fmt.Sprint(c[3]), "pre: "+want) {
		t.Errorf("container note %q, want the pre command's line", c[3])
	}
	if out := e.ctl.nobody().ok("jobs"); !strings.Contains(out, "failed") {
		t.Errorf("butterctl jobs as nobody: %q", out)
	}
	path := fmt.Sprint(job["path"])
	cmd := exec.Command(testenv.Command(t, "busctl"), "--json=short", "get-property", "io.butterd.volumes1", path, "io.butterd.volumes1.Job", "Error")
	cmd.Env = e.bus.Env()
	out, err := cmd.CombinedOutput()
	var prop struct{ Data string }
	if err != nil || json.Unmarshal(out, &prop) != nil || !strings.Contains(prop.Data, want) {
		t.Errorf("busctl get-property %s Error: %v, %q", path, err, out)
	}
}

// A container stopped before the snapshot stays stopped (and its commands
// are skipped); a running one with action stop is stopped for the snapshot
// and started again.
func TestConsistentStop(t *testing.T) {
	e := startConsistentEnv(t)
	e.docker.MustRun("volume", "create", "-d", "btrfs", "vol")
	e.runContainer(t, "sleeper", []string{"butterd.action=stop", "butterd.pre=touch /data/pre-ran"}, []string{"vol:/data"}, "sleep 300")
	e.runContainer(t, "runner", []string{"butterd.action=stop"}, []string{"vol:/data"}, "trap 'exit 0' TERM; sleep 300 & wait")
	// An old container with a typo in its label: it does not run, so the
	// label is noted and blocks nothing.
	e.runContainer(t, "old", []string{"butterd.action=Pause"}, []string{"vol:/data"}, "true")
	e.docker.MustRun("wait", "old")
	e.docker.MustRun("stop", "-t", "1", "sleeper")
	started := e.docker.MustRun("inspect", "-f", "{{.State.StartedAt}}", "runner")

	snap := strings.TrimSpace(e.ctl.ok("snapshot", "vol"))
	requireSubvolume(t, filepath.Join(e.dataRoot, "snapshots", snap))
	if st := e.state(t, "sleeper"); st != "exited" {
		t.Errorf("container stopped before the snapshot is %s, want exited", st)
	}
	if _, err := os.Stat(filepath.Join(e.volumePath("vol"), "pre-ran")); err == nil {
		t.Errorf("the pre command of a stopped container ran")
	}
	if st := e.state(t, "runner"); st != "running" {
		t.Errorf("container with action stop is %s after the snapshot, want running", st)
	}
	if again := e.docker.MustRun("inspect", "-f", "{{.State.StartedAt}}", "runner"); again == started {
		t.Errorf("container with action stop was not restarted (started at %s both times)", started)
	}
	job := e.lastJob(t)
	badLabel := `container "old": label butterd.action="Pause": use pause, stop or none (ignored while it is exited)`
	if notes := fmt.Sprint(job["notes"]); notes != "["+badLabel+"]" {
		t.Errorf("job's notes %s, want %q", notes, badLabel)
	}
	if c := containerOf(t, job, "sleeper"); c[1] != "left as it was" || !strings.Contains(fmt.Sprint(c[3]), "pre and post commands skipped") {
		t.Errorf("job's entry for the stopped container: %v", c)
	}
	if c := containerOf(t, job, "runner"); c[1] != "stop" || c[2].(float64) <= 0 {
		t.Errorf("job's entry for the stopped and restarted container: %v", c)
	}
}

// A compose project of two containers and three volumes (labelled as
// docker compose labels them) is snapshotted with one timestamp, every
// container using one of its volumes quiesced (one outside the project
// too); then restored all at once, and as a stored group.
func TestConsistentProject(t *testing.T) {
	e := startConsistentEnv(t)
	dk := e.docker
	project := "com.docker.compose.project=shop"
	for _, v := range []string{"shop_db", "shop_logs", "shop_static"} {
		dk.MustRun("volume", "create", "-d", "btrfs", "--label", project, v)
		e.run(t, v, "echo first > /data/f")
	}
	e.runContainer(t, "shop-db-1", []string{project, "butterd.action=pause"}, []string{"shop_db:/data", "shop_logs:/logs"}, "sleep 300")
	e.runContainer(t, "shop-web-1", []string{project, "butterd.action=stop"}, []string{"shop_static:/data"}, "trap 'exit 0' TERM; sleep 300 & wait")
	e.runContainer(t, "backup", []string{"butterd.action=pause"}, []string{"shop_db:/data:ro"}, "sleep 300")

	r := e.ctl.run("snapshot", "--project", "shop")
	if r.code != 0 {
		t.Fatalf("butterctl snapshot --project shop: exit %d, stderr %q", r.code, r.stderr)
	}
	snaps := strings.Fields(r.stdout)
	if len(snaps) != 3 {
		t.Fatalf("snapshots %q, want three", snaps)
	}
	_, stamp, _ := strings.Cut(snaps[0], "@")
	for i, v := range []string{"shop_db", "shop_logs", "shop_static"} {
		if snaps[i] != v+"@"+stamp {
			t.Errorf("snapshot %q, want %s@%s (one timestamp for all)", snaps[i], v, stamp)
		}
		requireFile(t, filepath.Join(e.dataRoot, "snapshots", snaps[i], "f"), "first\n")
	}
	for _, want := range []string{"container backup: paused for ", "container shop-db-1: paused for ", "container shop-web-1: stopped for "} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr %q lacks %q", r.stderr, want)
		}
	}
	for _, c := range []string{"shop-db-1", "shop-web-1", "backup"} {
		if st := e.state(t, c); st != "running" {
			t.Errorf("container %s is %s after the snapshot, want running", c, st)
		}
	}

	// Restore the project: its volumes must be free, so stop the
	// containers (Docker unmounts their volumes).
	for _, v := range []string{"shop_db", "shop_logs", "shop_static"} {
		writeFile(t, filepath.Join(e.volumePath(v), "f"), "changed\n")
	}
	r = e.ctl.run("restore", "--project", "shop")
	if r.code != 1 || !strings.Contains(r.stderr, "is in use") {
		t.Errorf("restore of a project in use: exit %d, stderr %q", r.code, r.stderr)
	}
	dk.MustRun("stop", "-t", "1", "shop-db-1", "shop-web-1", "backup")
	safety := strings.Fields(e.ctl.ok("restore", "--project", "shop"))
	if len(safety) != 3 {
		t.Errorf("restore printed %q, want three safety snapshots", safety)
	}
	for _, v := range []string{"shop_db", "shop_logs", "shop_static"} {
		requireFile(t, filepath.Join(e.volumePath(v), "f"), "first\n")
	}

	// A stored group: made by its first snapshot, listed, restored to a
	// timestamp named.
	r = e.ctl.run("snapshot", "--group", "shopdata", "shop_db", "shop_static")
	if r.code != 0 || len(strings.Fields(r.stdout)) != 2 {
		t.Fatalf("snapshot --group: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if out := e.ctl.ok("groups"); out != "shopdata shop_db shop_static\n" {
		t.Errorf("butterctl groups: %q", out)
	}
	writeFile(t, filepath.Join(e.volumePath("shop_db"), "f"), "changed\n")
	if r := e.ctl.run("snapshot", "--group", "shopdata"); r.code != 0 {
		t.Fatalf("snapshot --group shopdata: exit %d, stderr %q", r.code, r.stderr)
	}
	e.ctl.ok("restore", "--group", "shopdata", stamp)
	requireFile(t, filepath.Join(e.volumePath("shop_db"), "f"), "first\n")
	requireFile(t, filepath.Join(e.volumePath("shop_logs"), "f"), "first\n")
}

// runSlowStopper runs the container "slow" (action stop) on a new volume
// "vol": it takes seconds to stop, and makes the file whose path it
// returns when its stop begins.
func (e *consistentEnv) runSlowStopper(t *testing.T) string {
	t.Helper()
	e.docker.MustRun("volume", "create", "-d", "btrfs", "vol")
	e.runContainer(t, "slow", []string{"butterd.action=stop"}, []string{"vol:/data"},
		"trap 'touch /data/stopping; sleep 3; exit 0' TERM; sleep 300 & wait")
	return filepath.Join(e.volumePath("vol"), "stopping")
}

// waitStopBegins waits until the file runSlowStopper named exists.
func waitStopBegins(t *testing.T, stopping string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(stopping); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the container's stop never began")
		}
		time.Sleep(time.Millisecond)
	}
}

// butterd killed while it holds a container stopped for a snapshot, and
// started again at once, starts the container again once its stop ends.
func TestConsistentResumeAfterCrash(t *testing.T) {
	e := startConsistentEnv(t)
	stopping := e.runSlowStopper(t)
	held := filepath.Join(e.dataRoot, "state", "held.json")

	done := make(chan struct{})
	go func() {
		defer close(done)
		e.ctl.run("snapshot", "vol") // fails: butterd dies under it
	}()
	waitStopBegins(t, stopping)
	if _, err := os.Stat(held); err != nil {
		t.Fatalf("butterd stops a container without a record of it: %v", err)
	}
	e.butterd.Kill()
	<-done
	os.Remove(stopping)
	e.butterd = testenv.StartButterdWith(t, e.dataRoot, testenv.PluginSocket, testenv.ButterdOptions{
		Bus: e.bus, Args: []string{"--docker-host=unix://" + e.docker.Socket}})
	e.removeContainersFirst(t)

	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(held); os.IsNotExist(err) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := os.Stat(held); !os.IsNotExist(err) {
		t.Fatalf("%s stays: %v", held, err)
	}
	if st := e.state(t, "slow"); st != "running" {
		t.Errorf("container is %s after butterd's restart, want running again", st)
	}
	if log := e.butterd.Log(); !strings.Contains(log, "container held for a snapshot resumed") {
		t.Errorf("butterd's log does not say it started the container again:\n%s", log)
	}
}

// A snapshot job canceled while Docker stops a container: Docker finishes
// the stop all the same, and butterd starts the container again before
// the job ends; nothing stays on record.
func TestConsistentCanceledStop(t *testing.T) {
	e := startConsistentEnv(t)
	stopping := e.runSlowStopper(t)
	held := filepath.Join(e.dataRoot, "state", "held.json")
	started := e.docker.MustRun("inspect", "-f", "{{.State.StartedAt}}", "slow")

	done := make(chan ctlResult, 1)
	go func() { done <- e.ctl.run("snapshot", "vol") }()
	waitStopBegins(t, stopping)
	var jobs []map[string]any
	if err := json.Unmarshal([]byte(e.ctl.ok("--json", "jobs")), &jobs); err != nil || len(jobs) != 1 || jobs[0]["state"] != "running" {
		t.Fatalf("butterctl --json jobs: %v, %v: want the running snapshot job", err, jobs)
	}
	e.ctl.ok("cancel", fmt.Sprint(jobs[0]["id"]))
	r := <-done
	if r.code == 0 {
		t.Errorf("butterctl snapshot vol, canceled: exit 0, stdout %q", r.stdout)
	}
	if st := e.state(t, "slow"); st != "running" {
		t.Errorf("container is %s once the canceled job ended, want running", st)
	}
	if again := e.docker.MustRun("inspect", "-f", "{{.State.StartedAt}}", "slow"); again == started {
		t.Errorf("container was not stopped and started again (started at %s both times)", started)
	}
	if _, err := os.Stat(held); !os.IsNotExist(err) {
		t.Errorf("%s stays after the container runs again: %v", held, err)
	}
	if snaps := e.snapshotsOf(t, "vol"); len(snaps) != 0 {
		t.Errorf("snapshots %q after a canceled job", snaps)
	}
	if c := containerOf(t, e.lastJob(t), "slow"); !strings.Contains(fmt.Sprint(c[3]), "stopped after all: started again") {
		t.Errorf("job's entry for the container: %v", c)
	}
}
