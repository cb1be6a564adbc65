package service

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"

	"butterd/btrfs"
	"butterd/service/remote"
)

// SendResult says what a send did.
type SendResult struct {
	Snapshot string // the snapshot sent
	Host     string // the remote (host:port)
	Peer     string // the name the records give the remote
	// AlreadyThere: the remote already held the snapshot (as Remote);
	// nothing was sent.
	AlreadyThere bool
	// Incremental: the stream was incremental against Parent, a local
	// snapshot the remote holds as RemoteParent. ParentUUID is the parent
	// as the stream names it.
	Incremental  bool
	Parent       string
	ParentUUID   string
	RemoteParent string
	// ParentGone: the records name a snapshot both hosts held, but it is
	// gone from one of them, so the stream was full.
	ParentGone bool
	// Reason says, in one line, what was sent and why: full, incremental
	// against what, or nothing.
	Reason string
	Bytes  int64              // the stream's size (before compression)
	Remote remote.SnapshotRef // the snapshot on the remote
}

// SendOptions tune a send.
type SendOptions struct {
	// Peer is the name the records give the remote: a peer's name. The
	// address the client is connected to when empty.
	Peer string
	// Compress sends the stream compressed with zstd.
	Compress bool
}

// SendTo sends a read-only snapshot to the butterd c is connected to:
// incrementally against the newest snapshot no newer than it that both
// hold, in full when they share none, and not at all when the remote holds
// it already. Afterwards the records say which of our snapshots the remote
// holds, so that purge keeps the newest of them. At most one SendOptions
// is taken.
func (s *Store) SendTo(ctx context.Context, c *remote.Client, snapshot string, opts ...SendOptions) (SendResult, error) {
	var o SendOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	return s.sendSnapshotTo(ctx, c, snapshot, nil, o)
}

// SendJobOptions tune a send job.
type SendJobOptions struct {
	Compress bool
	// BandwidthLimit caps the bytes per second on the wire (after
	// compression); 0: no limit.
	BandwidthLimit int64
}

// SendSnapshot sends a read-only snapshot, as a job of kind "send", to host:
// a peer's name (the peer's address) or host[:port]. The job's summary
// says whether the stream was full, incremental against what, or not
// needed. A failure of the link fails the job, naming the host; nothing
// half-received is kept there, and running the send again resumes from the
// newest snapshot both hold.
func (s *Store) SendSnapshot(host, snapshot string, o SendJobOptions) (Job, error) {
	if _, err := s.GetSnapshot(snapshot); err != nil {
		return Job{}, err
	}
	dest, err := s.sendDestination(host, o)
	if err != nil {
		return Job{}, err
	}
	return s.startJob("send", snapshot, []string{snapshot}, func(ctx context.Context, p *JobProgress) error {
		return s.sendJob(ctx, p, dest, snapshot, o)
	})
}

// ReplicateVolume takes a fresh consistent snapshot of volume (the
// containers using it quiesced as their labels ask, as for a snapshot
// job) and sends it to host as a send does, in one job of kind "replicate" (a replicate schedule runs
// it). The job's target becomes the snapshot once taken, and its summary
// names it and says what was sent. The snapshot stays when the send fails:
// the next replicate sends a newer one, incrementally when they share one.
func (s *Store) ReplicateVolume(host, volume string, o SendJobOptions) (Job, error) {
	if _, err := s.GetVolume(volume); err != nil {
		return Job{}, err
	}
	dest, err := s.sendDestination(host, o)
	if err != nil {
		return Job{}, err
	}
	return s.startJob("replicate", volume, nil, func(ctx context.Context, p *JobProgress) error {
		res, err := s.snapshotConsistent(ctx, []string{volume})
		p.setResult(res)
		switch {
		case len(res.Snapshots) == 0:
			return fmt.Errorf("replicate %q to %s: no snapshot taken: %w", volume, dest, err)
		case err != nil:
			return fmt.Errorf("replicate %q to %s: nothing sent: %w", volume, dest, err)
		}
		snap := res.Snapshots[0]
		p.jobs.update(p.id, func(j *Job) {
			j.Target = snap
			j.Uses = append(j.Uses, snap)
		})
		if err := s.sendJob(ctx, p, dest, snap, o); err != nil {
			return fmt.Errorf("replicate %q: snapshot %q taken and kept, but %w", volume, snap, err)
		}
		p.jobs.update(p.id, func(j *Job) { j.Summary = fmt.Sprintf("snapshot %q to %s: %s", snap, dest.peer, j.Summary) })
		return nil
	})
}

// destination is where a send job goes: the address to dial and the name
// the records give it.
type destination struct{ addr, peer string }

