package service

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// JobState is where a job is in its life.
type JobState string

const (
	JobQueued   JobState = "queued"
	JobRunning  JobState = "running"
	JobDone     JobState = "done"
	JobFailed   JobState = "failed"
	JobCanceled JobState = "canceled"
)

// Job is what callers learn about a long operation.
type Job struct {
	ID        uint32    `json:"id"`
	Kind      string    `json:"kind"`   // export, send, sync, import, purge, ...
	Target    string    `json:"target"` // the volume or snapshot it works on
	State     JobState  `json:"state"`
	Progress  float64   `json:"progress"` // 0..1, or -1 when unknown
	BytesDone uint64    `json:"bytes_done"`
	FilesDone uint64    `json:"files_done,omitempty"` // entries examined, for jobs that walk files
	Rate      float64   `json:"rate"`                 // bytes per second while running
	Created   time.Time `json:"created"`
	Started   time.Time `json:"started,omitzero"`
	Finished  time.Time `json:"finished,omitzero"`
	Error     string    `json:"error,omitempty"`
	// Summary says what a job that is done did, for jobs that have more
	// to say than done or failed (a send: full, incremental against what,
	// or nothing to send; a sync: what it did per host).
	Summary string `json:"summary,omitempty"`
	// Uses lists the snapshots the job reads: purge leaves them alone
	// while it runs.
	Uses []string `json:"uses,omitempty"`
	// A snapshot job's result: the snapshots made, what was done with
	// each container using the volumes, and remarks.
	Snapshots  []string          `json:"snapshots,omitempty"`
	Containers []ContainerReport `json:"containers,omitempty"`
	Notes      []string          `json:"notes,omitempty"`
}

// Done reports whether the job has a result.
func (j Job) Done() bool {
	return j.State == JobDone || j.State == JobFailed || j.State == JobCanceled
}

// JobFunc does a job's work. It stops when ctx is canceled and reports
// progress through p.
type JobFunc func(ctx context.Context, p *JobProgress) error

// JobProgress lets a running job report how far it is.
type JobProgress struct {
	jobs *jobTable
	id   uint32
	log  *slog.Logger // carries the job's attributes
}

// jobLog is the logger of a job's own lines (p's), or the store's
// outside a job (p nil): each line of a job carries job=ID (the JOB= field
// in the journal), its kind and the volume or snapshot it works on, so
// that one job's story can be found by its id.
func (s *Store) jobLog(p *JobProgress) *slog.Logger {
	if p == nil || p.log == nil {
		return s.log
	}
	return p.log
}

// jobLogAttrs are the attributes of every log line about a job: its id,
// kind and target, and the target again as volume= or snapshot= when it is
// one volume or one snapshot.
func jobLogAttrs(id uint32, kind, target string) []any {
	attrs := []any{"job", id, "kind", kind, "target", target}
	switch {
	case target == "":
	case ValidateSnapshotName(target) == nil:
		attrs = append(attrs, "snapshot", target)
	case ValidateName(target) == nil:
		attrs = append(attrs, "volume", target)
	}
	return attrs
}

// SetFraction sets the progress (0..1; -1 when unknown).
func (p *JobProgress) SetFraction(f float64) {
	p.jobs.update(p.id, func(j *Job) { j.Progress = f })
}

// AddBytes counts bytes done and updates the rate.
func (p *JobProgress) AddBytes(n uint64) {
	p.jobs.update(p.id, func(j *Job) {
		j.BytesDone += n
		if d := time.Since(j.Started).Seconds(); d > 0 {
			j.Rate = float64(j.BytesDone) / d
		}
	})
}

// AddFiles counts files done.
func (p *JobProgress) AddFiles(n uint64) {
	p.jobs.update(p.id, func(j *Job) { j.FilesDone += n })
}

// SetSummary sets what the job says it did.
func (p *JobProgress) SetSummary(s string) {
	p.jobs.update(p.id, func(j *Job) { j.Summary = s })
}

// Limits of the job table.
const (
	jobConcurrency = 2    // jobs running at once
	jobQueueLimit  = 64   // jobs waiting beyond that; more are refused
	jobHistory     = 1000 // finished jobs kept
)

// Bounds of the jobs that peers start (a push received, a pull or a sync
// served). They run at once, outside jobConcurrency and the queue, so that
// peers never hold local jobs up; beyond these bounds they are refused
// busy at once: the peer's job fails "peer busy, retry later", and its
// operator or schedule tries again.
const (
	peerJobLimit        = 2 // at once, from all peers
	peerJobLimitPerPeer = 1 // at once, from one peer
)

