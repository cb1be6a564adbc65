package service

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

func jobStore(t *testing.T, dir string) *Store {
	t.Helper()
	s := &Store{cfg: Config{Now: time.Now}, log: slog.New(slog.DiscardHandler), stateDir: dir}
	if err := s.loadJobs(); err != nil {
		t.Fatal(err)
	}
	// Jobs write their history when they end: let them, before the
	// directory goes.
	t.Cleanup(func() { s.WaitJobs(context.Background()) })
	return s
}

func waitState(t *testing.T, s *Store, id uint32, want JobState) Job {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if j, _ := s.GetJob(id); j.State == want {
			return j
		}
		time.Sleep(time.Millisecond)
	}
	j, _ := s.GetJob(id)
	t.Fatalf("job %d is %s, want %s", id, j.State, want)
	return j
}

func TestJobsRunBoundedAndRecordResults(t *testing.T) {
	dir := t.TempDir()
	s := jobStore(t, dir)
	var events []Event
	evc := make(chan Event, 100)
	s.SetNotify(func(e Event) { evc <- e })
	release := make(chan struct{})
	block := func(ctx context.Context, p *JobProgress) error {
		p.AddBytes(10)
		p.SetFraction(0.5)
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	var ids []uint32
	for i := 0; i < jobConcurrency+2; i++ {
		j, err := s.StartJob("test", "v1", block)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, j.ID)
	}
	waitState(t, s, ids[0], JobRunning)
	running, _ := s.GetJob(ids[0])
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && running.Progress != 0.5; {
		running, _ = s.GetJob(ids[0])
	}
	if running.BytesDone != 10 || running.Progress != 0.5 {
		t.Fatalf("progress not visible: %+v", running)
	}
	if j, _ := s.GetJob(ids[jobConcurrency]); j.State != JobQueued {
		t.Fatalf("job beyond the bound is %s, want queued", j.State)
	}
	// Cancel one queued and one running job.
	if err := s.CancelJob(ids[jobConcurrency+1]); err != nil {
		t.Fatal(err)
	}
	if err := s.CancelJob(ids[0]); err != nil {
		t.Fatal(err)
	}
	waitState(t, s, ids[0], JobCanceled)
	close(release)
	for _, id := range ids[1 : jobConcurrency+1] {
		if j := waitState(t, s, id, JobDone); j.Progress != 1 {
			t.Errorf("done job progress %v", j.Progress)
		}
	}
	if j, _ := s.GetJob(ids[jobConcurrency+1]); j.State != JobCanceled {
		t.Errorf("canceled queued job is %s", j.State)
	}
	if err := s.CancelJob(ids[1]); !errors.Is(err, ErrInvalidArg) {
		t.Errorf("cancel of a finished job: %v", err)
	}
	if _, err := s.GetJob(999); !errors.Is(err, ErrNoSuchJob) {
		t.Errorf("unknown job: %v", err)
	}
	s.WaitJobs(context.Background())
	// Every job announced itself and its result.
	deadline := time.After(5 * time.Second)
	removed := 0
	for removed < len(ids) {
		select {
		case e := <-evc:
			events = append(events, e)
			if e.Kind == JobRemoved {
				removed++
			}
		case <-deadline:
			t.Fatalf("JobRemoved for %d of %d jobs: %+v", removed, len(ids), events)
		}
	}

	// The history survives a restart, ids continue.
	s2 := jobStore(t, dir)
	if got := len(s2.ListJobs()); got != len(ids) {
		t.Fatalf("history after restart: %d jobs, want %d", got, len(ids))
	}
	j, _ := s2.StartJob("test", "v1", func(context.Context, *JobProgress) error { return errors.New("boom") })
	if j.ID != ids[len(ids)-1]+1 {
		t.Errorf("id after restart %d, want %d", j.ID, ids[len(ids)-1]+1)
	}
	if f := waitState(t, s2, j.ID, JobFailed); f.Error != "boom" {
		t.Errorf("failed job error %q", f.Error)
	}
	s2.WaitJobs(context.Background())
}

func TestJobsInterruptedByRestart(t *testing.T) {
	dir := t.TempDir()
	s := jobStore(t, dir)
	started := make(chan struct{})
	j, _ := s.StartJob("test", "v1", func(ctx context.Context, p *JobProgress) error {
		close(started)
		<-ctx.Done()
		return ctx.Err()
	})
	<-started
	waitState(t, s, j.ID, JobRunning)
	// A second store reads the file as a restart would (the first never finished).
	s2 := jobStore(t, dir)
	got, err := s2.GetJob(j.ID)
	if err != nil || got.State != JobFailed || got.Error == "" {
		t.Fatalf("job running at a restart: %+v %v; want failed with a reason", got, err)
	}
	s.CancelJob(j.ID)
	s.WaitJobs(context.Background())
}

func TestJobsQueueLimit(t *testing.T) {
	s := jobStore(t, t.TempDir())
	release := make(chan struct{})
	defer func() { close(release); s.WaitJobs(context.Background()) }()
	wait := func(ctx context.Context, p *JobProgress) error { <-release; return nil }
	var err error
	for i := 0; i < jobConcurrency+jobQueueLimit+1 && err == nil; i++ {
		_, err = s.StartJob("test", "v1", wait)
	}
	if !errors.Is(err, ErrBusy) {
		t.Fatalf("beyond the queue: %v, want ErrBusy", err)
	}
}

// Every line of a job carries its id: its start, its own lines and its end
// with the result, and the volume or snapshot it works on.
func TestJobLogLinesCarryTheJob(t *testing.T) {
	var buf syncBuffer
	s := jobStore(t, t.TempDir())
	s.log = slog.New(slog.NewJSONHandler(&buf, nil))
	s.jobs.log = s.log
	ok, err := s.StartJob("purge", "v1", func(_ context.Context, p *JobProgress) error {
		s.jobLog(p).Info("purged", "deleted", 2)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, s, ok.ID, JobDone)
	bad, err := s.StartJob("export", "v1@2026-11-22T20:57:08.947340", func(context.Context, *JobProgress) error {
		return errors.New("disk on fire")
	})
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, s, bad.ID, JobFailed)
	s.WaitJobs(context.Background())

	byJob := map[float64][]map[string]any{}
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		id, _ := rec["job"].(float64)
		byJob[id] = append(byJob[id], rec)
	}
	want := map[uint32][]string{
		ok.ID:  {"job started|volume=v1", "purged|volume=v1", "job done|volume=v1|result=done"},
		bad.ID: {"job started|snapshot=" + bad.Target, "job failed|snapshot=" + bad.Target + "|result=failed|error=disk on fire"},
	}
	for id, lines := range want {
		got := byJob[float64(id)]
		if len(got) != len(lines) {
			t.Errorf("job %d logged %v, want %d lines %v", id, got, len(lines), lines)
			continue
		}
		for i, w := range lines {
			parts := strings.Split(w, "|")
			if got[i]["msg"] != parts[0] {
				t.Errorf("job %d line %d: %v, want %q", id, i, got[i], parts[0])
			}
			for _, kv := range parts[1:] {
				k, v, _ := strings.Cut(kv, "=")
				if got[i][k] != v {
					t.Errorf("job %d line %q: %s=%v, want %q", id, parts[0], k, got[i][k], v)
				}
			}
		}
	}
	if n := len(byJob[0]); n != 0 {
		t.Errorf("%d lines carry no job: %v", n, byJob[0])
	}
}

// syncBuffer is a bytes.Buffer that jobs may write to at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