// String names the destination in messages: the peer, with its address
// when they differ.
func (d destination) String() string {
	if d.peer != d.addr {
		return fmt.Sprintf("%s (%s)", d.peer, d.addr)
	}
	return d.peer
}

// sendDestination checks host, a peer's name or host[:port], and the
// options before a send job starts.
func (s *Store) sendDestination(host string, o SendJobOptions) (destination, error) {
	if o.BandwidthLimit < 0 {
		return destination{}, errorf(ErrInvalidArg, "bandwidth limit %d: give a number of bytes per second, or 0 for none", o.BandwidthLimit)
	}
	addr, peer, err := s.resolveHost(host)
	return destination{addr, peer}, err
}

// sendJob is the body of a send job: dial dest, send snapshot, and set the
// job's summary to what was sent.
func (s *Store) sendJob(ctx context.Context, p *JobProgress, dest destination, snapshot string, o SendJobOptions) error {
	key, err := s.ClientKey()
	if err != nil {
		return err
	}
	c, err := remote.Dial(ctx, dest.addr, SSHUser, key, s.KnownHosts(), remote.Options{BandwidthLimit: o.BandwidthLimit, Log: s.cfg.Logger})
	if err == nil {
		defer c.Close()
		var res SendResult
		res, err = s.sendSnapshotTo(ctx, c, snapshot, p, SendOptions{Peer: dest.peer, Compress: o.Compress})
		if err == nil {
			p.SetSummary(res.Reason)
			return nil
		}
	}
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case remote.IsConnectivity(err):
		return fmt.Errorf("send of %q to %s failed: %w; nothing half-received is kept there: send again once %s is reachable", snapshot, dest, err, dest.peer)
	}
	return fmt.Errorf("send of %q to %s failed: %w", snapshot, dest, err)
}

// localSnap is a read-only snapshot of ours with what BTRFS says of it.
type localSnap struct {
	name string
	info btrfs.Info
}

// readOnlySnapshots lists the read-only snapshots of volume, oldest first.
func (s *Store) readOnlySnapshots(volume string) []localSnap {
	s.mu.RLock()
	entries := s.snapshotsOfLocked(volume)
	s.mu.RUnlock()
	out := make([]localSnap, 0, len(entries))
	for _, e := range entries {
		info, err := btrfs.GetInfo(s.snapshotPath(e.name))
		if err != nil {
			s.log.Warn("snapshot not readable while matching it with a peer's", "snapshot", e.name, "error", err)
			continue
		}
		if info.ReadOnly {
			out = append(out, localSnap{e.name, info})
		}
	}
	return out
}

