package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

// fakeEngine is a container engine that records every call in order.
type fakeEngine struct {
	mu         sync.Mutex
	containers []Container
	listErr    error
	calls      []string
	exitCodes  map[string]int   // by command
	fail       map[string]error // by call, such as "pause db"
	block      bool             // listing answers only when its context ends
	onCall     func(call string)
}

func (f *fakeEngine) name(id string) string { return strings.TrimPrefix(id, "id-") }

func (f *fakeEngine) do(call string) error {
	if f.onCall != nil {
		f.onCall(call)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
	return f.fail[call]
}

func (f *fakeEngine) Using(ctx context.Context, volumes []string) ([]Container, error) {
	f.do("list " + strings.Join(volumes, ","))
	if f.block {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return slices.Clone(f.containers), f.listErr
}

func (f *fakeEngine) ProjectVolumes(ctx context.Context, project string) ([]string, error) {
	f.do("project " + project)
	if f.block {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	var vols []string
	for _, c := range f.containers {
		if c.Labels[LabelComposeProject] == project {
			vols = append(vols, c.Volumes...)
		}
	}
	return vols, f.listErr
}

func (f *fakeEngine) State(ctx context.Context, id string) (string, error) {
	if err := f.do("state " + f.name(id)); err != nil {
		return "", err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.containers {
		if c.ID == id {
			return c.State, nil
		}
	}
	return "", fmt.Errorf("no such container %s", id)
}

func (f *fakeEngine) Pause(ctx context.Context, id string) error { return f.do("pause " + f.name(id)) }
func (f *fakeEngine) Unpause(ctx context.Context, id string) error {
	return f.do("unpause " + f.name(id))
}
func (f *fakeEngine) Stop(ctx context.Context, id string, timeout time.Duration) error {
	return f.do(fmt.Sprintf("stop %s -t %s", f.name(id), timeout))
}
func (f *fakeEngine) Start(ctx context.Context, id string) error { return f.do("start " + f.name(id)) }

// WaitStopped returns at once unless the container's state is running:
// then it waits for the end of ctx.
func (f *fakeEngine) WaitStopped(ctx context.Context, id string) error {
	if err := f.do("wait " + f.name(id)); err != nil {
		return err
	}
	f.mu.Lock()
	i := slices.IndexFunc(f.containers, func(c Container) bool { return c.ID == id })
	running := i >= 0 && f.containers[i].State == "running"
	f.mu.Unlock()
	if running {
		<-ctx.Done()
		return ctx.Err()
	}
	return nil
}

// setState sets a container's state, as the engine would change it.
func (f *fakeEngine) setState(name, state string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.containers {
		if f.containers[i].Name == name {
			f.containers[i].State = state
		}
	}
}

func (f *fakeEngine) Exec(ctx context.Context, id, user string, cmd []string) (int, string, error) {
	if len(cmd) != 3 || cmd[0] != "sh" || cmd[1] != "-c" {
		return 0, "", fmt.Errorf("exec %q: want sh -c COMMAND", cmd)
	}
	call := "exec " + f.name(id) + " " + cmd[2]
	if user != "" {
		call += " as " + user
	}
	if err := f.do(call); err != nil {
		return 0, "", err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	code := f.exitCodes[cmd[2]]
	return code, fmt.Sprintf("some output\nlast words of %s\n", cmd[2]), nil
}

func (f *fakeEngine) takeCalls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.calls
	f.calls = nil
	return c
}

func container(name, state string, labels ...string) Container {
	c := Container{ID: "id-" + name, Name: name, State: state, Labels: map[string]string{}, Volumes: []string{"v1"}}
	for _, kv := range labels {
		k, v, _ := strings.Cut(kv, "=")
		c.Labels[k] = v
	}
	return c
}

// quiesceStore is a store with only what consistent snapshots use: the
// engine, a directory to flush and a log.
func quiesceStore(t *testing.T, f *fakeEngine) *Store {
	t.Helper()
	return &Store{cfg: Config{Containers: f}, log: slog.New(slog.DiscardHandler), volumesDir: t.TempDir(), stateDir: t.TempDir()}
}

// snapshotRun takes the snapshots through the fake, recording the call.
func (f *fakeEngine) snapshot(err error) func() ([]string, error) {
	return func() ([]string, error) {
		f.do("snapshot")
		if err != nil {
			return nil, err
		}
		return []string{"v1@2026-01-02T03:04:05.000006"}, nil
	}
}

func reportOf(t *testing.T, res ConsistentSnapshot, name string) ContainerReport {
	t.Helper()
	for _, r := range res.Containers {
		if r.Name == name {
			return r
		}
	}
	t.Fatalf("no report of container %q in %+v", name, res.Containers)
	return ContainerReport{}
}

func wantCalls(t *testing.T, f *fakeEngine, want ...string) {
	t.Helper()
	if got := f.takeCalls(); !slices.Equal(got, want) {
		t.Errorf("calls:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

func TestConsistentOrder(t *testing.T) {
	f := &fakeEngine{containers: []Container{
		container("web", "running", "butterd.action=stop", "butterd.pre=pre-web", "butterd.post=post-web"),
		container("db", "running", "butterd.action=pause", "butterd.pre=pre-db", "butterd.post=post-db", "butterd.user=postgres"),
		container("idle", "running"),
	}}
	s := quiesceStore(t, f)
	res, err := s.consistently(context.Background(), []string{"v1"}, f.snapshot(nil))
	if err != nil {
		t.Fatal(err)
	}
	// Pre commands first (so that they run while the containers run), then
	// stops (slow) before pauses (so that no pause lasts a stop), the
	// snapshot, and everything undone in reverse.
	wantCalls(t, f, "list v1",
		"exec db pre-db as postgres", "exec web pre-web",
		"stop web -t 10s", "pause db",
		"snapshot",
		"unpause db", "start web",
		"exec web post-web", "exec db post-db as postgres")
	if !slices.Equal(res.Snapshots, []string{"v1@2026-01-02T03:04:05.000006"}) {
		t.Errorf("snapshots %q", res.Snapshots)
	}
	db, web, idle := reportOf(t, res, "db"), reportOf(t, res, "web"), reportOf(t, res, "idle")
	if db.Action != "pause" || db.Held <= 0 || web.Action != "stop" || web.Held <= 0 {
		t.Errorf("reports %+v %+v: want db paused and web stopped, each for some time", db, web)
	}
	if idle.Action != "none" || idle.Held != 0 {
		t.Errorf("a container without labels: %+v, want action none, not held", idle)
	}
	if db.Note != "pre: exit code 0; post: exit code 0" {
		t.Errorf("db note %q", db.Note)
	}
}

func TestConsistentPreFailureAborts(t *testing.T) {
	f := &fakeEngine{
		containers: []Container{
			container("a", "running", "butterd.action=pause", "butterd.pre=pre-a", "butterd.post=post-a"),
			container("b", "running", "butterd.action=pause", "butterd.pre=pre-b", "butterd.post=post-b"),
		},
		exitCodes: map[string]int{"pre-a": 3},
	}
	s := quiesceStore(t, f)
	res, err := s.consistently(context.Background(), []string{"v1"}, f.snapshot(nil))
	if err == nil || !strings.Contains(err.Error(), `pre command of container "a" failed (exit code 3: last words of pre-a): no snapshot taken`) {
		t.Fatalf("error %v, want the failing pre command named with its exit code and output", err)
	}
	// No pause, no snapshot; the failing container's post command runs,
	// the next container was never touched.
	wantCalls(t, f, "list v1", "exec a pre-a", "exec a post-a")
	if len(res.Snapshots) != 0 {
		t.Errorf("snapshots %q after an aborted pre command", res.Snapshots)
	}
	if a := reportOf(t, res, "a"); a.Held != 0 || !strings.Contains(a.Note, "snapshot aborted") {
		t.Errorf("report of a: %+v", a)
	}
}

func TestConsistentPreFailureIgnored(t *testing.T) {
	f := &fakeEngine{
		containers: []Container{container("a", "running", "butterd.action=pause", "butterd.pre=pre-a", "butterd.pre.on-error=ignore")},
		exitCodes:  map[string]int{"pre-a": 1},
	}
	s := quiesceStore(t, f)
	res, err := s.consistently(context.Background(), []string{"v1"}, f.snapshot(nil))
	if err != nil {
		t.Fatal(err)
	}
	wantCalls(t, f, "list v1", "exec a pre-a", "pause a", "snapshot", "unpause a")
	if a := reportOf(t, res, "a"); !strings.Contains(a.Note, "ignored") {
		t.Errorf("note %q: want it to say the failure was ignored", a.Note)
	}
}

func TestConsistentLeavesPausedAndStoppedAlone(t *testing.T) {
	f := &fakeEngine{containers: []Container{
		container("paused", "paused", "butterd.action=pause", "butterd.pre=pre-p", "butterd.post=post-p"),
		container("stopped", "exited", "butterd.action=stop", "butterd.pre=pre-s"),
	}}
	s := quiesceStore(t, f)
	res, err := s.consistently(context.Background(), []string{"v1"}, f.snapshot(nil))
	if err != nil {
		t.Fatal(err)
	}
	wantCalls(t, f, "list v1", "snapshot")
	for name, state := range map[string]string{"paused": "paused", "stopped": "exited"} {
		r := reportOf(t, res, name)
		if r.Action != ActionLeft || r.Held != 0 || r.Note != state+": left as it was; pre and post commands skipped" {
			t.Errorf("report of %s: %+v", name, r)
		}
	}
}

func TestConsistentPutsBackAfterFailures(t *testing.T) {
	f := &fakeEngine{
		containers: []Container{
			container("a", "running", "butterd.action=pause", "butterd.post=post-a"),
			container("b", "running", "butterd.action=stop", "butterd.post=post-b"),
		},
		fail: map[string]error{"unpause a": errors.New("engine hiccup")},
	}
	s := quiesceStore(t, f)
	res, err := s.consistently(context.Background(), []string{"v1"}, f.snapshot(errors.New("disk full")))
	wantCalls(t, f, "list v1", "stop b -t 10s", "pause a", "snapshot", "unpause a", "start b", "exec b post-b", "exec a post-a")
	if err == nil || !strings.Contains(err.Error(), "disk full") || !strings.Contains(err.Error(), `container "a" may stay paused (butterd tries again in the background): engine hiccup`) {
		t.Errorf("error %v: want the snapshot's failure and the unpause's", err)
	}
	if len(res.Snapshots) != 0 {
		t.Errorf("snapshots %q", res.Snapshots)
	}
	// a stays on record, to be unpaused in the background; b runs again.
	var held heldData
	if _, err := readJSON(s.heldPath(), &held); err != nil || len(held.Held) != 1 || held.Held[0].ID != "id-a" {
		t.Errorf("held record %+v (%v), want a alone", held.Held, err)
	}
	if left := s.resumeOnce(map[string]time.Time{}); left != 1 {
		t.Errorf("%d containers left held after a failed resume, want 1", left)
	}
	f.fail = nil
	if left := s.resumeOnce(map[string]time.Time{}); left != 0 {
		t.Errorf("%d containers left held after a resume", left)
	}
	wantCalls(t, f, "unpause a", "unpause a")

	// A failing pause: nothing more is paused, no snapshot, what was
	// stopped is started, and the failed pause undone in case the engine
	// carried it out all the same.
	f.fail = map[string]error{"pause a": errors.New("no")}
	_, err = s.consistently(context.Background(), []string{"v1"}, f.snapshot(nil))
	wantCalls(t, f, "list v1", "stop b -t 10s", "pause a", "unpause a", "start b", "exec b post-b", "exec a post-a")
	if err == nil || !strings.Contains(err.Error(), `cannot pause container "a" (no snapshot taken): no`) {
		t.Errorf("error %v", err)
	}

	// A failing post command after a good snapshot: the snapshot stays and
	// the error says so.
	f.fail, f.exitCodes = nil, map[string]int{"post-a": 2}
	res, err = s.consistently(context.Background(), []string{"v1"}, f.snapshot(nil))
	if err == nil || !strings.Contains(err.Error(), `snapshots taken (v1@2026-01-02T03:04:05.000006), but post command of container "a" failed (exit code 2`) {
		t.Errorf("error %v", err)
	}
	if len(res.Snapshots) != 1 {
		t.Errorf("snapshots %q: the snapshot stays", res.Snapshots)
	}
}

func TestConsistentCancelStillPutsBack(t *testing.T) {
	f := &fakeEngine{containers: []Container{container("a", "running", "butterd.action=pause", "butterd.post=post-a")}}
	s := quiesceStore(t, f)
	ctx, cancel := context.WithCancel(context.Background())
	snapshot := func() ([]string, error) {
		cancel() // canceled while paused
		f.do("snapshot")
		return []string{"v1@x"}, nil
	}
	if _, err := s.consistently(ctx, []string{"v1"}, snapshot); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, f, "list v1", "pause a", "snapshot", "unpause a", "exec a post-a")
}

func TestConsistentRefusesBadLabels(t *testing.T) {
	for _, tc := range []struct {
		c    Container
		want string
	}{
		{container("a", "running", "butterd.action=freeze"), `container "a": label butterd.action="freeze": use pause, stop or none`},
		{container("a", "running", "butterd.pre.on-error=retry"), `container "a": label butterd.pre.on-error="retry": use abort or ignore`},
		{func() Container {
			c := container("a", "running", "butterd.action=stop")
			c.AutoRemove = true
			return c
		}(), "removes this container once stopped (--rm): use pause"},
	} {
		f := &fakeEngine{containers: []Container{container("good", "running", "butterd.action=pause"), tc.c}}
		s := quiesceStore(t, f)
		_, err := s.consistently(context.Background(), []string{"v1"}, f.snapshot(nil))
		if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrInvalidArg) {
			t.Errorf("error %v, want %q", err, tc.want)
		}
		wantCalls(t, f, "list v1") // nothing done
	}
}

func TestConsistentWithoutEngine(t *testing.T) {
	f := &fakeEngine{listErr: fmt.Errorf("cannot connect: %w", ErrNoEngine)}
	s := quiesceStore(t, f)
	res, err := s.consistently(context.Background(), []string{"v1"}, f.snapshot(nil))
	if err != nil {
		t.Fatal(err)
	}
	wantCalls(t, f, "list v1", "snapshot")
	if len(res.Notes) != 1 || !strings.Contains(res.Notes[0], "no container quiesced") {
		t.Errorf("notes %q", res.Notes)
	}

	// Any other failure to list them takes no snapshot.
	f.listErr = errors.New("permission denied")
	if _, err := s.consistently(context.Background(), []string{"v1"}, f.snapshot(nil)); err == nil || !strings.Contains(err.Error(), "no snapshot taken") {
		t.Errorf("error %v", err)
	}
	wantCalls(t, f, "list v1")
}

// One consistent snapshot runs at a time: a second waits until the first
// has put its containers back.
func TestConsistentOneAtATime(t *testing.T) {
	f := &fakeEngine{containers: []Container{container("a", "running", "butterd.action=pause")}}
	s := quiesceStore(t, f)
	inside := make(chan struct{})
	release := make(chan struct{})
	slow := func() ([]string, error) {
		close(inside)
		<-release
		f.do("snapshot 1")
		return nil, nil
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.consistently(context.Background(), []string{"v1"}, slow)
		done <- err
	}()
	<-inside
	second := make(chan error, 1)
	go func() {
		_, err := s.consistently(context.Background(), []string{"v1"}, func() ([]string, error) { f.do("snapshot 2"); return nil, nil })
		second <- err
	}()
	time.Sleep(20 * time.Millisecond) // give the second a chance to go wrong
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := <-second; err != nil {
		t.Fatal(err)
	}
	calls := f.takeCalls()
	i := slices.Index(calls, "unpause a")
	j := slices.Index(calls, "snapshot 2")
	if i < 0 || j < i || slices.Index(calls, "snapshot 1") > i {
		t.Errorf("calls %q: the second snapshot must come after the first one's unpause", calls)
	}
}

// A stop that fails or is abandoned (the engine did not answer in time,
// the job was canceled) may still be carried out by the engine: butterd
// waits for the container to stop and starts it again, or finds it runs
// on; either way it is on record until then, and not after.
func TestConsistentFailedStopPutBack(t *testing.T) {
	defer func(d time.Duration) { stopMargin = d }(stopMargin)
	stopMargin = 20 * time.Millisecond
	late := fmt.Errorf("no answer: %w", context.DeadlineExceeded)

	// The engine stops it after butterd gave up.
	f := &fakeEngine{
		containers: []Container{container("b", "running", "butterd.action=stop", "butterd.post=post-b")},
		fail:       map[string]error{"stop b -t 10s": late},
	}
	s := quiesceStore(t, f)
	f.onCall = func(call string) {
		if call == "stop b -t 10s" {
			if _, err := os.Stat(s.heldPath()); err != nil {
				t.Errorf("container stopped without a record of it: %v", err)
			}
			f.setState("b", "exited")
		}
	}
	res, err := s.consistently(context.Background(), []string{"v1"}, f.snapshot(nil))
	if err == nil || !strings.Contains(err.Error(), `cannot stop container "b" (no snapshot taken)`) || strings.Contains(err.Error(), "may stay") {
		t.Errorf("error %v: want the failed stop alone", err)
	}
	wantCalls(t, f, "list v1", "stop b -t 10s", "wait b", "start b", "exec b post-b")
	if b := reportOf(t, res, "b"); !strings.Contains(b.Note, "stopped after all: started again") || b.Held != 0 {
		t.Errorf("report of b: %+v", b)
	}
	if _, err := os.Stat(s.heldPath()); !os.IsNotExist(err) {
		t.Errorf("record of held containers left once b runs again: %v", err)
	}

	// The stop never took: past its stop timeout the container runs on.
	c := container("b", "running", "butterd.action=stop")
	c.StopTimeout = time.Millisecond
	f = &fakeEngine{containers: []Container{c}, fail: map[string]error{"stop b -t 1ms": errors.New("cannot kill")}}
	s = quiesceStore(t, f)
	res, err = s.consistently(context.Background(), []string{"v1"}, f.snapshot(nil))
	if err == nil || !strings.Contains(err.Error(), "cannot kill") {
		t.Errorf("error %v", err)
	}
	wantCalls(t, f, "list v1", "stop b -t 1ms", "wait b", "state b")
	if b := reportOf(t, res, "b"); !strings.Contains(b.Note, "not stopped: it runs on") {
		t.Errorf("report of b: %+v", b)
	}
	if _, err := os.Stat(s.heldPath()); !os.IsNotExist(err) {
		t.Errorf("record of held containers left: %v", err)
	}

	// Canceled while stopping, and the start fails: it stays on record.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f = &fakeEngine{
		containers: []Container{container("b", "running", "butterd.action=stop")},
		fail:       map[string]error{"stop b -t 10s": context.Canceled, "start b": errors.New("no")},
	}
	s = quiesceStore(t, f)
	f.onCall = func(call string) {
		if call == "stop b -t 10s" {
			cancel()
			f.setState("b", "exited")
		}
	}
	s.consistently(ctx, []string{"v1"}, f.snapshot(nil))
	wantCalls(t, f, "list v1", "stop b -t 10s", "wait b", "start b")
	var held heldData
	if _, err := readJSON(s.heldPath(), &held); err != nil || len(held.Held) != 1 || held.Held[0].ID != "id-b" {
		t.Errorf("held record %+v (%v), want b", held.Held, err)
	}
}

// Docker is given the container's own stop timeout, at most stopTimeout,
// and the job says when it is cut short.
func TestConsistentStopTimeout(t *testing.T) {
	for _, tc := range []struct {
		own  time.Duration
		call string
		note string
	}{
		{0, "stop b -t 10s", ""},
		{time.Minute, "stop b -t 1m0s", ""},
		{5 * time.Minute, "stop b -t 3m0s", "stop timeout 3m0s (its own, 5m0s, is longer than butterd waits)"},
		{-1, "stop b -t 3m0s", "stop timeout 3m0s (its own, forever, is longer than butterd waits)"},
	} {
		c := container("b", "running", "butterd.action=stop")
		c.StopTimeout = tc.own
		f := &fakeEngine{containers: []Container{c}}
		s := quiesceStore(t, f)
		res, err := s.consistently(context.Background(), []string{"v1"}, f.snapshot(nil))
		if err != nil {
			t.Fatal(err)
		}
		wantCalls(t, f, "list v1", tc.call, "snapshot", "start b")
		if b := reportOf(t, res, "b"); b.Note != tc.note {
			t.Errorf("own stop timeout %s: note %q, want %q", tc.own, b.Note, tc.note)
		}
	}
}

// The labels of a container that neither runs nor is paused are not
// followed: a bad one is noted and ignored, and blocks no snapshot.
func TestConsistentIgnoresBadLabelsOfStoppedContainers(t *testing.T) {
	f := &fakeEngine{containers: []Container{
		container("good", "running", "butterd.action=pause"),
		container("old", "exited", "butterd.action=Pause"),
		container("new", "created", "butterd.pre.on-error=retry"),
	}}
	s := quiesceStore(t, f)
	res, err := s.consistently(context.Background(), []string{"v1"}, f.snapshot(nil))
	if err != nil {
		t.Fatal(err)
	}
	wantCalls(t, f, "list v1", "pause good", "snapshot", "unpause good")
	want := []string{
		`container "new": label butterd.pre.on-error="retry": use abort or ignore (ignored while it is created)`,
		`container "old": label butterd.action="Pause": use pause, stop or none (ignored while it is exited)`,
	}
	if !slices.Equal(res.Notes, want) {
		t.Errorf("notes %q, want %q", res.Notes, want)
	}
	if old := reportOf(t, res, "old"); old.Action != ActionLeft {
		t.Errorf("report of old: %+v", old)
	}

	// Paused, it is checked: it runs once unpaused.
	f.containers[1].State = "paused"
	if _, err := s.consistently(context.Background(), []string{"v1"}, f.snapshot(nil)); err == nil || !strings.Contains(err.Error(), `label butterd.action="Pause"`) {
		t.Errorf("error %v, want the paused container's bad label", err)
	}
}

// A command's last line is cut at 200 bytes between characters, so that
// a line of text stays text.
func TestLastLineCutsBetweenCharacters(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"first\nlast line\n\n", "last line"},
		{strings.Repeat("a", 200), strings.Repeat("a", 200)},
		{strings.Repeat("a", 201), strings.Repeat("a", 200) + "..."},
		{strings.Repeat("a", 199) + "été", strings.Repeat("a", 199) + "..."},
		{strings.Repeat("a", 198) + "€uro", strings.Repeat("a", 198) + "..."},
		{strings.Repeat("é", 150), strings.Repeat("é", 100) + "..."},
	} {
		got := lastLine(c.in)
		if got != c.want {
			t.Errorf("lastLine(%q) = %q, want %q", c.in, got, c.want)
		}
		if !utf8.ValidString(got) {
			t.Errorf("lastLine(%q) = %q: not UTF-8", c.in, got)
		}
	}
}
