package service

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// SnapshotRequest names what a snapshot job covers: volumes, a group (with
// volumes: the group is set to them first) or a compose project.
type SnapshotRequest struct {
	Volumes []string
	Group   string
	Project string
}

// StartSnapshot checks the request and starts a snapshot job: a consistent
// snapshot (SnapshotConsistent) whose result, the snapshots made and what
// was done with each container, stays in the job history. It starts at
// once, never queued behind long jobs. When a group's or a project's
// volumes cannot be found (one removed, Docker failing), the request
// fails and a failed job records it too, so that the history, the
// JobFailed signal and the webhooks tell of a schedule that did nothing.
func (s *Store) StartSnapshot(req SnapshotRequest) (Job, error) {
	target, volumes, err := s.resolveTarget(context.Background(), req, true)
	if err != nil {
		if (req.Group != "" || req.Project != "") && !errors.Is(err, ErrInvalidArg) && !errors.Is(err, ErrInvalidName) {
			target = "group:" + req.Group
			if req.Project != "" {
				target = "project:" + req.Project
			}
			s.recordFailed(target, err)
		}
		return Job{}, err
	}
	return s.startJobNow("snapshot", target, func(ctx context.Context, p *JobProgress) error {
		res, err := s.snapshotConsistent(ctx, volumes)
		p.setResult(res)
		return err
	})
}

// SnapshotVolume takes a consistent snapshot of one volume now and returns
// its name. Unless containers with butterd's labels use the volume, it is
// a plain snapshot; with some, or when it fails, it runs as a snapshot
// job, so that the history keeps its result: how long each container was
// held, or the error.
func (s *Store) SnapshotVolume(volume string) (string, error) {
	volumes, err := s.checkVolumes([]string{volume})
	if err != nil {
		return "", err
	}
	names, plain, err := s.plainSnapshot(context.Background(), volumes)
	switch {
	case plain && err == nil:
		return names[0], nil
	case errors.Is(err, ErrNoSuchVolume):
		return "", err // removed meanwhile: as if never there
	}
	var res ConsistentSnapshot
	if _, jerr := s.runJobNow("snapshot", volume, func(ctx context.Context, p *JobProgress) error {
		if err != nil {
			return err // the failure to list the containers, or of the plain snapshot
		}
		res, err = s.snapshotConsistent(ctx, volumes)
		p.setResult(res)
		return err
	}); jerr != nil {
		return "", jerr
	}
	if len(res.Snapshots) > 0 {
		return res.Snapshots[0], err
	}
	return "", err
}

// recordFailed records a snapshot request that failed before its job
// could start as a failed job of its own.
func (s *Store) recordFailed(target string, err error) {
	if _, jerr := s.runJobNow("snapshot", target, func(context.Context, *JobProgress) error { return err }); jerr != nil {
		s.log.Error("failed snapshot request not recorded as a job", "target", target, "error", err, "record_error", jerr)
	}
}

// setResult records a snapshot job's result.
func (p *JobProgress) setResult(res ConsistentSnapshot) {
	p.jobs.update(p.id, func(j *Job) {
		j.Snapshots, j.Containers, j.Notes = res.Snapshots, res.Containers, res.Notes
	})
}

// resolveTarget checks a request and finds its volumes, sorted; unless
// exist is set, a stored group's volumes need not exist (a restore may
// bring them back). target names it in the job history: VOL[,VOL...],
// group:NAME or project:NAME.
func (s *Store) resolveTarget(ctx context.Context, req SnapshotRequest, exist bool) (target string, volumes []string, err error) {
	switch {
	case req.Group != "" && req.Project != "":
		return "", nil, errorf(ErrInvalidArg, "give a group or a project, not both")
	case req.Project != "" && len(req.Volumes) > 0:
		return "", nil, errorf(ErrInvalidArg, "a project's volumes are those its containers use: give no volumes with project %q", req.Project)
	case req.Group != "" && len(req.Volumes) > 0:
		g, err := s.SetGroup(req.Group, req.Volumes)
		return "group:" + g.Name, g.Volumes, err
	case req.Group != "":
		g, err := s.GetGroup(req.Group)
		if err != nil || !exist {
			return "group:" + g.Name, g.Volumes, err
		}
		if volumes, err = s.checkVolumes(g.Volumes); err != nil {
			return "", nil, fmt.Errorf("group %q: %w ('butterctl snapshot --group %s VOL...' sets its volumes anew)", g.Name, err, g.Name)
		}
		return "group:" + g.Name, volumes, nil
	case req.Project != "":
		volumes, err := s.projectVolumes(ctx, req.Project, exist)
		return "project:" + req.Project, volumes, err
	}
	volumes, err = s.checkVolumes(req.Volumes)
	return strings.Join(volumes, ","), volumes, err
}

// projectVolumes are the butterd volumes of a compose project, as Docker
// tells. Unless exist is set, those Docker knows but butterd does not have
// any more are kept: a restore brings them back, or fails naming them.
func (s *Store) projectVolumes(ctx context.Context, project string, exist bool) ([]string, error) {
	if err := validateGroupName("project", project); err != nil {
		return nil, err
	}
	if s.cfg.Containers == nil {
		return nil, errorf(ErrInvalidArg, "compose project %q: projects need the Docker Engine API, which is turned off (DOCKER_HOST=none)", project)
	}
	var vols []string
	err := bounded(ctx, dockerTimeout, "list the project's volumes", func(ctx context.Context) (err error) {
		vols, err = s.cfg.Containers.ProjectVolumes(ctx, project)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("compose project %q: %w", project, err)
	}
	var out []string
	for _, v := range vols {
		if _, err := s.GetVolume(v); err == nil || (!exist && ValidateName(v) == nil) {
			out = append(out, v)
		}
	}
	if len(out) == 0 {
		return nil, errorf(ErrNotFound, "compose project %q has no butterd volume (none labelled %s=%s, none used by its containers)", project, LabelComposeProject, project)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}
