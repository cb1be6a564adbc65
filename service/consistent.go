package service

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"butterd/btrfs"
)

// Consistent snapshots. Decisions:
//
//   - Every container that mounts one of the volumes is looked at, in any
//     state; its labels (LabelAction, ...) say what to do. A container that
//     is not running (paused, exited, created) is left as it was and its
//     pre and post commands are skipped. A bad label of a running or
//     paused container fails the snapshot; that of another container is
//     noted and ignored (it is checked again once the container runs).
//   - Every container to pause or stop is recorded (held.json) before the
//     engine is asked to, and stays recorded until it runs again. One
//     whose pause or stop failed (timed out, canceled) is put back too:
//     the engine may carry on with it (Docker finishes a stop whose client
//     left). What cannot be put back is retried in the background.
//   - The order is: every pre command (by container name), every stop, one
//     syncfs of the data root's filesystem (so that the pauses cover the
//     snapshots alone, not the flush of dirty data, the stopped
//     containers' last writes included), every pause, the snapshots (one
//     timestamp for all volumes), then every unpause, every start and
//     every post command, each in the reverse order. Stops take seconds,
//     pauses milliseconds: no container stays paused while another one
//     stops. The unpauses, starts and post commands run whatever happened
//     before them, also when the job is canceled.
//   - A pre command that fails (exit code not 0) with on-error=abort stops
//     there: no snapshot; what was done is put back (post commands of the
//     containers whose pre command ran, included the failing one).
//   - The volume locks are taken after the stops and before the pauses,
//     and dropped after the unpauses, before the starts: Docker mounts and
//     unmounts through butterd when it starts and stops containers, and no
//     container stays paused while another operation on its volumes
//     (a sync merging, a restore) ends. One
//     consistent snapshot runs at a time, so that none mistakes a container
//     another one paused for one paused by its user.
//   - An engine that does not answer at all (ErrNoEngine) runs no
//     container: the snapshots are taken and the result says so.

// ConsistentSnapshot is what a consistent snapshot made and did.
type ConsistentSnapshot struct {
	Snapshots  []string // VOLUME@TIMESTAMP, one timestamp for all
	Containers []ContainerReport
	Notes      []string
}

// SnapshotConsistent snapshots volumes, all with one timestamp, while the
// containers using them are quiesced as their labels ask. Without a
// container engine it is a plain snapshot of each volume. When something
// fails after the snapshots were taken (an unpause, a post command), they
// are kept and returned with the error.
func (s *Store) SnapshotConsistent(ctx context.Context, volumes []string) (ConsistentSnapshot, error) {
	volumes, err := s.checkVolumes(volumes)
	if err != nil {
		return ConsistentSnapshot{}, err
	}
	return s.snapshotConsistent(ctx, volumes)
}

// checkVolumes validates volume names and checks they exist; it returns
// them sorted, without repeats.
func (s *Store) checkVolumes(volumes []string) ([]string, error) {
	if len(volumes) == 0 {
		return nil, errorf(ErrInvalidArg, "no volume given")
	}
	volumes = slices.Clone(volumes)
	slices.Sort(volumes)
	volumes = slices.Compact(volumes)
	for _, v := range volumes {
		if _, err := s.GetVolume(v); err != nil {
			return nil, err
		}
	}
	return volumes, nil
}

func (s *Store) snapshotConsistent(ctx context.Context, volumes []string) (ConsistentSnapshot, error) {
	return s.consistently(ctx, volumes, func() ([]string, error) { return s.snapshotVolumes(volumes) })
}

// consistently runs snapshot, which takes the snapshots of volumes with
// their locks held, while the containers using them are quiesced. The containers are listed under
// the lock too: a container another snapshot holds paused must not pass
// for one its user paused.
func (s *Store) consistently(ctx context.Context, volumes []string, snapshot func() ([]string, error)) (ConsistentSnapshot, error) {
	s.quiesceMu.Lock()
	defer s.quiesceMu.Unlock()
	qs, notes, err := s.containersUsing(ctx, volumes)
	res := ConsistentSnapshot{Notes: notes}
	if err != nil {
		return res, err
	}
	res.Snapshots, err = s.quiesceAndSnapshot(ctx, volumes, qs, snapshot)
	for _, q := range qs {
		res.Containers = append(res.Containers, q.report())
	}
	return res, err
}

