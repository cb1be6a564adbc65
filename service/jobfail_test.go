package service

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"
)

// A failed job is handed to Config.JobFailed once it is in the history;
// done and canceled ones are not.
func TestJobFailedReported(t *testing.T) {
	reported := make(chan Job, 10)
	s := &Store{cfg: Config{Now: time.Now, JobFailed: func(j Job) { reported <- j }}, log: slog.New(slog.DiscardHandler), stateDir: t.TempDir()}
	if err := s.loadJobs(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.WaitJobs(context.Background()) })
	ok, _ := s.runJobNow("test", "v1", func(context.Context, *JobProgress) error { return nil })
	bad, _ := s.runJobNow("test", "v2", func(context.Context, *JobProgress) error { return errors.New("disk on fire") })
	if ok.State != JobDone || bad.State != JobFailed {
		t.Fatalf("states %s, %s", ok.State, bad.State)
	}
	j, _ := s.StartJob("test", "v3", func(ctx context.Context, _ *JobProgress) error { <-ctx.Done(); return ctx.Err() })
	s.CancelJob(j.ID)
	waitState(t, s, j.ID, JobCanceled)
	select {
	case got := <-reported:
		if got.ID != bad.ID || got.Error != "disk on fire" || got.Target != "v2" {
			t.Errorf("reported %+v, want the failed job %d", got, bad.ID)
		}
		if h, _ := s.GetJob(got.ID); h.State != JobFailed {
			t.Errorf("reported before it was in the history: %+v", h)
		}
	default:
		t.Fatal("the failed job was not reported")
	}
	if len(reported) != 0 {
		t.Errorf("more jobs reported than the failed one: %+v", <-reported)
	}
}

// A job a restart interrupted is reported failed at the next start.
func TestInterruptedJobReported(t *testing.T) {
	dir := t.TempDir()
	if err := writeJSON(dir+"/jobs.json", jobFile{NextID: 5, History: []Job{
		{ID: 3, Kind: "export", State: JobDone},
		{ID: 4, Kind: "snapshot", Target: "group:shop", State: JobRunning},
	}}); err != nil {
		t.Fatal(err)
	}
	var reported []Job
	s := &Store{cfg: Config{Now: time.Now, JobFailed: func(j Job) { reported = append(reported, j) }}, log: slog.New(slog.DiscardHandler), stateDir: dir}
	if err := s.loadJobs(); err != nil {
		t.Fatal(err)
	}
	if len(reported) != 1 || reported[0].ID != 4 || reported[0].State != JobFailed || reported[0].Error == "" {
		t.Errorf("reported %+v, want job 4 failed as interrupted", reported)
	}
}
