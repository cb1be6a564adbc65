package service

import (
	"log/slog"
	"runtime"

	"golang.org/x/sys/unix"
)

// ioprio_set(2): IOPRIO_WHO_PROCESS with a thread id sets that thread's I/O
// priority. The best-effort class at its lowest level (7) comes after
// everyone else's best-effort I/O yet always gets its turn; the idle class
// would wait for as long as others keep the disk busy, and the work holds
// volume locks that Docker's Mount waits for.
const (
	ioprioWhoProcess  = 1
	ioprioClassBE     = 2
	ioprioLowestLevel = 7
	ioprioClassShift  = 13
	lowIOPriority     = ioprioClassBE<<ioprioClassShift | ioprioLowestLevel
	ioprioLevelMask   = 1<<ioprioClassShift - 1
)

// lowPriority runs fn on an OS thread of its own with nice 19 and the
// lowest best-effort I/O priority, so that butterd's own work for a
// background job (purge, sync) yields to everything else without ever
// being starved. The thread is locked to a fresh goroutine and never
// unlocked: it ends with that goroutine, so no other goroutine ever runs
// with its priority.
func lowPriority(log *slog.Logger, fn func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // no Unlock: the thread exits with the goroutine
		tid := unix.Gettid()
		if err := unix.Setpriority(unix.PRIO_PROCESS, tid, 19); err != nil {
			log.Debug("low CPU priority not set", "error", err)
		}
		if _, _, e := unix.Syscall(unix.SYS_IOPRIO_SET, ioprioWhoProcess, uintptr(tid), lowIOPriority); e != 0 {
			log.Debug("low I/O priority not set", "error", e)
		}
		done <- fn()
	}()
	return <-done
}
