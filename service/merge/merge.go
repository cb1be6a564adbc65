// Package merge brings the files of one directory tree into another that
// may be in use, as a sync does (DESIGN.md "Replication"): whatever the
// target lacks, or holds older (by mtime), is written from the source;
// nothing in the target is ever deleted; no symlink is followed on either
// side, and nothing is written outside the target (each directory is
// opened from its parent without following symlinks, mounts and nested
// subvolumes are left alone); each file appears whole: written in a
// staging directory at the target's root, synced, then renamed into place.
package merge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"butterd/btrfs"
)

// StagePrefix starts the name of every staging directory. Entries of the
// source's root with this prefix (another host's staging) are not merged.
const StagePrefix = ".butterd-sync-"

// Options change what Tree does.
type Options struct {
	// Stage names the staging directory, made at the target's root on
	// first need (StagePrefix and an id; it must not exist) and removed
	// at the end. Whoever journals the merge removes it after a crash
	// with RemoveStage.
	Stage string
	// BeforeWrite runs once, before the first change to the target (a
	// safety snapshot); its error stops the merge.
	BeforeWrite func() error
	// Progress is told of each entry examined (files) and of the bytes
	// of each file placed in the target; its error stops the merge.
	Progress func(files int, bytes int64) error
}

// Stats says what a merge did.
type Stats struct {
	Created   int // files, symlinks and directories the target lacked
	Updated   int // files and symlinks replaced by newer ones
	Unchanged int // entries the target holds as new, and directories merged
	// LeftAlone counts entries of the target that are not replaced: a
	// directory where the source has a file, a symlink or file where it
	// has a directory, a mount or nested subvolume, an entry changed
	// while the merge ran.
	LeftAlone int
	Skipped   int      // source entries of other types (devices, fifos, sockets)
	Reflinked int64    // bytes written by sharing the source's data
	Copied    int64    // bytes copied (NOCOW files, another filesystem)
	Notes     []string // the first entries left alone or skipped, and why
}

// Changed reports whether the merge changed the target.
func (s Stats) Changed() bool { return s.Created+s.Updated > 0 }

const (
	maxNotes     = 10
	batchEntries = 128       // temporaries renamed into place together
	batchBytes   = 256 << 20 // bytes copied before a batch is placed
	// fsyncEach is the most files of a batch synced one by one; a larger
	// batch is synced with one syncfs (one commit, but of all the
	// filesystem's dirty data).
	fsyncEach = 16
	openDir   = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
)

// Tree merges the tree at src into the tree at dst. It stops at the first
// error (an entry left alone is none) and at the end of ctx; what it
// placed until then stays, whole, and its staging directory goes.
func Tree(ctx context.Context, src, dst string, opts Options) (Stats, error) {
	if !strings.HasPrefix(opts.Stage, StagePrefix) || strings.ContainsRune(opts.Stage, '/') {
		return Stats{}, fmt.Errorf("staging directory %q: want %s and an id", opts.Stage, StagePrefix)
	}
	sfd, err := unix.Open(src, openDir, 0)
	if err != nil {
		return Stats{}, fmt.Errorf("open %q: %w", src, err)
	}
	defer unix.Close(sfd)
	dfd, err := unix.Open(dst, openDir, 0)
	if err != nil {
		return Stats{}, fmt.Errorf("open %q: %w", dst, err)
	}
	defer unix.Close(dfd)
	var st unix.Stat_t
	if err := unix.Fstat(dfd, &st); err != nil {
		return Stats{}, err
	}
	m := &merger{ctx: ctx, opts: opts, dst: dst, root: dfd, dev: st.Dev, stage: -1}
	err = m.dir(sfd, &dirState{fd: dfd}, "")
	if err == nil {
		err = m.flush()
	}
	m.drop()
	if m.stage >= 0 {
		unix.Close(m.stage)
		if rerr := RemoveStage(dst, opts.Stage); rerr != nil && err == nil {
			err = rerr
		}
		// The staging directory gone for good before the caller's
		// journal says the merge is over.
		if serr := unix.Fsync(dfd); serr != nil && err == nil {
			err = serr
		}
	}
	return m.st, err
}

