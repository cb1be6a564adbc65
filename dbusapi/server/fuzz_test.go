package server

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"butterd/dbusapi"
)

// FuzzDecodeArgs feeds any value to what the Manager decodes itself before
// calling the service (names go to the service as they are, which checks
// them): flags, time and duration arguments, and object paths. Refusals are
// InvalidArgument errors; what is accepted is exactly what was sent.
func FuzzDecodeArgs(f *testing.F) {
	f.Add(uint64(0), uint64(1), uint64(0), uint64(0), string(dbusapi.VolumePath("v1")))
	f.Add(uint64(3), uint64(1), uint64(math.MaxInt64), uint64(math.MaxInt64), string(dbusapi.SnapshotPath("v1@2026-01-01T00:00:00.000000")))
	f.Add(uint64(1<<63), uint64(0), uint64(1<<63), uint64(math.MaxUint64), string(dbusapi.VolumePrefix)+"a_2fb")
	f.Add(uint64(1), uint64(1), uint64(1_780_000_000_000_000), uint64(3_600_000_000), string(dbusapi.VolumePrefix)+"_2e_2e")
	f.Add(uint64(0), uint64(0), uint64(1), uint64(1), string(dbusapi.SchedulePrefix)+"butterd_2dsched")
	f.Add(uint64(0), uint64(0), uint64(0), uint64(0), string(dbusapi.VolumePrefix)+"a/b")
	f.Add(uint64(0), uint64(0), uint64(0), uint64(0), string(dbusapi.VolumePrefix)+"_2F")
	f.Fuzz(func(t *testing.T, flags, known, at, every uint64, path string) {
		if err := checkFlags(flags, known); (err == nil) != (flags&^known == 0) || err != nil && err.Name != dbusapi.ErrInvalidArgument {
			t.Fatalf("checkFlags(%#x, %#x) = %v", flags, known, err)
		}
		now := time.Unix(1_780_000_000, 0)
		when, err := moment(at, now)
		switch {
		case err != nil:
			if err.Name != dbusapi.ErrInvalidArgument || at <= math.MaxInt64 {
				t.Fatalf("moment(%d) refused: %v", at, err)
			}
		case at == 0 && !when.Equal(now), at != 0 && uint64(when.UnixMicro()) != at:
			t.Fatalf("moment(%d) = %v", at, when)
		}
		d, err := span("every_usec", every)
		switch {
		case err != nil:
			if err.Name != dbusapi.ErrInvalidArgument || every <= math.MaxInt64/1000 {
				t.Fatalf("span(%d) refused: %v", every, err)
			}
		case d < 0 || uint64(d.Microseconds()) != every:
			t.Fatalf("span(%d) = %v", every, d)
		}

		p := dbus.ObjectPath(path)
		spec, name, ok := resolvePath(p)
		if !ok {
			return
		}
		var prefix dbus.ObjectPath
		switch spec {
		case &volumeSpec:
			prefix = dbusapi.VolumePrefix
		case &snapshotSpec:
			prefix = dbusapi.SnapshotPrefix
		case &scheduleSpec:
			prefix = dbusapi.SchedulePrefix
		default:
			t.Fatalf("resolvePath(%q) gave an unknown interface", path)
		}
		if want := prefix + dbus.ObjectPath(dbusapi.EscapePath(name)); want != p || strings.Contains(path[len(prefix):], "/") {
			t.Fatalf("resolvePath(%q) = %s %q, whose path is %q", path, spec.name, name, want)
		}
	})
}
