package tests

// service/docker against a real dockerd: what consistent snapshots rely
// on when they put containers back.

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"butterd/service"
	"butterd/service/docker"
	"butterd/tests/testenv"
)

func TestDockerEngineHoldAndRelease(t *testing.T) {
	dk := testenv.StartDocker(t)
	e, err := docker.New("unix://"+dk.Socket, "btrfs")
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx := context.Background()
	// It ignores its stop signal: only the kill after the stop timeout
	// stops it.
	id := strings.TrimSpace(dk.MustRun("run", "-d", "--network", "none", "--stop-timeout", "600", testenv.Image,
		"sh", "-c", "trap '' TERM; while :; do sleep 1; done"))

	// An unpause of a container that is not paused is no error (a pause
	// that failed is undone so, whether or not Docker carried it out).
	if err := e.Unpause(ctx, id); err != nil {
		t.Errorf("unpause of a running container: %v", err)
	}
	if err := e.Pause(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := e.Unpause(ctx, id); err != nil {
		t.Errorf("unpause of a paused container: %v", err)
	}
	if st, err := e.State(ctx, id); err != nil || st != "running" {
		t.Errorf("state after unpause: %q, %v", st, err)
	}

	// The stop timeout butterd gives wins over the container's own
	// (600 s here, past the test's deadline).
	if err := e.Stop(ctx, id, time.Second); err != nil {
		t.Fatalf("stop with a timeout of 1s: %v", err)
	}
	if st, err := e.State(ctx, id); err != nil || st != "exited" {
		t.Errorf("state after stop: %q, %v", st, err)
	}
	if err := e.WaitStopped(ctx, id); err != nil {
		t.Errorf("wait for a stopped container: %v", err)
	}
	if err := e.Unpause(ctx, id); err != nil {
		t.Errorf("unpause of a stopped container: %v", err)
	}
	if err := e.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	// A wait for a running container lasts as long as it runs.
	wctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if err := e.WaitStopped(wctx, id); err == nil {
		t.Errorf("wait for a running container returned at once")
	}

	// A container removed meanwhile is not found.
	dk.MustRun("rm", "-f", id)
	if _, err := e.State(ctx, id); !errors.Is(err, service.ErrNotFound) {
		t.Errorf("state of a removed container: %v, want ErrNotFound", err)
	}
	if err := e.Start(ctx, id); !errors.Is(err, service.ErrNotFound) {
		t.Errorf("start of a removed container: %v, want ErrNotFound", err)
	}
}