// RemoveStage deletes the staging directory stage at the root of dst and
// all it holds (temporaries only), if it is there. Anything but a
// directory under that name is left alone, with an error.
func RemoveStage(dst, stage string) error {
	if !strings.HasPrefix(stage, StagePrefix) || strings.ContainsRune(stage, '/') {
		return fmt.Errorf("%q is not a staging directory's name", stage)
	}
	path := filepath.Join(dst, stage)
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return err
	case !fi.IsDir():
		return fmt.Errorf("%q is not a staging directory: left alone, remove it by hand", path)
	}
	return os.RemoveAll(path) // never follows symlinks
}

type merger struct {
	ctx   context.Context
	opts  Options
	dst   string
	root  int    // the target's root
	dev   uint64 // its device: a directory on another is a mount or subvolume
	stage int    // the staging directory, -1 until made
	ready bool   // BeforeWrite ran
	seq   int
	st    Stats

	pending  []placement // written, waiting to be synced and placed
	copied   int64       // bytes copied in the batch
	dirTimes []dirTime   // created directories, finished: their times
}

// dirState is a target directory being merged.
type dirState struct {
	fd    int
	nocow int // 0 unknown, 1 off, 2 on
}

// placement is a temporary to rename into place: the target lacked the
// entry (had false), or held an older one, as seen then.
type placement struct {
	dir       int      // a duplicate of the target directory's descriptor
	file      *os.File // the temporary, open (nil for a symlink)
	name, rel string
	tmp       string
	had       bool
	was       unix.Stat_t
	bytes     int64
	reflinked bool
}

type dirTime struct {
	dir  int // a duplicate of the parent's descriptor
	name string
	ino  uint64
	ts   []unix.Timespec
}

// dir merges the source directory src into the target directory d; rel is
// their path from the roots.
func (m *merger) dir(src int, d *dirState, rel string) error {
	names, err := readNames(src)
	if err != nil {
		return fmt.Errorf("read source directory %q: %w", show(rel), err)
	}
	for _, name := range names {
		if err := m.ctx.Err(); err != nil {
			return err
		}
		if rel == "" && strings.HasPrefix(name, StagePrefix) {
			continue
		}
		path := filepath.Join(rel, name)
		var ss, ds unix.Stat_t
		if err := unix.Fstatat(src, name, &ss, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("source %q: %w", path, err)
		}
		derr := unix.Fstatat(d.fd, name, &ds, unix.AT_SYMLINK_NOFOLLOW)
		if derr != nil && derr != unix.ENOENT {
			return fmt.Errorf("%q: %w", path, derr)
		}
		had := derr == nil
		if err := m.progress(1, 0); err != nil {
			return err
		}
		switch ss.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			err = m.subdir(src, d, name, path, &ss, had, &ds)
		case unix.S_IFREG, unix.S_IFLNK:
			switch {
			case !had || (!isDir(&ds) && newer(&ss, &ds)):
				err = m.write(src, d, name, path, &ss, had, &ds)
			case isDir(&ds):
				m.leftAlone(path, "a directory here, a %s in the source", kind(&ss))
			default:
				m.st.Unchanged++
			}
		default:
			m.st.Skipped++
			m.note(path, "skipped: a %s (only files, symlinks and directories are synced)", kind(&ss))
		}
		if err != nil {
			return err
		}
		if len(m.pending)+len(m.dirTimes) >= batchEntries || m.copied >= batchBytes {
			if err := m.flush(); err != nil {
				return err
			}
		}
	}
	return nil
}

