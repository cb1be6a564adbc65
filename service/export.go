package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"

	"butterd/btrfs"
)

// ExportOptions tune an export.
type ExportOptions struct {
	// Compress writes the stream compressed with zstd (ImportSnapshot
	// takes either).
	Compress bool
}

// ExportSnapshot writes a snapshot's send stream (incremental against parent
// when given) into out as a job. The job owns out and closes it. At most
// one ExportOptions is taken.
func (s *Store) ExportSnapshot(name, parent string, out *os.File, opts ...ExportOptions) (Job, error) {
	var o ExportOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	snap, err := s.GetSnapshot(name)
	if err != nil {
		out.Close()
		return Job{}, err
	}
	parentPath := ""
	if parent != "" {
		p, err := s.GetSnapshot(parent)
		switch {
		case err != nil:
			err = fmt.Errorf("parent: %w", err)
		case p.Name == snap.Name:
			err = errorf(ErrInvalidArg, "parent %q is the snapshot exported itself: give an older snapshot of volume %q", parent, snap.Volume)
		case p.Volume != snap.Volume:
			err = errorf(ErrInvalidArg, "parent %q is a snapshot of volume %q, not of %q: give a snapshot of the same volume", parent, p.Volume, snap.Volume)
		}
		if err != nil {
			out.Close()
			return Job{}, err
		}
		parentPath = p.Path
	}
	path := s.snapshotPath(name)
	uses := []string{name}
	if parent != "" {
		uses = append(uses, parent)
	}
	job, err := s.startJob("export", name, uses, func(ctx context.Context, p *JobProgress) error {
		defer out.Close()
		// Canceling also closes out: a write blocked on a stalled reader
		// returns at once.
		stop := context.AfterFunc(ctx, func() { out.Close() })
		defer stop()
		if !o.Compress {
			return sendTo(ctx, path, parentPath, out, p)
		}
		enc, err := zstd.NewWriter(out, zstd.WithEncoderLevel(zstd.SpeedDefault))
		if err != nil {
			return err
		}
		err = sendTo(ctx, path, parentPath, enc, p)
		if cerr := enc.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("write stream: %w", cerr)
		}
		return err
	})
	if err != nil {
		out.Close()
	}
	return job, err
}

// streamPipeSize is the size of the pipe the send ioctl writes into, and
// of the buffer an import reads a stream through.
const streamPipeSize = 1 << 20

// sendTo runs the send ioctl into a pipe and copies the pipe to out,
// counting bytes. Canceling ctx closes the pipe, which ends the send.
func sendTo(ctx context.Context, path, parent string, out io.Writer, p *JobProgress) error {
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	// A larger pipe lets the send ioctl run ahead of the copy in bigger
	// steps (fewer wake-ups); its default size works too.
	unix.FcntlInt(w.Fd(), unix.F_SETPIPE_SZ, streamPipeSize)
	sent := make(chan error, 1)
	go func() {
		err := btrfs.Send(path, parent, w)
		w.Close()
		sent <- err
	}()
	stop := context.AfterFunc(ctx, func() { r.Close() })
	defer stop()
	_, copyErr := io.Copy(&countingWriter{w: out, p: p}, r)
	r.Close()
	sendErr := <-sent
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case copyErr != nil && !errors.Is(copyErr, os.ErrClosed):
		return fmt.Errorf("write stream: %w", copyErr)
	case sendErr != nil:
		return sendErr
	}
	return nil
}

type countingWriter struct {
	w io.Writer
	p *JobProgress
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.p.AddBytes(uint64(n))
	return n, err
}
