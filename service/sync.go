package service

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"

	"butterd/btrfs"
	"butterd/service/merge"
	"butterd/service/remote"
)

// A sync (DESIGN.md "Replication") pulls, from each host in turn, the
// files of its same-named volume that ours lacks or holds older (by
// mtime). It never deletes, never follows symlinks and writes each file
// whole (service/merge). Per host, the steps are journaled as an intent of
// op "sync" whose ID is "JOB-N" (the job's id, the host's index):
//
//  1. list the host's read-only snapshots of the volume and pick the
//     newest one we share (matched by UUID and received UUID, as for send):
//     the stream is incremental against it, or full when there is none;
//  2. journal the intent, make received/JOB-N/; the host takes a temporary
//     read-only snapshot of its volume and streams it (butterd-sync); we
//     check the header (the reserved name, the agreed parent) and run
//     btrfs receive into received/JOB-N/, then check that it built the
//     received subvolume on our copy of the parent;
//  3. under the volume's lock, refuse a mounted volume unless forced, and
//     merge the received tree into the volume; before the first change of
//     the job, one safety snapshot of the volume is taken;
//  4. delete received/JOB-N/ and the volume's staging directory
//     .butterd-sync-JOB-N, and end the intent.
//
// Resolving the intent, now or at the next start, is always step 4: what
// the merge placed stays (each file whole, and the safety snapshot holds
// what it replaced); nothing half-received or half-written does.

// Dialer connects to the replication endpoint of another host's butterd,
// the host named as the user names it (a peer's name or an address).
type Dialer func(ctx context.Context, host string) (*remote.Client, error)

// maxSyncHosts bounds the hosts of one sync.
const maxSyncHosts = 32

// HostSync says what a sync did with one host.
type HostSync struct {
	Host        string
	Err         error // nil when the host's files were merged
	Incremental bool  // the stream was incremental against Parent
	Parent      string
	StreamBytes int64
	merge.Stats
}

// SyncVolume pulls into volume, as a job, the files of the same-named
// volume of each host that are newer than ours or that we lack, in the
// order given, connecting to each with the configured Dialer. A mounted
// volume is refused unless force is set.
func (s *Store) SyncVolume(volume string, hosts []string, force bool) (Job, error) {
	if err := checkSyncHosts(hosts); err != nil {
		return Job{}, err
	}
	sources := make([]syncSource, len(hosts))
	for i, h := range hosts {
		sources[i] = syncSource{host: h}
	}
	return s.startSync(volume, force, sources)
}

// SyncFrom is SyncVolume over connections already made. The caller closes
// them once the job has ended.
func (s *Store) SyncFrom(clients []*remote.Client, volume string, force bool) (Job, error) {
	hosts := make([]string, len(clients))
	sources := make([]syncSource, len(clients))
	for i, c := range clients {
		if c == nil {
			return Job{}, errorf(ErrInvalidArg, "sync of %q: host %d is not connected", volume, i+1)
		}
		hosts[i] = c.Addr()
		sources[i] = syncSource{host: c.Addr(), client: c}
	}
	if err := checkSyncHosts(hosts); err != nil {
		return Job{}, err
	}
	return s.startSync(volume, force, sources)
}

// syncSource is a host to pull from: connected, or to dial.
type syncSource struct {
	host   string
	client *remote.Client
}

