package btrfs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// receiveWaitDelay bounds how long Receive waits, once btrfs receive has
// exited, for the copy of r into its stdin to stop (a read of r may block).
const receiveWaitDelay = 5 * time.Second

// receiveCopySize is the largest step of the copy into btrfs receive.
const receiveCopySize = 1 << 20

// Receive runs `btrfs receive -C -e -E 1 DIR` with r as its stdin: it
// creates the subvolume the stream carries inside dir (chrooted there, so
// nothing is written outside it), stops after the stream's end marker and at
// the first error, and leaves the subvolume read-only with the stream's
// UUID as its received UUID. An incremental stream's parent is looked up by
// btrfs receive on the whole filesystem (by received UUID, then UUID, the
// first match) and snapshotted: the received subvolume's parent UUID says
// which subvolume it was built on, for the caller to check.
//
// The child is killed when ctx is canceled and when the calling thread
// dies (PDEATHSIG). The error carries btrfs receive's own output. Receive
// may read r past the end of the stream; when it returns, a read of r that
// is blocked (a stalled pipe) may still be in flight: the caller closes r
// to end it.
func Receive(ctx context.Context, dir string, r io.Reader) error {
	const op = "receive"
	args := []string{"receive", "-C", "-e", "-E", "1", dir}
	cmd := exec.CommandContext(ctx, "btrfs", args...)
	in := &badStreamReader{r: r}
	cmd.Stdin = in
	out := &cappedBuffer{max: 16 << 10}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = receiveWaitDelay
	start := time.Now()
	// PDEATHSIG fires when the thread that started the child exits: keep
	// this goroutine on its thread, so that no other goroutine can end it
	// (by exiting while locked to it) while the child runs.
	runtime.LockOSThread()
	err := cmd.Run()
	runtime.UnlockOSThread()
	if err != nil && cmd.ProcessState != nil && cmd.ProcessState.Success() && ctx.Err() == nil {
		// Exited well after the end marker; only the copy of r lingered
		// (exec.ErrWaitDelay).
		err = nil
	}
	debugDone(op, "btrfs "+strings.Join(args, " "), dir, start, err)
	if ctx.Err() != nil {
		return &Error{op, dir, fmt.Errorf("btrfs receive stopped: %w", ctx.Err())}
	}
	if bad := in.bad(); err != nil && bad != nil {
		// butterd's own check of the stream stopped it: its reason is
		// the one that matters, not how btrfs receive met the cut.
		return &Error{op, dir, bad}
	}
	if err != nil {
		msg := fmt.Sprintf("%v: %s", err, receiveErrors(out.String()))
		if strings.Contains(out.String(), "No space left on device") {
			return &Error{op, dir, &progsError{msg, syscall.ENOSPC}}
		}
		return &Error{op, dir, errors.New(msg)}
	}
	return nil
}

// progsError is a failure of a btrfs-progs command whose output names an
// errno, which errors.Is finds.
type progsError struct {
	msg   string
	errno syscall.Errno
}

func (e *progsError) Error() string { return e.msg }
func (e *progsError) Unwrap() error { return e.errno }

// receiveErrors keeps the ERROR lines of btrfs receive's output (all of it
// when there are none) on one line.
func receiveErrors(out string) string {
	var all, errs []string
	for _, line := range strings.Split(out, "\n") {
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		all = append(all, line)
		if strings.Contains(line, "ERROR") {
			errs = append(errs, line)
		}
	}
	switch {
	case len(errs) > 0:
		return strings.Join(errs, "; ")
	case len(all) > 0:
		return strings.Join(all, "; ")
	}
	return "no output"
}

// cappedBuffer keeps the first max bytes written to it and counts the rest.
type cappedBuffer struct {
	max     int
	b       []byte
	dropped int
}

func (c *cappedBuffer) Write(p []byte) (int, error) {
	n := min(len(p), c.max-len(c.b))
	c.b = append(c.b, p[:n]...)
	c.dropped += len(p) - n
	return len(p), nil
}

func (c *cappedBuffer) String() string {
	if c.dropped > 0 {
		return fmt.Sprintf("%s... (%d more bytes)", c.b, c.dropped)
	}
	return string(c.b)
}

// badStreamReader remembers the first ErrBadStream error of r.
type badStreamReader struct {
	r   io.Reader
	mu  sync.Mutex
	err error
}

func (b *badStreamReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && errors.Is(err, ErrBadStream) {
		b.mu.Lock()
		if b.err == nil {
			b.err = err
		}
		b.mu.Unlock()
	}
	return n, err
}

// WriteTo copies the stream into w (btrfs receive's stdin) in steps of up
// to receiveCopySize, rather than the 32 KiB of io.Copy.
func (b *badStreamReader) WriteTo(w io.Writer) (int64, error) {
	if f, ok := w.(syscall.Conn); ok {
		// A bigger pipe, fewer wake-ups; the default size works too.
		if raw, err := f.SyscallConn(); err == nil {
			raw.Control(func(fd uintptr) { unix.FcntlInt(fd, unix.F_SETPIPE_SZ, receiveCopySize) })
		}
	}
	return io.CopyBuffer(w, struct{ io.Reader }{b}, make([]byte, receiveCopySize))
}

func (b *badStreamReader) bad() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}
