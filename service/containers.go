package service

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Containers is what application-consistent snapshots need of the
// container engine: the containers that use volumes, and the means to
// quiesce them. service/docker implements it over the Docker Engine API,
// connecting on first use (Docker waits for the plugin at its start, so
// butterd never waits for Docker).
type Containers interface {
	// Using lists the containers, in any state, that mount one of the
	// volumes.
	Using(ctx context.Context, volumes []string) ([]Container, error)
	// ProjectVolumes lists the butterd volumes of a compose project: those
	// labelled with it (LabelComposeProject) and those its containers, in
	// any state, mount.
	ProjectVolumes(ctx context.Context, project string) ([]string, error)
	// State is a container's state: running, paused, exited, ...
	State(ctx context.Context, id string) (string, error)
	Pause(ctx context.Context, id string) error
	// Unpause unpauses a container; one that is not paused (any more) is
	// no error.
	Unpause(ctx context.Context, id string) error
	// Stop stops a container as docker stop does: its stop signal, then
	// SIGKILL after timeout.
	Stop(ctx context.Context, id string, timeout time.Duration) error
	// WaitStopped waits until a container does not run (at once if it
	// does not).
	WaitStopped(ctx context.Context, id string) error
	// Start starts a container; one that runs already is no error.
	Start(ctx context.Context, id string) error
	// Exec runs cmd in a running container as user ("": the container's
	// own) and returns its exit code and output (stdout and stderr, the
	// end of it when long).
	Exec(ctx context.Context, id, user string, cmd []string) (exitCode int, output string, err error)
}

// Container is a container as the engine lists it.
type Container struct {
	ID     string
	Name   string
	State  string // running, paused, exited, created, restarting, ...
	Labels map[string]string
	// Volumes are the butterd volumes it mounts, by name.
	Volumes []string
	// AutoRemove says the engine removes it once stopped (docker run --rm).
	AutoRemove bool
	// StopTimeout is how long a stop waits after the stop signal before
	// it kills (docker run --stop-timeout); 0: the engine's default,
	// negative: forever.
	StopTimeout time.Duration
}

// ErrNoEngine is the kind of the errors of a container engine that does not
// answer at all (no socket, connection refused): then no container runs,
// and snapshots are taken without quiescing any.
var ErrNoEngine = errors.New("container engine not running")

// Labels of a container that choose what happens around a snapshot of its
// volumes.
const (
	LabelAction     = "butterd.action"       // pause, stop or none (the default)
	LabelPre        = "butterd.pre"          // a command run in the container before (sh -c)
	LabelPost       = "butterd.post"         // a command run in the container after (sh -c)
	LabelUser       = "butterd.user"         // the user the commands run as
	LabelPreOnError = "butterd.pre.on-error" // abort (the default) or ignore

	// LabelComposeProject names the compose project of a container.
	LabelComposeProject = "com.docker.compose.project"
)

// Actions of LabelAction, and what a report says of a container left alone.
const (
	ActionPause = "pause"
	ActionStop  = "stop"
	ActionNone  = "none"
	ActionLeft  = "left as it was"
)

// execTimeout bounds each pre and post command.
const execTimeout = 5 * time.Minute

// How long the container engine may take to answer: to list or inspect
// containers, pause or unpause one (dockerTimeout), to start one
// (stopTimeout), and to stop one: stopMargin past the stop timeout butterd
// gives the engine, the container's own (defaultStopWait when it has
// none) up to stopTimeout. An engine that accepts connections but never
// answers would otherwise hold every snapshot.
var (
	dockerTimeout   = 30 * time.Second
	stopTimeout     = 3 * time.Minute
	stopMargin      = 30 * time.Second
	defaultStopWait = 10 * time.Second // Docker's own default
)

// bounded runs an engine call with a deadline of d; past it, the error
// says the engine did not answer.
func bounded(ctx context.Context, d time.Duration, what string, call func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	err := call(ctx)
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("the container engine (DOCKER_HOST) did not answer within %s to %s: %w", d, what, err)
	}
	return err
}

// ContainerReport says what a consistent snapshot did with one container.
type ContainerReport struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// Action is pause, stop or none, or ActionLeft for a container that
	// was not running.
	Action string `json:"action"`
	// Held is how long it was paused or stopped: from the pause (stop)
	// returning to the unpause (start) being issued.
	Held time.Duration `json:"held_ns"`
	// Note tells how the pre and post commands went, or why the container
	// was left alone.
	Note string `json:"note,omitempty"`
}

// quiesced is one container's plan and what became of it.
type quiesced struct {
	c       Container
	action  string
	pre     string
	post    string
	user    string
	abort   bool // a failing pre command aborts the snapshot
	running bool
	// stopWait is the stop timeout given to the engine.
	stopWait time.Duration
	// ignored says why the labels of a container that does not run are
	// not followed.
	ignored string

	entered  bool      // its pre command ran (or it has none): its post runs
	heldFrom time.Time // when its pause or stop returned; zero if not held
	// holdFailed says its pause or stop failed or was abandoned: the
	// engine may still carry it out.
	holdFailed bool
	held       time.Duration
	notes      []string
}

// planContainer reads a container's labels. A bad label is an error naming
// it and what is allowed; the plan returned with it does nothing.
func planContainer(c Container) (*quiesced, error) {
	q := &quiesced{c: c, action: ActionNone, abort: true, running: c.State == "running", stopWait: c.StopTimeout}
	if q.stopWait == 0 {
		q.stopWait = defaultStopWait
	}
	if q.stopWait < 0 || q.stopWait > stopTimeout {
		q.stopWait = stopTimeout
	}
	bad := func(label, value, allowed string) error {
		return errorf(ErrInvalidArg, "container %q: label %s=%q: use %s", c.Name, label, value, allowed)
	}
	if v, ok := c.Labels[LabelAction]; ok {
		switch v {
		case ActionPause, ActionStop, ActionNone:
			q.action = v
		default:
			return q, bad(LabelAction, v, "pause, stop or none")
		}
	}
	if v, ok := c.Labels[LabelPreOnError]; ok {
		switch v {
		case "abort":
		case "ignore":
			q.abort = false
		default:
			q.action = ActionNone
			return q, bad(LabelPreOnError, v, "abort or ignore")
		}
	}
	q.pre, q.post, q.user = strings.TrimSpace(c.Labels[LabelPre]), strings.TrimSpace(c.Labels[LabelPost]), c.Labels[LabelUser]
	if q.action == ActionStop && c.AutoRemove && q.running {
		q.action = ActionNone
		return q, errorf(ErrInvalidArg, "container %q: label %s=stop, but Docker removes this container once stopped (--rm): use pause", c.Name, LabelAction)
	}
	return q, nil
}

// labelled says whether the container asks for anything around
// snapshots.
func (q *quiesced) labelled() bool {
	return q.action != ActionNone || q.pre != "" || q.post != ""
}

func (q *quiesced) note(format string, args ...any) {
	q.notes = append(q.notes, fmt.Sprintf(format, args...))
}

func (q *quiesced) report() ContainerReport {
	r := ContainerReport{ID: q.c.ID, Name: q.c.Name, Action: q.action, Held: q.held, Note: strings.Join(q.notes, "; ")}
	if !q.running {
		r.Action = ActionLeft
	}
	return r
}
