package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"butterd/btrfs"
	"butterd/internal/atomicfile"
)

// An import (DESIGN.md "Replication") runs in these steps, journaled as an
// intent of op "import" whose ID is the job's id, Volume the snapshot's
// volume and Source the snapshot's name:
//
//  1. read and check the stream header (a valid VOLUME@TIMESTAMP name not
//     taken yet; a UUID none of our snapshots and volumes answers to; for
//     an incremental stream, a parent among our snapshots) before anything
//     is written;
//  2. journal the intent, make received/<job>/ and run btrfs receive into it;
//  3. check the received subvolume (the only entry, read-only, received
//     UUID = the stream's UUID, built on the parent of step 1) and
//     snapshot it read-only into snapshots/NAME (the snapshot keeps the
//     received UUID): this is the switch, atomic;
//  4. delete received/<job>/ and end the intent.
//
// Everything in received/<job>/ is the job's, and snapshots/NAME exists
// only once complete, so resolving the intent, now or at the next start,
// is always the same: delete received/<job>/ with what it holds, never
// touch snapshots/. A snapshots/NAME made before a crash is adopted by the
// index like any other snapshot.

// ImportSnapshot receives a send stream (full, or incremental against one of
// our snapshots) read from in as a job, and makes it the read-only snapshot
// the stream names. The job owns in and closes it; canceling the job
// closes it too.
func (s *Store) ImportSnapshot(in *os.File) (Job, error) {
	in = pollable(in)
	var size int64
	if st, err := in.Stat(); err == nil && st.Mode().IsRegular() {
		size = st.Size()
	}
	job, err := s.startJob("import", "", nil, func(ctx context.Context, p *JobProgress) error {
		defer in.Close()
		// A read blocked on a stalled pipe returns at once when in is closed.
		stop := context.AfterFunc(ctx, func() { in.Close() })
		defer stop()
		err := s.importFile(ctx, p, &countingReader{r: in, p: p, size: size})
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	})
	if err != nil {
		in.Close()
	}
	return job, err
}

// importFile imports a send stream file, plain or compressed with zstd
// (told by its first bytes); the header checks run on the decompressed
// stream.
func (s *Store) importFile(ctx context.Context, p *JobProgress, r io.Reader) error {
	r, z, err := decompressed(r)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	defer z.close()
	err = s.importStream(ctx, p, r, z)
	if zerr := z.failed(); err != nil && zerr != nil {
		return zerr
	}
	return err
}

// importStream imports the send stream r; z is its decompressor, if any.
func (s *Store) importStream(ctx context.Context, p *JobProgress, r io.Reader, z *zstdStream) error {
	hdr, stream, err := btrfs.ReadStreamHeader(r)
	if err != nil {
		if errors.Is(err, btrfs.ErrBadStream) {
			return errorf(ErrInvalidArg, "import refused: %v", err)
		}
		return fmt.Errorf("import: %w", err)
	}
	name := hdr.Name
	p.jobs.update(p.id, func(j *Job) { j.Target = name })
	volume, err := s.checkImport(hdr)
	if err != nil {
		return err
	}
	if err := s.checkStreamUUID(hdr); err != nil {
		return err
	}
	parent := ""
	if hdr.Incremental() {
		if parent, err = s.findImportParent(volume, hdr); err != nil {
			return err
		}
		// Purge leaves the parent alone from now on.
		p.jobs.update(p.id, func(j *Job) { j.Uses = append(j.Uses, parent) })
		if !isSubvolume(s.snapshotPath(parent)) {
			return noSuchSnapshot(parent)
		}
		s.jobLog(p).Info("importing an incremental stream", "snapshot", name, "parent", parent)
	}
	if err := ctx.Err(); err != nil {
		return err
	}

	in := &intent{ID: strconv.FormatUint(uint64(p.id), 10), Op: opImport, Volume: volume, Source: name}
	for _, path := range []string{in.file(s), in.receivedPath(s)} {
		if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("import: %q is in the way (left over by an earlier job?): %v", path, err)
		}
	}
	what := fmt.Sprintf("import of %q", name)
	if err := s.saveIntent(in); err != nil {
		return s.noSpace(what, err)
	}
	err = s.importSteps(ctx, in, hdr, parent, stream, z)
	if rerr := s.resolve(in); rerr != nil && err == nil && !s.hasSnapshot(name) {
		err = rerr
	}
	return s.noSpace(what, err)
}

