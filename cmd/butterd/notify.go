package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"

	"butterd/service"
)

// notifyLoop keeps systemd informed while butterd runs: a STATUS= line with
// what it holds, and WATCHDOG=1 at half the watchdog interval when
// WatchdogSec= is set. Outside systemd it does nothing.
func notifyLoop(ctx context.Context, store *service.Store, log *slog.Logger) {
	every := 30 * time.Second
	wd, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		log.Warn("watchdog setting not understood", "error", err)
	}
	if wd > 0 {
		every = min(every, wd/2)
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		sent, _ := daemon.SdNotify(false, statusLine(store))
		if !sent {
			return // not run by systemd
		}
		if wd > 0 {
			daemon.SdNotify(false, daemon.SdNotifyWatchdog)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func statusLine(store *service.Store) string {
	snaps, _ := store.ListSnapshots("")
	return fmt.Sprintf("STATUS=serving %d volumes, %d snapshots, %d jobs running",
		len(store.ListVolumes()), len(snaps), store.JobsRunning())
}
