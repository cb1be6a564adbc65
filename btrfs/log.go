package btrfs

import (
	"context"
	"log/slog"
	"time"
)

// debugStart returns the time now when debug logging is on and the zero
// time otherwise, so that an ioctl costs nothing more when it is off.
func debugStart() time.Time {
	if !slog.Default().Enabled(context.Background(), slog.LevelDebug) {
		return time.Time{}
	}
	return time.Now()
}

// debugDone logs one call (an ioctl or renameat2) made for op on path.
func debugDone(op, call, path string, start time.Time, err error) {
	if start.IsZero() {
		return
	}
	attrs := []slog.Attr{
		slog.String("subsystem", "btrfs"),
		slog.String("op", op),
		slog.String("call", call),
		slog.String("path", path),
		slog.Duration("duration", time.Since(start)),
	}
	if err != nil {
		attrs = append(attrs, slog.String("err", err.Error()))
	}
	slog.Default().LogAttrs(context.Background(), slog.LevelDebug, "btrfs call", attrs...)
}
