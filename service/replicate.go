package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"butterd/btrfs"
	"butterd/service/remote"
)

// Replication (DESIGN.md "Replication"): a snapshot goes to another host's
// butterd incrementally against the newest read-only snapshot both hosts
// share, matched by UUID and received UUID in both directions: a local
// snapshot's UUID among the remote's received UUIDs (the remote received
// it from us), or its received UUID among the remote's UUIDs (we received
// it from the remote: failback) or received UUIDs (both received it from a
// third host).

// RemoteHandler is the storage side of the replication endpoint
// (remote.Server's Handler): it lists the store's read-only snapshots,
// receives pushed streams as an import does, and sends snapshots' streams
// for pulls. The server has checked the peer's rights.
func (s *Store) RemoteHandler() remote.Handler { return remoteHandler{s} }

type remoteHandler struct{ s *Store }

// List returns the read-only snapshots of volume, oldest first.
func (h remoteHandler) List(ctx context.Context, peer remote.Peer, volume string) ([]remote.SnapshotRef, error) {
	if err := ValidateName(volume); err != nil {
		return nil, toRemoteErr(err)
	}
	return h.s.snapshotRefs(volume), nil
}

// Receive receives a pushed stream like an import, after checking that its
// header names the snapshot and the parent the request agreed on. A
// snapshot we already hold with the stream's UUID as its received UUID is
// a success that changes nothing.
func (h remoteHandler) Receive(ctx context.Context, peer remote.Peer, req remote.ReceiveRequest, stream io.Reader) (remote.Result, error) {
	s := h.s
	leave, err := s.enterPeer(peer.Name)
	if err != nil {
		return remote.Result{}, toRemoteErr(err)
	}
	defer leave()
	hdr, r, err := btrfs.ReadStreamHeader(stream)
	if err != nil {
		if errors.Is(err, btrfs.ErrBadStream) {
			return remote.Result{}, fmt.Errorf("%w: receive of %q refused: %v", remote.ErrBadRequest, req.Name, err)
		}
		return remote.Result{}, fmt.Errorf("receive of %q: %w", req.Name, err)
	}
	if err := checkReceiveHeader(req, hdr, time.Now()); err != nil {
		return remote.Result{}, err
	}
	if ref, ok, err := s.alreadyReceived(hdr); err != nil {
		return remote.Result{}, err
	} else if ok {
		// A no-op, never a delete: read the stream to its end, as the
		// protocol wants, and keep what we have.
		n, err := io.Copy(io.Discard, r)
		if err != nil {
			return remote.Result{}, fmt.Errorf("receive of %q: %w", req.Name, err)
		}
		s.log.Info("received snapshot already here", "snapshot", hdr.Name, "peer", peer.Name)
		s.noteReceived(peer.Name, req.Volume, hdr)
		return remote.Result{Snapshot: ref, Bytes: n}, nil
	}

	counted := &byteCounter{r: r}
	err = s.runPeerJob(ctx, leave, "receive", hdr.Name, nil, func(ctx context.Context, p *JobProgress) error {
		return s.importStream(ctx, p, &countingReader{r: counted, p: p}, nil)
	})
	if err != nil {
		return remote.Result{}, toRemoteErr(err)
	}
	info, err := btrfs.GetInfo(s.snapshotPath(hdr.Name))
	if err != nil {
		return remote.Result{}, err
	}
	s.log.Info("snapshot received", "snapshot", hdr.Name, "peer", peer.Name, "bytes", counted.n, "incremental", hdr.Incremental())
	s.noteReceived(peer.Name, req.Volume, hdr)
	return remote.Result{Snapshot: refOf(hdr.Name, info), Bytes: counted.n}, nil
}

// noteReceived records the snapshot a stream made as received from peer.
// A failure is logged: the snapshot is here, and the next send of it (a
// no-op) records it again.
func (s *Store) noteReceived(peer, volume string, hdr btrfs.StreamHeader) {
	if err := s.recordReceived(peer, volume, hdr.Name, hdr.UUID); err != nil {
		s.log.Error("received snapshot not recorded: purge may take it", "snapshot", hdr.Name, "peer", peer, "error", err)
	}
}