// subdir merges a source directory into the target's directory of that
// name, made first (whole, with the source's owner, mode and xattrs) when
// missing.
func (m *merger) subdir(src int, d *dirState, name, path string, ss *unix.Stat_t, had bool, ds *unix.Stat_t) error {
	if had {
		switch {
		case !isDir(ds):
			m.leftAlone(path, "a %s here, a directory in the source", kind(ds))
			return nil
		case ds.Dev != m.dev:
			m.leftAlone(path, "another filesystem or subvolume is here")
			return nil
		}
	}
	sfd, err := unix.Openat(src, name, openDir, 0)
	if err != nil {
		return fmt.Errorf("source %q: %w", path, err)
	}
	defer unix.Close(sfd)
	if had {
		fd, err := unix.Openat(d.fd, name, openDir, 0)
		if err != nil {
			if err == unix.ELOOP || err == unix.ENOTDIR || err == unix.ENOENT {
				m.leftAlone(path, "changed while the sync ran")
				return nil
			}
			return fmt.Errorf("%q: %w", path, err)
		}
		defer unix.Close(fd)
		var now unix.Stat_t
		if err := unix.Fstat(fd, &now); err != nil {
			return err
		}
		if now.Ino != ds.Ino || now.Dev != ds.Dev {
			m.leftAlone(path, "changed while the sync ran")
			return nil
		}
		m.st.Unchanged++
		return m.dir(sfd, &dirState{fd: fd}, path)
	}

	if err := m.prepare(); err != nil {
		return err
	}
	tmp := m.tmpName()
	if err := unix.Mkdirat(m.stage, tmp, 0o700); err != nil {
		return fmt.Errorf("make directory %q: %w", path, err)
	}
	fd, err := unix.Openat(m.stage, tmp, openDir, 0)
	if err != nil {
		return fmt.Errorf("make directory %q: %w", path, err)
	}
	defer unix.Close(fd)
	var made unix.Stat_t
	err = unix.Fstat(fd, &made)
	if err == nil {
		err = m.matchNoCOW(fd, path, d.noCOW(path))
	}
	if err == nil {
		err = setAttrs(sfd, fd, ss)
	}
	if err == nil {
		err = unix.Renameat2(m.stage, tmp, d.fd, name, unix.RENAME_NOREPLACE)
		if err == unix.EEXIST {
			unix.Unlinkat(m.stage, tmp, unix.AT_REMOVEDIR)
			m.leftAlone(path, "appeared while the sync ran")
			return nil
		}
	}
	if err != nil {
		return fmt.Errorf("make directory %q: %w", path, err)
	}
	m.st.Created++
	// fd follows the directory to its place.
	if err := m.dir(sfd, &dirState{fd: fd}, path); err != nil {
		return err
	}
	parent, err := unix.Dup(d.fd)
	if err != nil {
		return err
	}
	m.dirTimes = append(m.dirTimes, dirTime{dir: parent, name: name, ino: made.Ino, ts: times(ss)})
	return nil
}

// write writes a file or symlink as a temporary in the staging directory,
// with the source's owner, mode, xattrs and times, to be placed with its
// batch.
func (m *merger) write(src int, d *dirState, name, path string, ss *unix.Stat_t, had bool, ds *unix.Stat_t) error {
	if err := m.prepare(); err != nil {
		return err
	}
	tmp := m.tmpName()
	p := placement{name: name, rel: path, tmp: tmp, had: had}
	if had {
		p.was = *ds
	}
	var err error
	if ss.Mode&unix.S_IFMT == unix.S_IFLNK {
		err = m.symlink(src, name, tmp, ss)
	} else {
		p.file, p.bytes, p.reflinked, err = m.file(src, d, name, path, tmp, ss, had, ds)
	}
	if err == nil {
		err = unix.UtimesNanoAt(m.stage, tmp, times(ss), unix.AT_SYMLINK_NOFOLLOW)
	}
	p.dir = -1
	if err == nil {
		p.dir, err = unix.Dup(d.fd)
	}
	if err != nil {
		p.close()
		unix.Unlinkat(m.stage, tmp, 0)
		return fmt.Errorf("write %q: %w", path, err)
	}
	m.pending = append(m.pending, p)
	if !p.reflinked {
		m.copied += p.bytes
	}
	return nil
}