// jobTable runs jobs with a bound on concurrency and a bounded queue, and
// keeps finished ones in a history persisted in state/jobs.json.
type jobTable struct {
	mu      sync.Mutex
	path    string
	nextID  uint32
	running int
	queue   []*jobEntry
	active  map[uint32]*jobEntry // queued and running
	history []Job                // finished, oldest first
	peerOps map[string]int       // operations of peers under way, by peer
	writeMu sync.Mutex           // orders writes of the history
	emit    func(EventKind, Job)
	failed  func(Job) // may be nil
	log     *slog.Logger
	now     func() time.Time
	wg      sync.WaitGroup
}

type jobEntry struct {
	job    Job
	fn     JobFunc
	cancel context.CancelFunc
	ctx    context.Context
	now    bool          // started at once, outside the bound on concurrency
	done   chan struct{} // closed once the job is in the history
}

type jobFile struct {
	NextID  uint32 `json:"next_id"`
	History []Job  `json:"history"`
}

func (s *Store) loadJobs() error {
	t := &jobTable{
		path:    filepath.Join(s.stateDir, "jobs.json"),
		nextID:  1,
		active:  map[uint32]*jobEntry{},
		peerOps: map[string]int{},
		now:     s.cfg.Now,
		failed:  s.cfg.JobFailed,
		log:     s.log,
		emit: func(k EventKind, j Job) {
			s.emitEvent(Event{Kind: k, Name: j.Target, Job: j})
		},
	}
	var f jobFile
	if _, err := readJSON(t.path, &f); err != nil {
		return err
	}
	var interrupted []Job
	for i := range f.History {
		j := &f.History[i]
		if !j.Done() {
			j.State, j.Error, j.Finished = JobFailed, "interrupted: butterd stopped while the job ran", s.cfg.Now()
			s.log.Warn("job interrupted by a restart", append(jobLogAttrs(j.ID, j.Kind, j.Target), "result", j.State)...)
			interrupted = append(interrupted, *j)
		}
		if j.ID >= t.nextID {
			t.nextID = j.ID + 1
		}
	}
	if f.NextID > t.nextID {
		t.nextID = f.NextID
	}
	t.history = f.History
	s.jobs = t
	if err := t.save(); err != nil {
		return err
	}
	if t.failed != nil {
		for _, j := range interrupted {
			t.failed(j)
		}
	}
	return nil
}

// StartJob queues a job and returns it at once. It fails with ErrBusy when
// the queue is full.
func (s *Store) StartJob(kind, target string, fn JobFunc) (Job, error) {
	return s.startJob(kind, target, nil, fn)
}

// startJob is StartJob for a job that reads the snapshots in uses.
func (s *Store) startJob(kind, target string, uses []string, fn JobFunc) (Job, error) {
	t := s.jobs
	t.mu.Lock()
	if len(t.queue) >= jobQueueLimit {
		t.mu.Unlock()
		return Job{}, errorf(ErrBusy, "%d jobs are already waiting: try again when some have finished (butterctl jobs)", jobQueueLimit)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &jobEntry{
		job:    Job{ID: t.nextID, Kind: kind, Target: target, State: JobQueued, Progress: -1, Created: t.now(), Uses: uses},
		fn:     fn,
		ctx:    ctx,
		cancel: cancel,
	}
	t.nextID++
	t.active[e.job.ID] = e
	t.queue = append(t.queue, e)
	j := e.job
	t.mu.Unlock()
	t.save()
	t.emit(JobNew, j)
	t.schedule()
	return j, nil
}

// schedule starts queued jobs while there is room.
func (t *jobTable) schedule() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for t.running < jobConcurrency && len(t.queue) > 0 {
		e := t.queue[0]
		t.queue = t.queue[1:]
		t.running++
		e.job.State, e.job.Started = JobRunning, t.now()
		t.wg.Add(1)
		go t.run(e)
	}
}

// startJobNow starts a short job at once, whatever runs or waits: a job
// that must not wait behind long transfers (a snapshot pausing containers).
// Such jobs are bounded too: beyond jobQueueLimit of them, ErrBusy.
func (s *Store) startJobNow(kind, target string, fn JobFunc) (Job, error) {
	j, _, err := s.jobNow(kind, target, nil, fn)
	return j, err
}

// runJobNow is startJobNow waiting for the job to end; it returns the
// finished job.
func (s *Store) runJobNow(kind, target string, fn JobFunc) (Job, error) {
	j, done, err := s.jobNow(kind, target, nil, fn)
	if err != nil {
		return j, err
	}
	<-done
	return s.GetJob(j.ID)
}

