package service

import (
	"context"
	"strings"
)

// SnapshotRequest names what a snapshot job covers.
type SnapshotRequest struct {
	Volumes []string
	Group   string
	Project string
}

// StartSnapshot checks the request and starts a snapshot job: a consistent
// snapshot (SnapshotConsistent) whose result, the snapshots made and what
// was done with each container, stays in the job history. It starts at
// once, never queued behind long jobs.
func (s *Store) StartSnapshot(req SnapshotRequest) (Job, error) {
	if req.Group != "" || req.Project != "" {
		return Job{}, errorf(ErrInvalidArg, "group snapshots are not available yet")
	}
	volumes, err := s.checkVolumes(req.Volumes)
	if err != nil {
		return Job{}, err
	}
	target := strings.Join(volumes, ",")
	return s.startJobNow("snapshot", target, func(ctx context.Context, p *JobProgress) error {
		res, err := s.snapshotConsistent(ctx, volumes)
		p.setResult(res)
		return err
	}), nil
}

// SnapshotVolume takes a consistent snapshot of one volume now and returns
// its name. Without containers using the volume it is a plain snapshot;
// with some, or when it fails, it runs as a snapshot job, so that the
// history keeps its result: how long each container was held, or the error.
func (s *Store) SnapshotVolume(volume string) (string, error) {
	volumes, err := s.checkVolumes([]string{volume})
	if err != nil {
		return "", err
	}
	ctx := context.Background()
	qs, notes, err := s.containersUsing(ctx, volumes)
	if err == nil && len(qs) == 0 {
		var names []string
		if names, err = s.snapshotVolumes(volumes); err == nil {
			return names[0], nil
		}
	}
	var res ConsistentSnapshot
	s.runJobNow("snapshot", volume, func(ctx context.Context, p *JobProgress) error {
		if err != nil {
			return err
		}
		res, err = s.quiesced(ctx, qs, notes, func() ([]string, error) { return s.snapshotVolumes(volumes) })
		p.setResult(res)
		return err
	})
	if len(res.Snapshots) > 0 {
		return res.Snapshots[0], err
	}
	return "", err
}

// setResult records a snapshot job's result.
func (p *JobProgress) setResult(res ConsistentSnapshot) {
	p.jobs.update(p.id, func(j *Job) {
		j.Snapshots, j.Containers, j.Notes = res.Snapshots, res.Containers, res.Notes
	})
}
