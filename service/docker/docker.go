// Package docker implements service.Containers over the Docker Engine API
// (github.com/moby/moby/client): it finds the containers that use butterd's
// volumes, pauses, stops and starts them, and runs commands in them. It
// connects on first use: Docker waits for the volume plugin at its start,
// so butterd never waits for Docker.
package docker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"

	"butterd/service"
)

// outputLimit is how much of a command's output is kept (its end).
const outputLimit = 4096

// Engine is a Docker Engine reached at one address.
type Engine struct {
	cli    *client.Client
	host   string
	proto  string // unix or tcp
	addr   string
	driver string
}

var _ service.Containers = (*Engine)(nil)

// New makes a client of the engine at host, a DOCKER_HOST value such as
// unix:///var/run/docker.sock, for the volumes of driver. It does not
// connect.
func New(host, driver string) (*Engine, error) {
	u, err := client.ParseHostURL(host)
	if err != nil {
		return nil, fmt.Errorf("DOCKER_HOST %q: use unix:///PATH or tcp://HOST:PORT (or none): %v", host, err)
	}
	if u.Scheme != "unix" && u.Scheme != "tcp" {
		return nil, fmt.Errorf("DOCKER_HOST %q: use unix:///PATH or tcp://HOST:PORT (or none)", host)
	}
	cli, err := client.New(client.WithHost(host))
	if err != nil {
		return nil, fmt.Errorf("DOCKER_HOST %q: %v", host, err)
	}
	return &Engine{cli: cli, host: host, proto: u.Scheme, addr: u.Host, driver: driver}, nil
}

// Close drops idle connections.
func (e *Engine) Close() error { return e.cli.Close() }

// Using lists the containers, in any state, that mount one of the volumes
// (of the engine's driver).
func (e *Engine) Using(ctx context.Context, volumes []string) ([]service.Container, error) {
	cs, err := e.list(ctx, make(client.Filters).Add("volume", volumes...))
	if err != nil {
		return nil, err
	}
	var out []service.Container
	for _, c := range cs {
		for _, v := range c.Volumes {
			if slices.Contains(volumes, v) {
				out = append(out, c)
				break
			}
		}
	}
	return out, nil
}

// ProjectVolumes lists the volumes (of the engine's driver) of a compose
// project: those labelled with it, and those its containers mount.
func (e *Engine) ProjectVolumes(ctx context.Context, project string) ([]string, error) {
	label := make(client.Filters).Add("label", service.LabelComposeProject+"="+project)
	vr, err := e.cli.VolumeList(ctx, client.VolumeListOptions{Filters: label.Clone().Add("driver", e.driver)})
	if err != nil {
		return nil, e.fail("list volumes", err)
	}
	var out []string
	for _, v := range vr.Items {
		out = append(out, v.Name)
	}
	cs, err := e.list(ctx, label)
	if err != nil {
		return nil, err
	}
	for _, c := range cs {
		out = append(out, c.Volumes...)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

func (e *Engine) list(ctx context.Context, filters client.Filters) ([]service.Container, error) {
	res, err := e.cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: filters})
	if err != nil {
		return nil, e.fail("list containers", err)
	}
	out := make([]service.Container, 0, len(res.Items))
	for _, s := range res.Items {
		c := service.Container{ID: s.ID, Name: s.ID, State: string(s.State), Labels: s.Labels}
		if len(s.Names) > 0 {
			c.Name = strings.TrimPrefix(s.Names[0], "/")
		}
		for _, m := range s.Mounts {
			if m.Type == mount.TypeVolume && m.Driver == e.driver && m.Name != "" {
				c.Volumes = append(c.Volumes, m.Name)
			}
		}
		if len(c.Volumes) == 0 {
			continue
		}
		in, err := e.cli.ContainerInspect(ctx, s.ID, client.ContainerInspectOptions{})
		if err != nil {
			return nil, e.fail("inspect container "+c.Name, err)
		}
		if in.Container.HostConfig != nil {
			c.AutoRemove = in.Container.HostConfig.AutoRemove
		}
		if cfg := in.Container.Config; cfg != nil && cfg.StopTimeout != nil {
			c.StopTimeout = time.Duration(*cfg.StopTimeout) * time.Second
			if *cfg.StopTimeout < 0 {
				c.StopTimeout = -1
			}
		}
		out = append(out, c)
	}
	return out, nil
}

func (e *Engine) State(ctx context.Context, id string) (string, error) {
	in, err := e.cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return "", e.fail("inspect container", err)
	}
	if in.Container.State == nil {
		return "", fmt.Errorf("docker inspect container %s: no state", id)
	}
	return string(in.Container.State.Status), nil
}