// jobNow starts a job at once; done is closed once it is in the history.
func (s *Store) jobNow(kind, target string, uses []string, fn JobFunc) (j Job, done <-chan struct{}, err error) {
	t := s.jobs
	t.mu.Lock()
	now := 0
	for _, e := range t.active {
		if e.now {
			now++
		}
	}
	if now >= jobQueueLimit {
		t.mu.Unlock()
		return Job{}, nil, errorf(ErrBusy, "%d snapshot jobs are already under way: try again when some have finished (butterctl jobs)", now)
	}
	ctx, cancel := context.WithCancel(context.Background())
	at := t.now()
	e := &jobEntry{
		job:    Job{ID: t.nextID, Kind: kind, Target: target, State: JobRunning, Progress: -1, Created: at, Started: at, Uses: uses},
		fn:     fn,
		ctx:    ctx,
		cancel: cancel,
		now:    true,
		done:   make(chan struct{}),
	}
	t.nextID++
	t.active[e.job.ID] = e
	j = e.job
	t.wg.Add(1)
	t.mu.Unlock()
	t.emit(JobNew, j)
	go t.run(e)
	return j, e.done, nil
}

// enterPeer takes a place for an operation that peer started, or fails
// with ErrBusy when the bounds on them are reached (peerJobLimit,
// peerJobLimitPerPeer); leave gives the place back (calling it again does nothing).
func (s *Store) enterPeer(peer string) (leave func(), err error) {
	t := s.jobs
	t.mu.Lock()
	defer t.mu.Unlock()
	total := 0
	for _, n := range t.peerOps {
		total += n
	}
	switch {
	case t.peerOps[peer] >= peerJobLimitPerPeer:
		return nil, errorf(ErrBusy, "peer %q already has %d operation(s) under way here, the most one peer may have at once: retry once it ends", peer, t.peerOps[peer])
	case total >= peerJobLimit:
		return nil, errorf(ErrBusy, "%d operations of peers are already under way here, the most it takes at once: retry later", total)
	}
	t.peerOps[peer]++
	return sync.OnceFunc(func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		if t.peerOps[peer]--; t.peerOps[peer] <= 0 {
			delete(t.peerOps, peer)
		}
	}), nil
}

// runPeerJob runs fn as a job of an operation a peer started and waits
// for its end. It starts at once, never waiting behind local jobs nor
// making them wait; leave, enterPeer's, gives the peer's place back as fn
// ends, so that a job seen finished holds no place. ctx ending (the peer
// went away) cancels the job; ctx ending with a cause of its own (the
// endpoint abandoned a stalled transfer) fails it with that cause.
func (s *Store) runPeerJob(ctx context.Context, leave func(), kind, target string, uses []string, fn JobFunc) error {
	var err error
	_, done, jerr := s.jobNow(kind, target, uses, func(jctx context.Context, p *JobProgress) error {
		jctx, cancel := context.WithCancel(jctx)
		defer cancel()
		stop := context.AfterFunc(ctx, func() {
			if context.Cause(ctx) != ctx.Err() {
				cancel()
			} else {
				s.CancelJob(p.id)
			}
		})
		defer stop()
		err = fn(jctx, p)
		leave()
		switch cause := context.Cause(ctx); {
		case ctx.Err() != nil && cause != ctx.Err():
			err = cause
		case err == nil && jctx.Err() != nil:
			err = jctx.Err()
		}
		return err
	})
	if jerr != nil {
		leave()
		return jerr
	}
	<-done
	return err
}

func (t *jobTable) run(e *jobEntry) {
	defer t.wg.Done()
	t.save()
	log := t.log.With(jobLogAttrs(e.job.ID, e.job.Kind, e.job.Target)...)
	log.Info("job started")
	err := e.fn(e.ctx, &JobProgress{jobs: t, id: e.job.ID, log: log})
	t.mu.Lock()
	if !e.now {
		t.running--
	}
	t.mu.Unlock()
	t.finish(e, err)
	t.schedule()
}

// finish records a job's result, moves it to the history and announces it.
func (t *jobTable) finish(e *jobEntry, err error) {
	t.mu.Lock()
	j := &e.job
	j.Finished = t.now()
	switch {
	case e.ctx.Err() != nil:
		j.State, j.Error = JobCanceled, "canceled"
	case err != nil:
		j.State, j.Error = JobFailed, err.Error()
	default:
		j.State, j.Progress = JobDone, 1
	}
	e.cancel()
	delete(t.active, j.ID)
	t.history = append(t.history, *j)
	if len(t.history) > jobHistory {
		t.history = t.history[len(t.history)-jobHistory:]
	}
	done := *j
	t.mu.Unlock()
	if err := t.save(); err != nil {
		done.Error += fmt.Sprintf(" (job history not saved: %v)", err)
	}
	t.emit(JobRemoved, done)
	t.logEnd(done)
	if done.State == JobFailed && t.failed != nil {
		t.failed(done)
	}
	if e.done != nil {
		close(e.done)
	}
}