// plainSnapshot snapshots the volumes when no container with butterd's
// labels uses them (a job tells of bad labels ignored), and says whether
// it did; err is the listing's or the snapshot's. It does not wait for a
// consistent snapshot under way: a
// plain snapshot quiesces nothing, and the volume locks order it with the
// others.
func (s *Store) plainSnapshot(ctx context.Context, volumes []string) (names []string, plain bool, err error) {
	qs, _, err := s.containersUsing(ctx, volumes)
	if err != nil || slices.ContainsFunc(qs, func(q *quiesced) bool { return q.labelled() || q.ignored != "" }) {
		return nil, false, err
	}
	defer s.lockVolumes(volumes...)()
	names, err = s.snapshotVolumes(volumes)
	return names, true, err
}

// containersUsing lists the containers using the volumes and reads their
// labels.
func (s *Store) containersUsing(ctx context.Context, volumes []string) ([]*quiesced, []string, error) {
	eng := s.cfg.Containers
	if eng == nil {
		return nil, nil, nil
	}
	var cs []Container
	err := bounded(ctx, dockerTimeout, "list containers", func(ctx context.Context) (err error) {
		cs, err = eng.Using(ctx, volumes)
		return err
	})
	if errors.Is(err, ErrNoEngine) {
		s.log.Debug("snapshot without quiescing containers: the container engine does not answer", "volumes", volumes, "error", err)
		return nil, []string{"no container quiesced: " + err.Error()}, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("cannot list the containers using %s (no snapshot taken): %w", strings.Join(volumes, ", "), err)
	}
	slices.SortFunc(cs, func(a, b Container) int { return strings.Compare(a.Name, b.Name) })
	qs := make([]*quiesced, 0, len(cs))
	var notes []string
	for _, c := range cs {
		q, err := planContainer(c)
		switch {
		case err == nil:
		case c.State == "running" || c.State == "paused":
			return nil, nil, fmt.Errorf("%w (no snapshot taken)", err)
		default:
			// Its labels matter only once it runs: then they are checked.
			q.ignored = fmt.Sprintf("%v (ignored while it is %s)", err, c.State)
			notes = append(notes, q.ignored)
		}
		qs = append(qs, q)
	}
	return qs, notes, nil
}

// quiesceAndSnapshot runs the pre commands, stops, locks the volumes,
// pauses, snapshots, and puts everything back. The volume locks are taken
// before the pauses and dropped before the starts: no container waits
// paused for another operation on its volumes, and Docker can mount them
// again to start the stopped ones.
func (s *Store) quiesceAndSnapshot(ctx context.Context, volumes []string, qs []*quiesced, snapshot func() ([]string, error)) ([]string, error) {
	var snaps []string
	var stopped, paused []*quiesced
	todo := slices.DeleteFunc(slices.Clone(qs), func(q *quiesced) bool { return !q.running || q.action == ActionNone })
	err := s.runPre(ctx, qs)
	if err == nil && len(todo) > 0 {
		if err = s.recordHeld(todo); err != nil {
			err = fmt.Errorf("record the containers to hold (no snapshot taken): %w", err)
		}
	}
	if err == nil {
		stopped, err = s.hold(ctx, todo, ActionStop)
	}
	unlock := func() {}
	if err == nil {
		unlock = s.lockVolumes(volumes...)
		paused, err = s.hold(ctx, todo, ActionPause)
	}
	if err == nil {
		snaps, err = snapshot()
	}
	back := context.WithoutCancel(ctx)
	stuck, after := s.release(back, paused)
	unlock()
	stuckStopped, afterStopped := s.release(back, stopped)
	stuck, after = append(stuck, stuckStopped...), errors.Join(after, afterStopped)
	if len(todo) > 0 {
		// Those still paused or stopped stay recorded and are tried
		// again in the background.
		released := slices.DeleteFunc(ids(todo), func(id string) bool { return slices.Contains(ids(stuck), id) })
		if err := s.dropHeld(released...); err != nil {
			s.log.Error("containers held for a snapshot: record not updated", "file", s.heldPath(), "error", err)
		}
		if len(stuck) > 0 {
			s.resumeInBackground(resumeEvery)
		}
	}
	after = errors.Join(after, s.runPost(back, qs))
	switch {
	case after == nil:
		return snaps, err
	case err == nil:
		return snaps, fmt.Errorf("snapshots taken (%s), but %w", strings.Join(snaps, ", "), after)
	}
	return snaps, errors.Join(err, after)
}