func checkSyncHosts(hosts []string) error {
	if len(hosts) == 0 || len(hosts) > maxSyncHosts {
		return errorf(ErrInvalidArg, "sync needs 1 to %d hosts, not %d", maxSyncHosts, len(hosts))
	}
	seen := map[string]bool{}
	for _, h := range hosts {
		if h == "" || len(h) > 255 || strings.IndexFunc(h, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0 {
			return errorf(ErrInvalidArg, "host %.64q is not a host: give a peer's name or an address, without spaces", h)
		}
		if seen[h] {
			return errorf(ErrInvalidArg, "host %q is given twice", h)
		}
		seen[h] = true
	}
	return nil
}

// syncAllowed checks what can be checked before the job: the volume
// exists, and is not mounted unless forced.
func (s *Store) syncAllowed(volume string, force bool) error {
	v, err := s.GetVolume(volume)
	if err != nil {
		return err
	}
	if v.Mounts > 0 && !force {
		return errorf(ErrInUse, "volume %q is in use (%s): stop the containers using it, or force the sync", volume, mountCount(v.Mounts))
	}
	return nil
}

func (s *Store) startSync(volume string, force bool, sources []syncSource) (Job, error) {
	if err := s.syncAllowed(volume, force); err != nil {
		return Job{}, err
	}
	return s.startJob("sync", volume, nil, func(ctx context.Context, p *JobProgress) error {
		run := &syncRun{volume: volume, force: force, p: p}
		return lowPriority(s.jobLog(p), func() error { return s.runSync(ctx, run, sources) })
	})
}

// syncRun is one sync job.
type syncRun struct {
	volume string
	force  bool
	p      *JobProgress
	safety string // the safety snapshot, once taken
}

func (s *Store) runSync(ctx context.Context, run *syncRun, sources []syncSource) error {
	var results []HostSync
	var failed []string
	for i, src := range sources {
		res := s.syncHost(ctx, run, i, src)
		results = append(results, res)
		if res.Err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", res.Host, res.Err))
			s.jobLog(run.p).Warn("sync from a host failed", "host", res.Host, "error", res.Err)
		} else {
			s.jobLog(run.p).Info("volume synced from a host", "host", res.Host, "created", res.Created,
				"updated", res.Updated, "unchanged", res.Unchanged, "left_alone", res.LeftAlone, "skipped", res.Skipped,
				"incremental", res.Incremental, "stream_bytes", res.StreamBytes, "safety_snapshot", run.safety)
		}
		run.p.SetFraction(float64(i+1) / float64(len(sources)))
		if ctx.Err() != nil {
			break
		}
	}
	run.p.SetSummary(syncSummary(run, results))
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case len(failed) > 0:
		return fmt.Errorf("sync of %q failed from %d of %d hosts: %s", run.volume, len(failed), len(sources), strings.Join(failed, "; "))
	}
	return nil
}

// syncSummary says per host what the sync did, one line each, and the
// entries it left alone or skipped.
func syncSummary(run *syncRun, results []HostSync) string {
	var b strings.Builder
	if run.safety != "" {
		fmt.Fprintf(&b, "safety snapshot %s\n", run.safety)
	} else {
		fmt.Fprintf(&b, "volume %s unchanged: no safety snapshot needed\n", run.volume)
	}
	for _, r := range results {
		if r.Err != nil {
			fmt.Fprintf(&b, "%s: failed: %v\n", r.Host, r.Err)
			continue
		}
		stream := "full stream"
		if r.Incremental {
			stream = "stream incremental against " + r.Parent
		}
		fmt.Fprintf(&b, "%s: %d created, %d updated, %d unchanged, %d left alone, %d skipped; %d bytes reflinked, %d bytes copied; %s of %d bytes\n",
			r.Host, r.Created, r.Updated, r.Unchanged, r.LeftAlone, r.Skipped, r.Reflinked, r.Copied, stream, r.StreamBytes)
		for _, n := range r.Notes {
			fmt.Fprintf(&b, "  %s\n", n)
		}
	}
	return strings.TrimSuffix(b.String(), "\n")
}

func (s *Store) syncHost(ctx context.Context, run *syncRun, i int, src syncSource) (res HostSync) {
	res.Host = src.host
	c := src.client
	if c == nil {
		var err error
		if c, err = s.cfg.Dial(ctx, src.host); err != nil {
			res.Err = fmt.Errorf("connect: %w", err)
			return res
		}
		defer c.Close()
	}
	id := fmt.Sprintf("%d-%d", run.p.id, i)
	res.Err = s.syncFrom(ctx, run, id, c, &res)
	return res
}