// logEnd logs a finished job's result: one line carrying the job's
// attributes, result= and what the result has to say.
func (t *jobTable) logEnd(j Job) {
	attrs := append(jobLogAttrs(j.ID, j.Kind, j.Target), "result", j.State)
	if !j.Started.IsZero() {
		attrs = append(attrs, "duration", j.Finished.Sub(j.Started))
	}
	switch j.State {
	case JobFailed:
		t.log.Error("job failed", append(attrs, "error", j.Error)...)
	case JobCanceled:
		t.log.Warn("job canceled", attrs...)
	default:
		if j.BytesDone > 0 {
			attrs = append(attrs, "bytes", j.BytesDone)
		}
		if len(j.Snapshots) > 0 {
			attrs = append(attrs, "snapshots", strings.Join(j.Snapshots, " "))
		}
		if j.Summary != "" {
			attrs = append(attrs, "summary", j.Summary)
		}
		t.log.Info("job done", attrs...)
	}
}

func (t *jobTable) update(id uint32, fn func(*Job)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e, ok := t.active[id]; ok {
		fn(&e.job)
	}
}

// save writes the history and the jobs in flight (so a restart can mark
// them interrupted).
func (t *jobTable) save() error {
	t.writeMu.Lock()
	defer t.writeMu.Unlock()
	t.mu.Lock()
	f := jobFile{NextID: t.nextID, History: append([]Job(nil), t.history...)}
	for _, e := range t.active {
		f.History = append(f.History, e.job)
	}
	t.mu.Unlock()
	return writeJSON(t.path, f)
}

// GetJob finds a job, running or finished.
func (s *Store) GetJob(id uint32) (Job, error) {
	t := s.jobs
	t.mu.Lock()
	defer t.mu.Unlock()
	if e, ok := t.active[id]; ok {
		return e.job, nil
	}
	for i := len(t.history) - 1; i >= 0; i-- {
		if t.history[i].ID == id {
			return t.history[i], nil
		}
	}
	return Job{}, &kindError{kinds: []error{ErrNotFound, ErrNoSuchJob}, msg: fmt.Sprintf("no such job %d (butterctl jobs lists them)", id)}
}

// ListJobs lists jobs in flight and the history, oldest first.
func (s *Store) ListJobs() []Job {
	t := s.jobs
	t.mu.Lock()
	out := append([]Job(nil), t.history...)
	for _, e := range t.active {
		out = append(out, e.job)
	}
	t.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// CancelJob stops a queued or running job. Canceling a finished job is an
// error that says so.
func (s *Store) CancelJob(id uint32) error {
	t := s.jobs
	t.mu.Lock()
	e, ok := t.active[id]
	if !ok {
		t.mu.Unlock()
		j, err := s.GetJob(id)
		if err != nil {
			return err
		}
		return errorf(ErrInvalidArg, "job %d already finished (%s)", id, j.State)
	}
	queued := e.job.State == JobQueued
	if queued {
		for i, q := range t.queue {
			if q == e {
				t.queue = append(t.queue[:i], t.queue[i+1:]...)
				break
			}
		}
	}
	e.cancel()
	t.mu.Unlock()
	if queued {
		t.finish(e, context.Canceled)
	}
	return nil
}

// snapshotsInUse maps each snapshot a queued or running job reads to a
// reason naming the job.
func (s *Store) snapshotsInUse() map[string]string {
	s.jobs.mu.Lock()
	defer s.jobs.mu.Unlock()
	used := map[string]string{}
	for _, e := range s.jobs.active {
		for _, name := range e.job.Uses {
			used[name] = fmt.Sprintf("used by %s job %d", e.job.Kind, e.job.ID)
		}
	}
	return used
}

// jobUsing finds a queued or running job that reads snapshot.
func (s *Store) jobUsing(snapshot string) (Job, bool) {
	s.jobs.mu.Lock()
	defer s.jobs.mu.Unlock()
	for _, e := range s.jobs.active {
		if slices.Contains(e.job.Uses, snapshot) {
			return e.job, true
		}
	}
	return Job{}, false
}

// JobsRunning counts jobs queued or running (for idle exit).
func (s *Store) JobsRunning() int {
	s.jobs.mu.Lock()
	defer s.jobs.mu.Unlock()
	return len(s.jobs.active)
}

// WaitJobs waits for every job to finish, canceling them when ctx ends.
func (s *Store) WaitJobs(ctx context.Context) {
	done := make(chan struct{})
	go func() { s.jobs.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.jobs.mu.Lock()
		for _, e := range s.jobs.active {
			e.cancel()
		}
		s.jobs.mu.Unlock()
		<-done
	}
}