func (m *merger) symlink(src int, name, tmp string, ss *unix.Stat_t) error {
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlinkat(src, name, buf)
	if err != nil {
		return err
	}
	if n == len(buf) {
		return unix.ENAMETOOLONG
	}
	if err := unix.Symlinkat(string(buf[:n]), m.stage, tmp); err != nil {
		return err
	}
	return unix.Fchownat(m.stage, tmp, int(ss.Uid), int(ss.Gid), unix.AT_SYMLINK_NOFOLLOW)
}

// file writes a regular file's temporary, and returns it open: its data
// shared with the source (reflink), or copied where BTRFS refuses to share
// (a NOCOW file). The temporary keeps the NOCOW state of the file it
// replaces, or gets its directory's.
func (m *merger) file(src int, d *dirState, name, path, tmp string, ss *unix.Stat_t, had bool, ds *unix.Stat_t) (*os.File, int64, bool, error) {
	in, err := unix.Openat(src, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, 0, false, err
	}
	inf := os.NewFile(uintptr(in), path)
	defer inf.Close()
	out, err := unix.Openat(m.stage, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, 0, false, err
	}
	outf := os.NewFile(uintptr(out), path)
	n, reflinked, err := m.fill(inf, outf, d, name, path, ss, had, ds)
	if err != nil {
		outf.Close()
		return nil, 0, false, err
	}
	return outf, n, reflinked, nil
}

func (m *merger) fill(inf, outf *os.File, d *dirState, name, path string, ss *unix.Stat_t, had bool, ds *unix.Stat_t) (int64, bool, error) {
	in, out := int(inf.Fd()), int(outf.Fd())
	var err error
	nocow := false
	if had && ds.Mode&unix.S_IFMT == unix.S_IFREG {
		if nocow, err = fileNoCOW(d.fd, name, path); err != nil {
			return 0, false, err
		}
	} else {
		nocow = d.noCOW(path)
	}
	if err := m.matchNoCOW(out, path, nocow); err != nil {
		return 0, false, err
	}
	size, reflinked := ss.Size, true
	if size > 0 {
		if btrfs.Reflink(path, out, in) != nil {
			reflinked = false
			n, err := copyData(inf, outf, size)
			if err != nil {
				return n, false, err
			}
			size = n
		}
	}
	return size, reflinked, setAttrs(in, out, ss)
}

// copyData copies the first size bytes of in to the empty out and says
// how many bytes of data it wrote. Holes stay holes: only the data ranges
// that SEEK_DATA and SEEK_HOLE find are written (a byte copy would read
// holes as zeros and write them, filling the pool with a sparse disk
// image), then out is given in's size.
func copyData(in, out *os.File, size int64) (int64, error) {
	fd := int(in.Fd())
	var copied int64
	for off := int64(0); off < size; {
		start, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // only a hole after off
		}
		end := size
		if err == nil {
			end, err = unix.Seek(fd, start, unix.SEEK_HOLE)
		}
		if errors.Is(err, unix.EINVAL) { // no hole support: all data
			start, end, err = off, size, nil
		}
		if err != nil {
			return copied, err
		}
		if start >= size {
			break
		}
		end = min(end, size)
		if _, err := in.Seek(start, io.SeekStart); err != nil {
			return copied, err
		}
		if _, err := out.Seek(start, io.SeekStart); err != nil {
			return copied, err
		}
		n, err := io.CopyN(out, in, end-start)
		copied += n
		if err != nil {
			return copied, err
		}
		off = end
	}
	return copied, out.Truncate(size)
}

// setAttrs gives the target out (a new file or directory) the owner, mode
// and xattrs of the source in. The owner comes first: changing it clears
// set-id bits and file capabilities.
func setAttrs(in, out int, ss *unix.Stat_t) error {
	if err := unix.Fchown(out, int(ss.Uid), int(ss.Gid)); err != nil {
		return err
	}
	if err := unix.Fchmod(out, ss.Mode&0o7777); err != nil {
		return err
	}
	return copyXattrs(in, out)
}