// runPre runs the pre commands of the running containers in order.
func (s *Store) runPre(ctx context.Context, qs []*quiesced) error {
	for _, q := range qs {
		if !q.running {
			if q.pre != "" || q.post != "" {
				q.note("%s: left as it was; pre and post commands skipped", q.c.State)
			} else {
				q.note("%s: left as it was", q.c.State)
			}
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		q.entered = true
		if q.pre == "" {
			continue
		}
		outcome, ok := s.exec(ctx, q, q.pre)
		switch {
		case ok:
			q.note("pre: %s", outcome)
		case q.abort:
			q.note("pre: %s: snapshot aborted", outcome)
			return fmt.Errorf("pre command of container %q failed (%s): no snapshot taken (%s=abort)", q.c.Name, outcome, LabelPreOnError)
		default:
			q.note("pre: %s: ignored (%s=ignore)", outcome, LabelPreOnError)
		}
	}
	return nil
}

// runPost runs the post commands of the containers whose pre command ran,
// in the reverse order.
func (s *Store) runPost(ctx context.Context, qs []*quiesced) error {
	var errs []error
	for _, q := range slices.Backward(qs) {
		if !q.entered || q.post == "" {
			continue
		}
		outcome, ok := s.exec(ctx, q, q.post)
		q.note("post: %s", outcome)
		if !ok {
			errs = append(errs, fmt.Errorf("post command of container %q failed (%s)", q.c.Name, outcome))
		}
	}
	return errors.Join(errs...)
}

// exec runs a label's command in a container with sh -c and describes how
// it went.
func (s *Store) exec(ctx context.Context, q *quiesced, command string) (outcome string, ok bool) {
	ctx, cancel := context.WithTimeout(ctx, execTimeout)
	defer cancel()
	start := time.Now()
	code, out, err := s.cfg.Containers.Exec(ctx, q.c.ID, q.user, []string{"sh", "-c", command})
	s.log.Debug("container command", "container", q.c.Name, "command", command, "exit_code", code, "duration", time.Since(start), "error", err)
	switch {
	case err != nil:
		return err.Error(), false
	case code != 0:
		if line := lastLine(out); line != "" {
			return fmt.Sprintf("exit code %d: %s", code, line), false
		}
		return fmt.Sprintf("exit code %d", code), false
	}
	return "exit code 0", true
}

// lastLine is the last non-empty line of s, at most 200 bytes, cut
// between characters.
func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = strings.TrimSpace(s[i+1:])
	}
	if len(s) > 200 {
		n := 200
		for n > 200-utf8.UTFMax && !utf8.RuneStart(s[n]) {
			n--
		}
		s = s[:n] + "..."
	}
	return s
}

// hold stops, or flushes the filesystem then pauses, the containers of
// todo whose action is action. It returns those it asked the engine to
// stop or pause, in order, also on failure: the last one, whose pause or
// stop failed, is marked holdFailed (the engine may still carry it out).
func (s *Store) hold(ctx context.Context, todo []*quiesced, action string) ([]*quiesced, error) {
	var asked, batch []*quiesced
	for _, q := range todo {
		if q.action == action {
			batch = append(batch, q)
		}
	}
	if len(batch) == 0 {
		return nil, nil
	}
	if action == ActionPause {
		if err := btrfs.Sync(s.volumesDir); err != nil {
			return nil, fmt.Errorf("flush before quiescing containers (no snapshot taken): %w", err)
		}
	}
	eng := s.cfg.Containers
	for _, q := range batch {
		if err := ctx.Err(); err != nil {
			return asked, err
		}
		asked = append(asked, q)
		var err error
		if action == ActionPause {
			err = bounded(ctx, dockerTimeout, "pause container "+q.c.Name, func(ctx context.Context) error { return eng.Pause(ctx, q.c.ID) })
		} else {
			if own := q.c.StopTimeout; own != 0 && own != q.stopWait {
				q.note("stop timeout %s (its own, %s, is longer than butterd waits)", q.stopWait, stopWaitString(own))
			}
			err = bounded(ctx, q.stopWait+stopMargin, "stop container "+q.c.Name, func(ctx context.Context) error { return eng.Stop(ctx, q.c.ID, q.stopWait) })
		}
		if err != nil {
			q.holdFailed = true
			q.note("%s failed: %v", action, err)
			return asked, fmt.Errorf("cannot %s container %q (no snapshot taken): %w", action, q.c.Name, err)
		}
		q.heldFrom = time.Now()
	}
	return asked, nil
}

