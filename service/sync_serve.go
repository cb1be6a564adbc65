package service

import (
	"context"
	"fmt"
	"io"
	"strings"

	"butterd/service/remote"
)

// The serving side of a sync (DESIGN.md "Replication"): another host pulls
// the files of one of our volumes as they are now. We take a temporary
// read-only snapshot of the volume under a reserved name, journaled as an
// intent of op "serve-sync" (its tmpPath), stream it, incrementally
// against the snapshot the puller says it shares with us, and delete it:
// at the end, when the link is cut, and at the next start after a crash
// (the journal's intent rolls back by deleting it).

// Sync writes the stream of a temporary read-only snapshot of the volume
// req names, incremental against our read-only snapshot whose UUID or
// received UUID is req.ParentUUID when that is set.
func (h remoteHandler) Sync(ctx context.Context, peer remote.Peer, req remote.SyncRequest, stream io.Writer) error {
	s := h.s
	leave, err := s.enterPeer(peer.Name)
	if err != nil {
		return toRemoteErr(err)
	}
	defer leave()
	if _, err := s.GetVolume(req.Volume); err != nil {
		return toRemoteErr(err)
	}
	var uses []string
	parentPath := ""
	if req.ParentUUID != "" {
		parent, ok := s.findByUUID(req.Volume, req.ParentUUID, "")
		if !ok {
			return fmt.Errorf("%w: no read-only snapshot of volume %q has UUID or received UUID %s: pull a full stream",
				remote.ErrNotFound, req.Volume, req.ParentUUID)
		}
		uses, parentPath = []string{parent}, s.snapshotPath(parent)
	}
	return toRemoteErr(s.runPeerJob(ctx, leave, "serve-sync", req.Volume, uses, func(ctx context.Context, p *JobProgress) error {
		if parentPath != "" && !isSubvolume(parentPath) {
			return noSuchSnapshot(uses[0])
		}
		in := &intent{Op: opServeSync, Volume: req.Volume}
		if err := s.beginIntent(in); err != nil {
			return err
		}
		err := s.serveSyncSteps(ctx, in, parentPath, stream, p)
		if rerr := s.resolve(in); rerr != nil && err == nil {
			err = rerr
		}
		if err == nil {
			s.log.Info("volume served for a sync", "volume", req.Volume, "peer", peer.Name, "incremental", parentPath != "")
		}
		return err
	}))
}

// serveSyncSteps snapshots the volume at the intent's tmpPath and sends
// it; the caller's resolve deletes the snapshot.
func (s *Store) serveSyncSteps(ctx context.Context, in *intent, parentPath string, stream io.Writer, p *JobProgress) error {
	unlock := s.locks.lock(in.Volume)
	_, err := s.GetVolume(in.Volume)
	if err == nil {
		err = s.snapshotSubvolume(s.volumePath(in.Volume), in.tmpPath(s), true)
	}
	unlock()
	if err != nil {
		return err
	}
	if err := s.step(opServeSync, "snapshotted"); err != nil {
		return err
	}
	return sendTo(ctx, in.tmpPath(s), parentPath, stream, p)
}

// servedSyncName reports whether name is what a serving host calls the
// temporary snapshot of volume it streams for a sync (tmpPath's name).
func servedSyncName(volume, name string) bool {
	id, ok := strings.CutPrefix(name, "."+volume+"."+opServeSync+"-")
	if !ok || id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