func copyXattrs(in, out int) error {
	size, err := unix.Flistxattr(in, nil)
	if err != nil || size == 0 {
		return err
	}
	buf := make([]byte, size)
	if size, err = unix.Flistxattr(in, buf); err != nil {
		return err
	}
	for _, attr := range strings.Split(strings.TrimRight(string(buf[:size]), "\x00"), "\x00") {
		n, err := unix.Fgetxattr(in, attr, nil)
		if err != nil {
			return fmt.Errorf("xattr %s: %w", attr, err)
		}
		val := make([]byte, n)
		if n, err = unix.Fgetxattr(in, attr, val); err != nil {
			return fmt.Errorf("xattr %s: %w", attr, err)
		}
		if err := unix.Fsetxattr(out, attr, val[:n], 0); err != nil {
			return fmt.Errorf("xattr %s: %w", attr, err)
		}
	}
	return nil
}

// flush places the batch: the temporaries' data is put on disk, then each
// is renamed into place, unless its target changed meanwhile; then
// finished new directories get their times.
func (m *merger) flush() error {
	if err := m.syncBatch(); err != nil {
		return fmt.Errorf("sync the files written: %w", err)
	}
	var err error
	for i, p := range m.pending {
		if err = m.place(p); err != nil {
			m.pending = m.pending[i:]
			return err
		}
		p.close()
	}
	m.pending, m.copied = m.pending[:0], 0
	for i, d := range m.dirTimes {
		var st unix.Stat_t
		if unix.Fstatat(d.dir, d.name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Ino == d.ino && isDir(&st) {
			err = unix.UtimesNanoAt(d.dir, d.name, d.ts, unix.AT_SYMLINK_NOFOLLOW)
		}
		if err != nil {
			m.dirTimes = m.dirTimes[i:]
			return err
		}
		unix.Close(d.dir)
	}
	m.dirTimes = m.dirTimes[:0]
	return nil
}

// syncBatch puts the data of the batch's files on disk: one fsync each, or
// one syncfs for a large batch.
func (m *merger) syncBatch() error {
	files := 0
	for _, p := range m.pending {
		if p.file != nil {
			files++
		}
	}
	if files > fsyncEach {
		return unix.Syncfs(m.stage)
	}
	for _, p := range m.pending {
		if p.file != nil {
			if err := p.file.Sync(); err != nil {
				return err
			}
		}
	}
	return nil
}

func (p *placement) close() {
	if p.file != nil {
		p.file.Close()
	}
	if p.dir >= 0 {
		unix.Close(p.dir)
	}
}

// place renames a temporary into place: where the target had nothing and
// still has nothing, or over the entry it held if that is unchanged.
func (m *merger) place(p placement) error {
	var cur unix.Stat_t
	err := unix.Fstatat(p.dir, p.name, &cur, unix.AT_SYMLINK_NOFOLLOW)
	if err != nil && err != unix.ENOENT {
		return fmt.Errorf("%q: %w", p.rel, err)
	}
	exists := err == nil
	// As it was when the temporary was written?
	same := exists == p.had && (!exists || cur.Ino == p.was.Ino && cur.Mtim == p.was.Mtim)
	if same {
		if p.had {
			err = unix.Renameat(m.stage, p.tmp, p.dir, p.name)
		} else if err = unix.Renameat2(m.stage, p.tmp, p.dir, p.name, unix.RENAME_NOREPLACE); err == unix.EEXIST {
			same, err = false, nil
		}
		if err != nil {
			return fmt.Errorf("place %q: %w", p.rel, err)
		}
	}
	if !same {
		unix.Unlinkat(m.stage, p.tmp, 0)
		m.leftAlone(p.rel, "changed while the sync ran")
		return nil
	}
	if p.had {
		m.st.Updated++
	} else {
		m.st.Created++
	}
	if p.reflinked {
		m.st.Reflinked += p.bytes
	} else {
		m.st.Copied += p.bytes
	}
	return m.progress(0, p.bytes)
}

// prepare runs BeforeWrite and makes the staging directory, once.
func (m *merger) prepare() error {
	if !m.ready && m.opts.BeforeWrite != nil {
		if err := m.opts.BeforeWrite(); err != nil {
			return err
		}
	}
	m.ready = true
	if m.stage >= 0 {
		return nil
	}
	if err := unix.Mkdirat(m.root, m.opts.Stage, 0o700); err != nil {
		return fmt.Errorf("make the staging directory %q in %q: %w", m.opts.Stage, m.dst, err)
	}
	fd, err := unix.Openat(m.root, m.opts.Stage, openDir, 0)
	if err != nil {
		return fmt.Errorf("open the staging directory %q in %q: %w", m.opts.Stage, m.dst, err)
	}
	m.stage = fd
	return nil
}

// drop closes what a failed merge still holds; its temporaries go with
// the staging directory.
func (m *merger) drop() {
	for _, p := range m.pending {
		p.close()
	}
	for _, d := range m.dirTimes {
		unix.Close(d.dir)
	}
	m.pending, m.dirTimes = nil, nil
}

func (m *merger) tmpName() string {
	m.seq++
	return strconv.Itoa(m.seq)
}

// matchNoCOW turns NOCOW on or off for a new, empty file or directory
// (a filesystem without the flag has it off).
func (m *merger) matchNoCOW(fd int, path string, on bool) error {
	have, err := btrfs.FileNoCOW(path, fd)
	if err != nil && !on {
		return nil
	}
	if err != nil || have == on {
		return err
	}
	return btrfs.SetFileNoCOW(path, fd, on)
}

// noCOW reports whether new files in the directory are NOCOW (a failure
// to read it counts as no).
func (d *dirState) noCOW(path string) bool {
	if d.nocow == 0 {
		d.nocow = 1
		if on, err := btrfs.FileNoCOW(path, d.fd); err == nil && on {
			d.nocow = 2
		}
	}
	return d.nocow == 2
}

// fileNoCOW reports whether the regular file name in dir is NOCOW.
func fileNoCOW(dir int, name, path string) (bool, error) {
	fd, err := unix.Openat(dir, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		if err == unix.ELOOP || err == unix.ENOENT {
			return false, nil // changed meanwhile: placing it will tell
		}
		return false, fmt.Errorf("%q: %w", path, err)
	}
	defer unix.Close(fd)
	return btrfs.FileNoCOW(path, fd)
}

func (m *merger) leftAlone(path, format string, args ...any) {
	m.st.LeftAlone++
	m.note(path, "left alone: "+format, args...)
}

func (m *merger) note(path, format string, args ...any) {
	if len(m.st.Notes) < maxNotes {
		m.st.Notes = append(m.st.Notes, strconv.Quote(path)+": "+fmt.Sprintf(format, args...))
	}
}

func (m *merger) progress(files int, bytes int64) error {
	if m.opts.Progress == nil {
		return nil
	}
	return m.opts.Progress(files, bytes)
}

// readNames lists a directory open as fd, sorted (fd stays open).
func readNames(fd int) ([]string, error) {
	dup, err := unix.Openat(fd, ".", openDir, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(dup), ".")
	defer f.Close()
	names, err := f.Readdirnames(-1)
	sort.Strings(names)
	return names, err
}

func isDir(st *unix.Stat_t) bool { return st.Mode&unix.S_IFMT == unix.S_IFDIR }

// newer reports whether a's mtime is after b's.
func newer(a, b *unix.Stat_t) bool {
	return a.Mtim.Sec > b.Mtim.Sec || a.Mtim.Sec == b.Mtim.Sec && a.Mtim.Nsec > b.Mtim.Nsec
}

func times(st *unix.Stat_t) []unix.Timespec { return []unix.Timespec{st.Atim, st.Mtim} }

func kind(st *unix.Stat_t) string {
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		return "file"
	case unix.S_IFDIR:
		return "directory"
	case unix.S_IFLNK:
		return "symlink"
	case unix.S_IFIFO:
		return "fifo"
	case unix.S_IFSOCK:
		return "socket"
	case unix.S_IFCHR:
		return "character device"
	case unix.S_IFBLK:
		return "block device"
	}
	return "special file"
}

func show(rel string) string {
	if rel == "" {
		return "."
	}
	return rel
}