func stopWaitString(d time.Duration) string {
	if d < 0 {
		return "forever"
	}
	return d.String()
}

// release unpauses or starts again, in the reverse order, the containers
// hold asked to pause or stop, also those whose pause or stop failed. It
// returns those it could not.
func (s *Store) release(ctx context.Context, asked []*quiesced) (stuck []*quiesced, err error) {
	eng := s.cfg.Containers
	var errs []error
	for _, q := range slices.Backward(asked) {
		if !q.heldFrom.IsZero() {
			q.held = time.Since(q.heldFrom)
		}
		var err error
		switch {
		case q.action == ActionPause:
			err = bounded(ctx, dockerTimeout, "unpause container "+q.c.Name, func(ctx context.Context) error { return eng.Unpause(ctx, q.c.ID) })
		case q.holdFailed:
			err = s.startAfterStop(ctx, q)
		default:
			err = bounded(ctx, stopTimeout, "start container "+q.c.Name, func(ctx context.Context) error { return eng.Start(ctx, q.c.ID) })
		}
		if err != nil {
			q.note("%s not undone: %v", q.action, err)
			errs = append(errs, fmt.Errorf("container %q may stay %s (butterd tries again in the background): %w", q.c.Name, map[string]string{ActionPause: "paused", ActionStop: "stopped"}[q.action], err))
			stuck = append(stuck, q)
		}
	}
	return stuck, errors.Join(errs...)
}

// startAfterStop starts again a container whose stop failed or was
// abandoned, once the engine has stopped it after all; one still running
// when its stop timeout (and the margin) has passed was not stopped.
func (s *Store) startAfterStop(ctx context.Context, q *quiesced) error {
	eng := s.cfg.Containers
	wctx, cancel := context.WithTimeout(ctx, q.stopWait+stopMargin)
	err := eng.WaitStopped(wctx, q.c.ID)
	late := wctx.Err() != nil
	cancel()
	if err != nil && late {
		var state string
		err = bounded(ctx, dockerTimeout, "inspect container "+q.c.Name, func(ctx context.Context) (err error) {
			state, err = eng.State(ctx, q.c.ID)
			return err
		})
		if err == nil && state == "running" {
			q.note("not stopped: it runs on")
			return nil
		}
	}
	if err != nil {
		return err
	}
	if err = bounded(ctx, stopTimeout, "start container "+q.c.Name, func(ctx context.Context) error { return eng.Start(ctx, q.c.ID) }); err == nil {
		q.note("stopped after all: started again")
	}
	return err
}

// snapshotVolumes snapshots each volume with one timestamp for all. Either
// every snapshot is made or, as far as deleting can undo, none. Callers
// hold the volumes' locks.
func (s *Store) snapshotVolumes(volumes []string) ([]string, error) {
	for _, v := range volumes {
		if _, err := s.GetVolume(v); err != nil {
			return nil, err
		}
	}
	names := s.newSnapshotNames(volumes)
	for i, v := range volumes {
		if err := s.snapshotSubvolume(s.volumePath(v), s.snapshotPath(names[i]), true); err != nil {
			for _, made := range names[:i] {
				if derr := btrfs.Delete(s.snapshotPath(made)); derr != nil {
					s.log.Error("snapshot of a failed group snapshot not deleted", "snapshot", made, "error", derr)
					s.addSnapshot(made)
				}
			}
			return nil, s.noSpace(fmt.Sprintf("snapshot of volume %q", v), err)
		}
	}
	for _, n := range names {
		s.addSnapshot(n)
	}
	return names, nil
}

func ids(qs []*quiesced) []string {
	out := make([]string, len(qs))
	for i, q := range qs {
		out[i] = q.c.ID
	}
	return out
}
