package service

import (
	"log/slog"
	"testing"

	"golang.org/x/sys/unix"
)

// The work runs at nice 19 with the lowest best-effort I/O priority (not
// the idle class, which other I/O can starve while the work holds a volume
// lock) on its own thread; the caller's thread keeps its priority.
func TestLowPriority(t *testing.T) {
	before, err := unix.Getpriority(unix.PRIO_PROCESS, 0)
	if err != nil {
		t.Fatal(err)
	}
	var nice, ioprio int
	err = lowPriority(slog.New(slog.DiscardHandler), func() error {
		tid := unix.Gettid()
		// getpriority returns 20 - nice.
		p, err := unix.Getpriority(unix.PRIO_PROCESS, tid)
		nice = 20 - p
		r, _, _ := unix.Syscall(unix.SYS_IOPRIO_GET, ioprioWhoProcess, uintptr(tid), 0)
		ioprio = int(r)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if nice != 19 {
		t.Errorf("nice %d in the job, want 19", nice)
	}
	if class, level := ioprio>>ioprioClassShift, ioprio&ioprioLevelMask; class != ioprioClassBE || level != 7 {
		t.Errorf("I/O priority class %d level %d in the job, want best-effort (2) level 7", class, level)
	}
	if after, _ := unix.Getpriority(unix.PRIO_PROCESS, 0); after != before {
		t.Errorf("the process priority changed: %d -> %d", before, after)
	}
}