// syncFrom runs the steps of the sync from one host.
func (s *Store) syncFrom(ctx context.Context, run *syncRun, id string, c *remote.Client, res *HostSync) error {
	volume := run.volume
	remotes, err := c.List(ctx, volume)
	if err != nil {
		return fmt.Errorf("list the snapshots of %q: %w", volume, err)
	}
	req := remote.SyncRequest{Volume: volume}
	var want syncParentWant
	if parent, ref, ok := s.syncParent(volume, remotes); ok {
		// Purge leaves the parent alone from now on.
		run.p.jobs.update(run.p.id, func(j *Job) { j.Uses = append(j.Uses, parent) })
		if isSubvolume(s.snapshotPath(parent)) {
			req.ParentUUID = ref.UUID
			want = syncParentWant{uuid: refStreamUUID(ref), path: s.snapshotPath(parent)}
			res.Incremental, res.Parent = true, parent
		}
	}
	in := &intent{ID: id, Op: opSync, Volume: volume, Source: res.Host}
	for _, path := range []string{in.file(s), in.receivedPath(s), filepath.Join(s.volumePath(volume), in.stage())} {
		if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%q is in the way (left over by an earlier job?): %v", path, err)
		}
	}
	if err := s.saveIntent(in); err != nil {
		return err
	}
	err = s.syncSteps(ctx, run, in, c, req, want, res)
	if rerr := s.resolve(in); rerr != nil && err == nil {
		err = rerr
	}
	return err
}

func (s *Store) syncSteps(ctx context.Context, run *syncRun, in *intent, c *remote.Client, req remote.SyncRequest, want syncParentWant, res *HostSync) error {
	dir := in.receivedPath(s)
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	if err := s.step(opSync, "dir-created"); err != nil {
		return err
	}
	name, err := s.receiveSync(ctx, run.p, dir, c, req, want, res)
	if err != nil {
		return err
	}
	if err := s.step(opSync, "received"); err != nil {
		return err
	}

	defer s.locks.lock(run.volume)()
	if err := s.syncAllowed(run.volume, run.force); err != nil {
		return err
	}
	placing := false
	res.Stats, err = merge.Tree(ctx, filepath.Join(dir, name), s.volumePath(run.volume), merge.Options{
		Stage: in.stage(),
		BeforeWrite: func() error {
			if run.safety != "" {
				return nil
			}
			snap, err := s.snapshotLocked(run.volume, true)
			if err != nil {
				return fmt.Errorf("safety snapshot before the first change: %w", err)
			}
			run.safety = snap.Name
			return s.step(opSync, "safety-created")
		},
		Progress: func(files int, bytes int64) error {
			if files > 0 {
				run.p.AddFiles(uint64(files))
			}
			if bytes > 0 && !placing {
				placing = true
				return s.step(opSync, "placing")
			}
			return nil
		},
	})
	if err != nil {
		return fmt.Errorf("merge: %w", err)
	}
	return s.step(opSync, "merged")
}

// syncParentWant is the parent a sync's stream must be incremental
// against: the UUID the stream names it by and our copy of it (none for a
// full stream).
type syncParentWant struct {
	uuid string
	path string
}

// receiveSync pulls the host's stream of its volume into dir with btrfs
// receive, after checking its header, and returns the name of the
// received subvolume, checked to be built on our copy of the parent.
func (s *Store) receiveSync(ctx context.Context, p *JobProgress, dir string, c *remote.Client, req remote.SyncRequest, want syncParentWant, res *HostSync) (string, error) {
	pr, pw, err := os.Pipe()
	if err != nil {
		return "", err
	}
	defer pr.Close()
	pctx, stop := context.WithCancel(ctx)
	defer stop()
	pulled := make(chan error, 1)
	go func() {
		err := c.Sync(pctx, req, pw)
		pw.Close()
		pulled <- err
	}()
	counted := &byteCounter{r: pr, p: p}
	hdr, stream, err := btrfs.ReadStreamHeader(counted)
	if err == nil {
		err = checkSyncHeader(req.Volume, want.uuid, hdr)
	}
	if err == nil {
		err = btrfs.Receive(ctx, dir, stream)
	}
	if err != nil {
		stop() // the pull ends too
	}
	pr.Close()
	pullErr := <-pulled
	res.StreamBytes = counted.n
	switch {
	case ctx.Err() != nil:
		return "", ctx.Err()
	case pullErr != nil && !errors.Is(pullErr, context.Canceled) && !errors.Is(pullErr, syscall.EPIPE):
		// The link or the host failed (not our stopping it): the cause
		// of whatever receive said.
		return "", fmt.Errorf("pull of volume %q: %w", req.Volume, pullErr)
	case err != nil:
		return "", fmt.Errorf("receive of volume %q: %w", req.Volume, err)
	}
	if err := checkReceived(dir, hdr.Name, hdr, want.path); err != nil {
		return "", fmt.Errorf("receive of volume %q: %w", req.Volume, err)
	}
	return hdr.Name, nil
}