// checkReceiveHeader refuses a stream whose header does not carry what the
// request announced: the snapshot's name (in the request's volume) and the
// agreed parent (none for a full stream), and a name not dated ahead of
// now (its time would make it the volume's latest snapshot).
func checkReceiveHeader(req remote.ReceiveRequest, hdr btrfs.StreamHeader, now time.Time) error {
	if hdr.Name != req.Name {
		return fmt.Errorf("%w: receive refused: the stream carries subvolume %q, the request announced %q", remote.ErrBadRequest, hdr.Name, req.Name)
	}
	volume, t, err := ParseSnapshotName(hdr.Name)
	if err != nil || volume != req.Volume {
		return fmt.Errorf("%w: receive refused: %q is not a snapshot name of volume %q", remote.ErrBadRequest, hdr.Name, req.Volume)
	}
	if err := checkNotAhead(hdr.Name, t, now, "check the sending host's clock"); err != nil {
		return fmt.Errorf("%w: receive refused: %w", remote.ErrBadRequest, err)
	}
	if hdr.ParentUUID != req.ParentUUID {
		switch {
		case req.ParentUUID == "":
			return fmt.Errorf("%w: receive refused: %q was announced as a full stream but is incremental against %s", remote.ErrBadRequest, req.Name, hdr.ParentUUID)
		case hdr.ParentUUID == "":
			return fmt.Errorf("%w: receive refused: %q was announced as incremental against %s but is a full stream", remote.ErrBadRequest, req.Name, req.ParentUUID)
		}
		return fmt.Errorf("%w: receive refused: the stream of %q is incremental against %s, not the agreed parent %s", remote.ErrBadRequest, req.Name, hdr.ParentUUID, req.ParentUUID)
	}
	return nil
}

// alreadyReceived reports whether the snapshot a stream names is already
// here, read-only, as that stream's subvolume. A different snapshot of that
// name is ErrExists.
func (s *Store) alreadyReceived(hdr btrfs.StreamHeader) (remote.SnapshotRef, bool, error) {
	if !s.hasSnapshot(hdr.Name) {
		return remote.SnapshotRef{}, false, nil
	}
	info, err := btrfs.GetInfo(s.snapshotPath(hdr.Name))
	if err != nil {
		return remote.SnapshotRef{}, false, err
	}
	if info.ReadOnly && (info.ReceivedUUID == hdr.UUID || info.UUID == hdr.UUID) {
		return refOf(hdr.Name, info), true, nil
	}
	return remote.SnapshotRef{}, false, fmt.Errorf("%w: receive refused: a different snapshot %q is already here (UUID %s, received UUID %q; the stream's is %s)",
		remote.ErrExists, hdr.Name, info.UUID, info.ReceivedUUID, hdr.UUID)
}

// Send writes the stream of one of our read-only snapshots, incremental
// against our snapshot whose UUID or received UUID is req.ParentUUID when
// that is set (a pull).
func (h remoteHandler) Send(ctx context.Context, peer remote.Peer, req remote.SendRequest, stream io.Writer) error {
	s := h.s
	leave, err := s.enterPeer(peer.Name)
	if err != nil {
		return toRemoteErr(err)
	}
	defer leave()
	if _, err := s.GetSnapshot(req.Name); err != nil {
		return toRemoteErr(err)
	}
	if volume, _, _ := strings.Cut(req.Name, "@"); volume != req.Volume {
		return fmt.Errorf("%w: %q is not a snapshot of volume %q", remote.ErrBadRequest, req.Name, req.Volume)
	}
	info, err := btrfs.GetInfo(s.snapshotPath(req.Name))
	if err != nil {
		return err
	}
	if !info.ReadOnly {
		return fmt.Errorf("%w: snapshot %q is not read-only: it cannot be sent", remote.ErrBadRequest, req.Name)
	}
	uses := []string{req.Name}
	parentPath := ""
	if req.ParentUUID != "" {
		parent, ok := s.findByUUID(req.Volume, req.ParentUUID, req.Name)
		if !ok {
			return fmt.Errorf("%w: no read-only snapshot of volume %q older than %q has UUID or received UUID %s: pull a full stream",
				remote.ErrNotFound, req.Volume, req.Name, req.ParentUUID)
		}
		uses = append(uses, parent)
		parentPath = s.snapshotPath(parent)
	}
	path := s.snapshotPath(req.Name)
	return toRemoteErr(s.runPeerJob(ctx, leave, "serve-send", req.Name, uses, func(ctx context.Context, p *JobProgress) error {
		return sendTo(ctx, path, parentPath, stream, p)
	}))
}

