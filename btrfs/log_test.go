package btrfs

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"unsafe"
)

func TestDebugLog(t *testing.T) {
	var buf bytes.Buffer
	old := slog.Default()
	t.Cleanup(func() { slog.SetDefault(old) })

	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})))
	var flags uint64
	ioctl("info", "/x", -1, iocSubvolGetflags, unsafe.Pointer(&flags))
	if buf.Len() != 0 {
		t.Errorf("logged at info level: %s", buf.String())
	}

	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	err := ioctl("info", "/x", -1, iocSubvolGetflags, unsafe.Pointer(&flags))
	if err == nil {
		t.Fatal("ioctl on fd -1 succeeded")
	}
	line := buf.String()
	for _, want := range []string{"level=DEBUG", "subsystem=btrfs", "op=info", "call=BTRFS_IOC_SUBVOL_GETFLAGS", "path=/x", "duration=", `err="bad file descriptor"`} {
		if !strings.Contains(line, want) {
			t.Errorf("log line %q lacks %q", line, want)
		}
	}
}