// checkSyncHeader refuses a stream that is not what a sync of volume
// asked for: a temporary snapshot of it under the reserved name, with the
// agreed parent (none for a full stream).
func checkSyncHeader(volume, wantParent string, hdr btrfs.StreamHeader) error {
	if !servedSyncName(volume, hdr.Name) {
		return errorf(ErrInvalidArg, "sync refused: the stream carries subvolume %q, not a temporary snapshot of volume %q", hdr.Name, volume)
	}
	if hdr.ParentUUID != wantParent {
		if wantParent == "" {
			return errorf(ErrInvalidArg, "sync refused: a full stream was asked for, the stream is incremental against %s", hdr.ParentUUID)
		}
		return errorf(ErrInvalidArg, "sync refused: the stream is incremental against %q, not the agreed parent %s", hdr.ParentUUID, wantParent)
	}
	return nil
}

// syncParent finds the newest of the host's snapshots of volume (remotes,
// oldest first) that we hold too, and our copy of it.
func (s *Store) syncParent(volume string, remotes []remote.SnapshotRef) (string, remote.SnapshotRef, bool) {
	s.mu.RLock()
	entries := s.snapshotsOfLocked(volume)
	s.mu.RUnlock()
	type local struct {
		name string
		info btrfs.Info
	}
	var locals []local
	for _, e := range entries {
		if info, err := btrfs.GetInfo(s.snapshotPath(e.name)); err == nil && info.ReadOnly {
			locals = append(locals, local{e.name, info})
		}
	}
	for i := len(remotes) - 1; i >= 0; i-- {
		for j := len(locals) - 1; j >= 0; j-- {
			if syncShared(locals[j].info, remotes[i]) {
				return locals[j].name, remotes[i], true
			}
		}
	}
	return "", remote.SnapshotRef{}, false
}

// syncShared says whether our snapshot local is the host's r, for a
// stream incremental against r: they are the same (see shared), and the
// UUID the stream will name r by, which the host chooses, is one that
// local answers to (its UUID or received UUID). Our received UUID matching
// the host's UUID is not enough when r was itself received: the stream
// then names r's received UUID, which nothing ties to local.
func syncShared(local btrfs.Info, r remote.SnapshotRef) bool {
	if _, ok := shared(local, []remote.SnapshotRef{r}); !ok {
		return false
	}
	u := refStreamUUID(r)
	return u == local.UUID || (local.ReceivedUUID != "" && u == local.ReceivedUUID)
}

// refStreamUUID is the UUID a stream names a remote snapshot by (see
// streamUUID).
func refStreamUUID(r remote.SnapshotRef) string {
	if r.ReceivedUUID != "" {
		return r.ReceivedUUID
	}
	return r.UUID
}

// stage is the name of the sync's staging directory in the volume.
func (in *intent) stage() string { return merge.StagePrefix + in.ID }

var syncID = regexp.MustCompile(`^[0-9]{1,10}-[0-9]{1,3}$`)

// resolveSync deletes what a sync from one host left: its received/ID/
// directory with the subvolume received there, and the staging directory
// in the volume; what the merge placed stays. It ends the intent.
func (s *Store) resolveSync(in *intent) (forward bool, err error) {
	if !syncID.MatchString(in.ID) {
		return false, fmt.Errorf("sync journal entry %q does not name a job and host: left alone", in.ID)
	}
	if err := s.removeReceived(in.receivedPath(s)); err != nil {
		return false, err
	}
	if isSubvolume(s.volumePath(in.Volume)) {
		if err := merge.RemoveStage(s.volumePath(in.Volume), in.stage()); err != nil {
			return false, err
		}
	}
	return true, s.endIntent(in)
}