// checkImport refuses a stream whose name is not a valid VOLUME@TIMESTAMP
// snapshot name, is dated ahead of this host's clock, or is taken. It returns the volume.
func (s *Store) checkImport(hdr btrfs.StreamHeader) (string, error) {
	name := hdr.Name
	if err := ValidateSnapshotName(name); err != nil {
		return "", fmt.Errorf("import refused: the stream's subvolume name is not a valid snapshot name: %w", err)
	}
	volume, t, err := ParseSnapshotName(name)
	if err != nil {
		return "", fmt.Errorf("import refused: the stream's subvolume name is not a valid snapshot name: %w", err)
	}
	if err := checkNotAhead(name, t, time.Now(), "check the clock of the host that made the stream"); err != nil {
		return "", fmt.Errorf("import refused: %w", err)
	}
	if err := s.snapshotFree(name); err != nil {
		return "", err
	}
	return volume, nil
}

// snapshotFree says whether a snapshot name is free, in the index and on disk.
func (s *Store) snapshotFree(name string) error {
	if s.hasSnapshot(name) {
		return errorf(ErrExists, "import refused: snapshot %q already exists: remove it first to import it again", name)
	}
	if _, err := os.Lstat(s.snapshotPath(name)); !errors.Is(err, fs.ErrNotExist) {
		return errorf(ErrExists, "import refused: %q is already on disk (not a snapshot butterd knows): move it away first", s.snapshotPath(name))
	}
	return nil
}

func (s *Store) hasSnapshot(name string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, ok := s.snapshots[name]
	return ok
}

// checkStreamUUID refuses a stream whose subvolume UUID one of our
// snapshots or volumes already answers to, as its UUID or received UUID.
// btrfs receive finds an incremental stream's parent, and a CLONE's source,
// by that UUID anywhere on the filesystem (first by received UUID, then by
// UUID, the first match): a subvolume posing as another could later lead
// it to build on that other's data. The same snapshot received again is a
// no-op decided before (a push), or a taken name (an import).
func (s *Store) checkStreamUUID(hdr btrfs.StreamHeader) error {
	s.mu.RLock()
	snaps := make([]string, 0, len(s.snapshots))
	for name := range s.snapshots {
		snaps = append(snaps, name)
	}
	vols := make([]string, 0, len(s.volumes))
	for name := range s.volumes {
		vols = append(vols, name)
	}
	s.mu.RUnlock()
	slices.Sort(snaps)
	slices.Sort(vols)
	which := func(info btrfs.Info) string {
		switch hdr.UUID {
		case info.ReceivedUUID:
			return "received UUID"
		case info.UUID:
			return "UUID"
		}
		return ""
	}
	for _, name := range snaps {
		info, err := btrfs.GetInfo(s.snapshotPath(name))
		if err != nil {
			continue
		}
		if w := which(info); w != "" {
			volume, _, _ := strings.Cut(name, "@")
			return errorf(ErrInvalidArg, "import refused: the stream's subvolume UUID %s is already the %s of snapshot %q of volume %q: a stream must carry a subvolume new to this host; if %q is a copy of that snapshot, it is already here, otherwise make the stream again on the host that took the snapshot",
				hdr.UUID, w, name, volume, hdr.Name)
		}
	}
	for _, name := range vols {
		info, err := btrfs.GetInfo(s.volumePath(name))
		if err != nil {
			continue
		}
		if w := which(info); w != "" {
			return errorf(ErrInvalidArg, "import refused: the stream's subvolume UUID %s is already the %s of volume %q: a stream must carry a subvolume new to this host; make the stream again on the host that took the snapshot",
				hdr.UUID, w, name)
		}
	}
	return nil
}