// snapshotRefs lists the read-only snapshots of volume, oldest first.
func (s *Store) snapshotRefs(volume string) []remote.SnapshotRef {
	s.mu.RLock()
	entries := s.snapshotsOfLocked(volume)
	s.mu.RUnlock()
	out := []remote.SnapshotRef{}
	for _, e := range entries {
		info, err := btrfs.GetInfo(s.snapshotPath(e.name))
		if err != nil {
			s.log.Warn("snapshot not readable while listing it for a peer", "snapshot", e.name, "error", err)
			continue
		}
		if info.ReadOnly {
			out = append(out, refOf(e.name, info))
		}
	}
	return out
}

// findByUUID finds, newest first among the read-only snapshots of volume
// up to and excluding before (all when before is ""), the one whose UUID or
// received UUID is uuid.
func (s *Store) findByUUID(volume, uuid, before string) (string, bool) {
	s.mu.RLock()
	entries := s.snapshotsOfLocked(volume)
	s.mu.RUnlock()
	end := len(entries)
	for i, e := range entries {
		if e.name == before {
			end = i
		}
	}
	for i := end - 1; i >= 0; i-- {
		info, err := btrfs.GetInfo(s.snapshotPath(entries[i].name))
		if err == nil && info.ReadOnly && (info.UUID == uuid || info.ReceivedUUID == uuid) {
			return entries[i].name, true
		}
	}
	return "", false
}

func refOf(name string, info btrfs.Info) remote.SnapshotRef {
	return remote.SnapshotRef{Name: name, UUID: info.UUID, ReceivedUUID: info.ReceivedUUID, ParentUUID: info.ParentUUID}
}

// streamUUID is the UUID a send stream gives a subvolume (as its own, or
// as an incremental stream's parent): its received UUID when it was itself
// received, else its UUID (the kernel's send does so).
func streamUUID(info btrfs.Info) string {
	if info.ReceivedUUID != "" {
		return info.ReceivedUUID
	}
	return info.UUID
}

// shared finds the remote snapshot that is the same as a local one: the
// remote received ours (its received UUID is our UUID), or ours was
// received from the remote (our received UUID is its UUID) or from the
// same source (the same received UUID).
func shared(info btrfs.Info, remotes []remote.SnapshotRef) (remote.SnapshotRef, bool) {
	for _, r := range remotes {
		if r.ReceivedUUID != "" && r.ReceivedUUID == info.UUID {
			return r, true
		}
		if info.ReceivedUUID != "" && (r.UUID == info.ReceivedUUID || r.ReceivedUUID == info.ReceivedUUID) {
			return r, true
		}
	}
	return remote.SnapshotRef{}, false
}

// byteCounter counts what is read through it (and reports it to a job's
// progress when there is one).
type byteCounter struct {
	r io.Reader
	p *JobProgress
	n int64
}

func (c *byteCounter) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	if n > 0 && c.p != nil {
		c.p.AddBytes(uint64(n))
	}
	return n, err
}

// remoteKind gives a service error the remote kind the endpoint reports.
type remoteKind struct {
	err  error
	kind error
}

func (e *remoteKind) Error() string { return e.err.Error() }
func (e *remoteKind) Unwrap() error { return e.err }
func (e *remoteKind) Is(target error) bool {
	return target == e.kind
}

// toRemoteErr classifies a service error for the peer: not found, exists
// and invalid arguments are permanent.
func toRemoteErr(err error) error {
	var kind error
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrNotFound):
		kind = remote.ErrNotFound
	case errors.Is(err, ErrExists):
		kind = remote.ErrExists
	case errors.Is(err, ErrInvalidArg), errors.Is(err, ErrInvalidName):
		kind = remote.ErrBadRequest
	case errors.Is(err, ErrAccessDenied):
		kind = remote.ErrDenied
	case errors.Is(err, ErrBusy):
		kind = remote.ErrBusy
	default:
		return err
	}
	return &remoteKind{err: err, kind: kind}
}