func (e *Engine) Pause(ctx context.Context, id string) error {
	_, err := e.cli.ContainerPause(ctx, id, client.ContainerPauseOptions{})
	return e.fail("pause", err)
}

// Unpause unpauses a container; one that is not paused is no error.
func (e *Engine) Unpause(ctx context.Context, id string) error {
	_, err := e.cli.ContainerUnpause(ctx, id, client.ContainerUnpauseOptions{})
	// Docker says so with 409 Conflict, 20.10 and older with 500.
	if err != nil && strings.Contains(err.Error(), " is not paused") {
		return nil
	}
	return e.fail("unpause", err)
}

// Stop stops a container as docker stop -t does: its stop signal, then
// SIGKILL after timeout (rounded up to seconds).
func (e *Engine) Stop(ctx context.Context, id string, timeout time.Duration) error {
	secs := int((timeout + time.Second - 1) / time.Second)
	_, err := e.cli.ContainerStop(ctx, id, client.ContainerStopOptions{Timeout: &secs})
	return e.fail("stop", err)
}

// WaitStopped waits until a container does not run.
func (e *Engine) WaitStopped(ctx context.Context, id string) error {
	w := e.cli.ContainerWait(ctx, id, client.ContainerWaitOptions{Condition: container.WaitConditionNotRunning})
	select {
	case <-w.Result:
		return nil
	case err := <-w.Error:
		return e.fail("wait", err)
	}
}

func (e *Engine) Start(ctx context.Context, id string) error {
	_, err := e.cli.ContainerStart(ctx, id, client.ContainerStartOptions{})
	return e.fail("start", err)
}

// Exec runs cmd in a container as docker exec does, without a terminal,
// and returns its exit code and the end of its output.
func (e *Engine) Exec(ctx context.Context, id, user string, cmd []string) (int, string, error) {
	cr, err := e.cli.ExecCreate(ctx, id, client.ExecCreateOptions{User: user, AttachStdout: true, AttachStderr: true, Cmd: cmd})
	if err != nil {
		return 0, "", e.fail("exec", err)
	}
	att, err := e.cli.ExecAttach(ctx, cr.ID, client.ExecAttachOptions{})
	if err != nil {
		return 0, "", e.fail("exec", err)
	}
	out := &tail{}
	copied := make(chan error, 1)
	go func() {
		_, err := stdcopy.StdCopy(out, out, att.Reader)
		copied <- err
	}()
	select {
	case err = <-copied:
		att.Close()
	case <-ctx.Done():
		att.Close()
		<-copied
		return 0, out.String(), fmt.Errorf("command %q did not end in time (it may still run in the container): %w", strings.Join(cmd, " "), ctx.Err())
	}
	if err != nil {
		return 0, out.String(), fmt.Errorf("read the output of %q: %w", strings.Join(cmd, " "), err)
	}
	// The output ends when the process does; the engine may record its
	// exit code a moment later.
	for {
		in, err := e.cli.ExecInspect(ctx, cr.ID, client.ExecInspectOptions{})
		if err != nil {
			return 0, out.String(), e.fail("exec", err)
		}
		if !in.Running {
			return in.ExitCode, out.String(), nil
		}
		select {
		case <-ctx.Done():
			return 0, out.String(), ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// fail names what failed; an engine that does not answer at all (no
// socket, nothing listening) is service.ErrNoEngine.
func (e *Engine) fail(what string, err error) error {
	if err == nil {
		return nil
	}
	if client.IsErrConnectionFailed(err) && e.absent() {
		return fmt.Errorf("Docker does not run at %s: %w", e.host, service.ErrNoEngine)
	}
	if cerrdefs.IsNotFound(err) {
		return fmt.Errorf("docker %s: %w (%w)", what, err, service.ErrNotFound)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("docker %s: no answer in time from Docker at %s (DOCKER_HOST): %w", what, e.host, err)
	}
	return fmt.Errorf("docker %s: %w", what, err)
}

// absent reports whether nothing listens at the engine's address.
func (e *Engine) absent() bool {
	c, err := net.DialTimeout(e.proto, e.addr, 2*time.Second)
	if err == nil {
		c.Close()
		return false
	}
	return errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED)
}

// tail keeps the end of what is written to it, at most outputLimit
// bytes, cut between characters.
type tail struct{ b []byte }

func (t *tail) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > outputLimit {
		cut := len(t.b) - outputLimit
		for i := 0; i < utf8.UTFMax-1 && cut < len(t.b) && !utf8.RuneStart(t.b[cut]); i++ {
			cut++
		}
		t.b = append(t.b[:0], t.b[cut:]...)
	}
	return len(p), nil
}

func (t *tail) String() string { return string(t.b) }