// findImportParent finds, among the volume's read-only snapshots (newest
// first), the one whose UUID or received UUID is the stream's parent UUID.
func (s *Store) findImportParent(volume string, hdr btrfs.StreamHeader) (string, error) {
	s.mu.RLock()
	entries := s.snapshotsOfLocked(volume)
	s.mu.RUnlock()
	for i := len(entries) - 1; i >= 0; i-- {
		name := entries[i].name
		info, err := btrfs.GetInfo(s.snapshotPath(name))
		if err != nil {
			s.log.Warn("snapshot not readable while looking for an import's parent", "snapshot", name, "error", err)
			continue
		}
		if info.ReadOnly && (info.UUID == hdr.ParentUUID || info.ReceivedUUID == hdr.ParentUUID) {
			return name, nil
		}
	}
	return "", &kindError{kinds: []error{ErrNotFound, ErrNoSuchSnapshot}, msg: fmt.Sprintf(
		"import refused: %q is an incremental stream whose parent (UUID %s, ctransid %d) is not among the snapshots of volume %q: import the parent first, or export a full stream",
		hdr.Name, hdr.ParentUUID, hdr.ParentCTransID, volume)}
}

// importSteps receives the stream into received/<job>/ and, once the rest
// of a compressed stream z passed its checks, snapshots it into
// snapshots/NAME. It leaves received/<job>/ to the caller's resolve.
func (s *Store) importSteps(ctx context.Context, in *intent, hdr btrfs.StreamHeader, parent string, stream io.Reader, z *zstdStream) error {
	name := in.Source
	dir := in.receivedPath(s)
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	if err := s.step(opImport, "dir-created"); err != nil {
		return err
	}
	if err := btrfs.Receive(ctx, dir, stream); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("import of %q failed: %w", name, err)
	}
	if err := z.finish(); err != nil {
		return err
	}
	received := filepath.Join(dir, name)
	parentPath := ""
	if parent != "" {
		parentPath = s.snapshotPath(parent)
	}
	if err := checkReceived(dir, name, hdr, parentPath); err != nil {
		return fmt.Errorf("import of %q failed: %w", name, err)
	}
	if err := s.step(opImport, "received"); err != nil {
		return err
	}

	defer s.locks.lock(in.Volume)()
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.snapshotFree(name); err != nil {
		return err
	}
	dst := s.snapshotPath(name)
	if err := btrfs.Snapshot(received, dst, true); err != nil {
		if isExist(err) {
			return errorf(ErrExists, "import refused: snapshot %q appeared meanwhile", name)
		}
		return err
	}
	info, err := btrfs.GetInfo(dst)
	if err == nil && (!info.ReadOnly || info.ReceivedUUID != hdr.UUID) {
		err = fmt.Errorf("snapshot %q of the received subvolume has received UUID %q and read-only %v: want %q and true", dst, info.ReceivedUUID, info.ReadOnly, hdr.UUID)
	}
	if err == nil {
		if serr := s.step(opImport, "snapshotted"); serr != nil {
			// The switch has happened: the import is finished.
			s.log.Warn("step failed after the import's switch; finishing", "snapshot", name, "error", serr)
		}
		err = ctx.Err() // a job canceled now must not leave its snapshot
	}
	if err != nil {
		if derr := btrfs.Delete(dst); derr != nil {
			s.log.Error("imported snapshot not rolled back", "snapshot", name, "error", derr)
		}
		return err
	}
	s.addSnapshot(name)
	s.log.Info("snapshot imported", "snapshot", name, "received_uuid", hdr.UUID, "incremental", hdr.Incremental())
	return nil
}

