package service

import (
	"log/slog"
	"runtime"

	"golang.org/x/sys/unix"
)

// ioprio_set(2): IOPRIO_WHO_PROCESS with a thread id sets that thread's I/O
// priority; IOPRIO_CLASS_IDLE gets disk time only when no one else wants it.
const (
	ioprioWhoProcess = 1
	ioprioClassIdle  = 3
	ioprioClassShift = 13
)

// lowPriority runs fn on an OS thread of its own with nice 19 and the idle
// I/O class, so that butterd's own work for a background job (purge)
// yields to everything else. The thread is locked to a fresh goroutine and
// never unlocked: it ends with that goroutine, so no other goroutine ever
// runs with its priority.
func lowPriority(log *slog.Logger, fn func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // no Unlock: the thread exits with the goroutine
		tid := unix.Gettid()
		if err := unix.Setpriority(unix.PRIO_PROCESS, tid, 19); err != nil {
			log.Debug("low CPU priority not set", "error", err)
		}
		if _, _, e := unix.Syscall(unix.SYS_IOPRIO_SET, ioprioWhoProcess, uintptr(tid), ioprioClassIdle<<ioprioClassShift); e != 0 {
			log.Debug("idle I/O priority not set", "error", e)
		}
		done <- fn()
	}()
	return <-done
}