// sendSnapshotTo is SendTo; a job passes its progress p (nil otherwise) to
// count bytes and to keep the parent from purge while it runs.
func (s *Store) sendSnapshotTo(ctx context.Context, c *remote.Client, snapshot string, p *JobProgress, o SendOptions) (SendResult, error) {
	peer := o.Peer
	if peer == "" {
		peer = c.Addr()
	}
	res := SendResult{Snapshot: snapshot, Host: c.Addr(), Peer: peer}
	if _, err := s.GetSnapshot(snapshot); err != nil {
		return res, err
	}
	volume, _, _ := strings.Cut(snapshot, "@")
	path := s.snapshotPath(snapshot)
	info, err := btrfs.GetInfo(path)
	if err != nil {
		return res, err
	}
	if !info.ReadOnly {
		return res, errorf(ErrInvalidArg, "snapshot %q is not read-only: it cannot be sent", snapshot)
	}
	remotes, err := c.List(ctx, volume)
	if err != nil {
		return res, fmt.Errorf("send %q: list the snapshots of %q on %s: %w", snapshot, volume, c.Addr(), err)
	}
	local := s.readOnlySnapshots(volume)
	if r, ok := shared(info, remotes); ok {
		res.AlreadyThere, res.Remote = true, r
		res.Reason = fmt.Sprintf("no-op: %s already holds %q (as %q): nothing sent", peer, snapshot, r.Name)
		s.jobLog(p).Info("snapshot already on the remote", "snapshot", snapshot, "host", c.Addr(), "remote", r.Name)
		return res, s.recordPeerHolds(peer, volume, local, remotes, "")
	}
	for _, r := range remotes {
		if r.Name == snapshot {
			return res, errorf(ErrExists, "send refused: %s holds a different snapshot named %q (UUID %s, received UUID %q): remove it there first",
				c.Addr(), snapshot, r.UUID, r.ReceivedUUID)
		}
	}

	// The newest local read-only snapshot before this one that the remote holds.
	end := len(local)
	for i, l := range local {
		if l.name == snapshot {
			end = i
		}
	}
	parentPath := ""
	for i := end - 1; i >= 0; i-- {
		if r, ok := shared(local[i].info, remotes); ok {
			res.Incremental, res.Parent, res.ParentUUID, res.RemoteParent = true, local[i].name, streamUUID(local[i].info), r.Name
			parentPath = s.snapshotPath(local[i].name)
			break
		}
	}
	switch {
	case res.Incremental:
		res.Reason = fmt.Sprintf("incremental against %q, the newest snapshot %s also holds (as %q)", res.Parent, peer, res.RemoteParent)
		if p != nil {
			p.jobs.update(p.id, func(j *Job) { j.Uses = append(j.Uses, res.Parent) })
			if !isSubvolume(parentPath) {
				return res, noSuchSnapshot(res.Parent)
			}
		}
	case s.parentGone(peer, volume, snapshot, local, remotes, &res):
	case len(remotes) == 0:
		res.Reason = fmt.Sprintf("full: %s holds no snapshot of volume %q", peer, volume)
	default:
		res.Reason = fmt.Sprintf("full: none of the %d snapshots of volume %q on %s is one of ours", len(remotes), volume, peer)
	}

	req := remote.ReceiveRequest{Volume: volume, Name: snapshot, ParentUUID: res.ParentUUID}
	if o.Compress {
		req.Compression = remote.CompressZstd
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return res, err
	}
	sent := make(chan error, 1)
	go func() {
		err := btrfs.Send(path, parentPath, pw)
		pw.Close()
		sent <- err
	}()
	// Push leaves a read blocked on the pipe to us: closing it ends the
	// read, and the send with it (EPIPE).
	stop := context.AfterFunc(ctx, func() { pr.Close() })
	counted := &byteCounter{r: pr, p: p}
	rres, err := c.Push(ctx, req, counted)
	stop()
	pr.Close()
	sendErr := <-sent
	res.Bytes = counted.n
	if sendErr != nil && !errors.Is(sendErr, syscall.EPIPE) && ctx.Err() == nil {
		return res, fmt.Errorf("send %q: %w", snapshot, sendErr)
	}
	if err != nil {
		return res, fmt.Errorf("send %q to %s: %w", snapshot, c.Addr(), err)
	}
	if sendErr != nil {
		return res, fmt.Errorf("send %q: %w", snapshot, sendErr)
	}
	res.Remote = rres.Snapshot
	if rres.Bytes > 0 {
		res.Bytes = rres.Bytes
	}
	s.jobLog(p).Info("snapshot sent", "snapshot", snapshot, "host", c.Addr(), "peer", peer, "incremental", res.Incremental,
		"parent", res.Parent, "bytes", res.Bytes, "compressed", o.Compress)
	return res, s.recordPeerHolds(peer, volume, local, remotes, snapshot)
}

// parentGone reports, setting res's reason, whether the records name a
// snapshot older than snapshot that both hosts held and that is gone from
// one of them: the reason the stream is full.
func (s *Store) parentGone(peer, volume, snapshot string, local []localSnap, remotes []remote.SnapshotRef, res *SendResult) bool {
	rec, ok := s.shared.sent(peer, volume)
	if !ok || rec.Snapshot == snapshot || s.newerThan(rec.Snapshot, snapshot) {
		return false
	}
	where := ""
	i := len(local) - 1
	for ; i >= 0 && local[i].name != rec.Snapshot; i-- {
	}
	switch {
	case i < 0 || streamUUID(local[i].info) != rec.UUID:
		where = "is no longer here"
	case !heldBy(rec.UUID, remotes):
		where = "is no longer on " + peer
	default:
		return false
	}
	res.ParentGone = true
	res.Reason = fmt.Sprintf("the shared parent is gone: full send (%q, the newest snapshot shared with %s, %s)", rec.Snapshot, peer, where)
	return true
}

// heldBy reports whether a snapshot whose streams carry uuid is among remotes.
func heldBy(uuid string, remotes []remote.SnapshotRef) bool {
	for _, r := range remotes {
		if r.UUID == uuid || r.ReceivedUUID == uuid {
			return true
		}
	}
	return false
}

// recordPeerHolds records which of our snapshots the remote holds: those it
// listed and sent, which it has now.
func (s *Store) recordPeerHolds(peer, volume string, local []localSnap, remotes []remote.SnapshotRef, sent string) error {
	var held []string
	last := -1
	for i, l := range local {
		if _, ok := shared(l.info, remotes); ok || l.name == sent {
			held = append(held, l.name)
			last = i
		}
	}
	if last < 0 {
		return nil
	}
	if err := s.recordSent(peer, volume, local[last].name, streamUUID(local[last].info), held); err != nil {
		return fmt.Errorf("%s holds %q now, but the record of it was not written: %w", peer, local[last].name, err)
	}
	return nil
}