// checkReceived checks that btrfs receive left exactly the subvolume the
// header named, complete: read-only and with the stream's UUID as its
// received UUID (both are set only at the end of the stream). For an
// incremental stream, it checks that btrfs receive built it on parentPath,
// the parent butterd chose: btrfs receive looks the parent up by UUID on the
// whole filesystem and snapshots what it found, so the received
// subvolume's parent UUID is the UUID of the subvolume it was built on. The
// caller deletes what dir holds.
func checkReceived(dir, name string, hdr btrfs.StreamHeader, parentPath string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	if len(entries) != 1 || entries[0].Name() != name {
		found := make([]string, len(entries))
		for i, e := range entries {
			found[i] = strconv.Quote(e.Name())
		}
		return fmt.Errorf("the stream must hold the one subvolume %q; btrfs receive made %v", name, found)
	}
	info, err := btrfs.GetInfo(filepath.Join(dir, name))
	if err != nil {
		return err
	}
	if !info.ReadOnly || info.ReceivedUUID != hdr.UUID {
		return fmt.Errorf("received subvolume %q is incomplete (read-only %v, received UUID %q, stream UUID %s)", name, info.ReadOnly, info.ReceivedUUID, hdr.UUID)
	}
	if !hdr.Incremental() {
		return nil
	}
	parent, err := btrfs.GetInfo(parentPath)
	if err != nil {
		return err
	}
	if info.ParentUUID != parent.UUID {
		return errorf(ErrInvalidArg, "received subvolume %q was built by btrfs receive on the subvolume with UUID %q, not on its parent %q (UUID %s): another subvolume on this filesystem has the stream's parent UUID %s as its received UUID or UUID (btrfs subvolume list -uR shows them); the received copy is deleted: send a full stream instead",
			name, info.ParentUUID, parentPath, parent.UUID, hdr.ParentUUID)
	}
	return nil
}

// receivedPath is the job's own directory under received/.
func (in *intent) receivedPath(s *Store) string { return filepath.Join(s.receivedDir, in.ID) }

// resolveImport deletes what an import left in its received/<job>/
// directory, and the directory, and ends the intent. It never touches
// snapshots/: snapshots/NAME exists only once complete. It reports whether
// the import went through.
func (s *Store) resolveImport(in *intent) (forward bool, err error) {
	if _, err := strconv.ParseUint(in.ID, 10, 32); err != nil {
		return false, fmt.Errorf("import journal entry %q does not name a job: left alone", in.ID)
	}
	if err := ValidateSnapshotName(in.Source); err != nil {
		return false, fmt.Errorf("import journal entry %q: %w", in.ID, err)
	}
	forward = isSubvolume(s.snapshotPath(in.Source))
	if err := s.removeReceived(in.receivedPath(s)); err != nil {
		return forward, err
	}
	return forward, s.endIntent(in)
}

// removeReceived deletes a job's directory under received/ with all it
// holds: the subvolumes btrfs receive made there, and anything else (the
// directory is butterd's own, 0700; links in it are removed, never
// followed). A dir that is a symbolic link or no directory is not the
// job's: it is left alone and reported.
func (s *Store) removeReceived(dir string) error {
	st, err := os.Lstat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err
	case !st.IsDir():
		return fmt.Errorf("%q is not a directory butterd made (%s): left alone, remove it by hand", dir, st.Mode().Type())
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		path := filepath.Join(dir, e.Name())
		if e.IsDir() && isSubvolume(path) {
			err = btrfs.Delete(path)
		} else {
			err = os.RemoveAll(path)
		}
		if err != nil {
			return err
		}
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return atomicfile.Sync(s.receivedDir)
}

// countingReader counts the bytes read as the job's progress, as a fraction
// too when the stream's size is known (a regular file).
type countingReader struct {
	r    io.Reader
	p    *JobProgress
	size int64
	done int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	if n > 0 {
		c.done += int64(n)
		c.p.AddBytes(uint64(n))
		if c.size > 0 {
			c.p.SetFraction(min(0.99, float64(c.done)/float64(c.size)))
		}
	}
	return n, err
}

// pollable returns in, or for a pipe or socket an equivalent file in
// non-blocking mode, so that closing it ends a read blocked on a stalled
// writer.
func pollable(in *os.File) *os.File {
	raw, err := in.SyscallConn()
	if err != nil {
		return in
	}
	nfd := -1
	raw.Control(func(fd uintptr) {
		var st unix.Stat_t
		if unix.Fstat(int(fd), &st) != nil {
			return
		}
		if t := st.Mode & unix.S_IFMT; t != unix.S_IFIFO && t != unix.S_IFSOCK {
			return
		}
		if d, err := unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0); err == nil {
			nfd = d
		}
	})
	if nfd < 0 {
		return in
	}
	if err := unix.SetNonblock(nfd, true); err != nil {
		unix.Close(nfd)
		return in
	}
	in.Close()
	return os.NewFile(uintptr(nfd), in.Name())
}
