package main

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"butterd/dbusapi"
)

// inZone runs the test with local time at a fixed offset.
func inZone(t *testing.T) {
	old := time.Local
	time.Local = time.FixedZone("T", 3600)
	t.Cleanup(func() { time.Local = old })
}

// 2026-11-22T19:57:08.947340Z
const created = uint64(1795377428947340)

func TestVolumeLsTable(t *testing.T) {
	inZone(t)
	f := &fake{volumes: []dbusapi.VolumeRow{
		{Name: "db", Mountpoint: "/var/lib/butterd/volumes/db", Created: created, Mounts: 2},
		{Name: "a-much-longer-name", Mountpoint: "/pool mnt/volumes/a-much-longer-name", Created: 0, Mounts: 0},
	}}
	r := runWith(t, f, "volume", "ls")
	want := "" +
		"NAME                 MOUNTS   CREATED               MOUNTPOINT\n" +
		"db                   2        2026-11-22 20:57:08   /var/lib/butterd/volumes/db\n" +
		"a-much-longer-name   0        -                     /pool mnt/volumes/a-much-longer-name\n"
	if r.code != 0 || r.stdout != want {
		t.Errorf("exit %d, table:\n%s\nwant:\n%s", r.code, r.stdout, want)
	}

	r = runWith(t, f, "volume", "ls", "--json")
	var got []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	if len(got) != 2 || got[0]["name"] != "db" || got[0]["mounts"] != 2.0 ||
		got[0]["created"] != "2026-11-22T20:57:08.947340+01:00" || got[0]["mountpoint"] != "/var/lib/butterd/volumes/db" ||
		got[1]["created"] != nil {
		t.Errorf("volume ls --json: %s", r.stdout)
	}

	r = runWith(t, f, "volume", "ls", "-q", "--json")
	if strings.Join(strings.Fields(r.stdout), "") != `["db","a-much-longer-name"]` {
		t.Errorf("volume ls -q --json: %s", r.stdout)
	}

	r = runWith(t, &fake{}, "volume", "ls", "--json")
	if strings.TrimSpace(r.stdout) != "[]" {
		t.Errorf("no volumes, --json: %q", r.stdout)
	}
}

func TestSnapshotsJSON(t *testing.T) {
	inZone(t)
	f := &fake{snapshots: []dbusapi.SnapshotRow{
		{Name: "db@2026-11-22T20:57:08.947340", Volume: "db", Time: created},
		{Name: "db@2026-11-22T21:00:00.000000", Volume: "db", Time: created + 1, Safety: true},
	}}
	r := runWith(t, f, "--json", "snapshots", "db")
	var got []snapshotJSON
	if err := json.Unmarshal([]byte(r.stdout), &got); err == nil {
		t.Fatalf("time decoded into usec: %s", r.stdout)
	}
	var raw []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &raw); err != nil {
		t.Fatal(err)
	}
	if len(raw) != 2 || raw[0]["name"] != "db@2026-11-22T20:57:08.947340" || raw[0]["volume"] != "db" ||
		raw[0]["time"] != "2026-11-22T20:57:08.947340+01:00" || raw[0]["safety"] != false || raw[1]["safety"] != true {
		t.Errorf("snapshots --json: %s", r.stdout)
	}
	if r = runWith(t, &fake{}, "--json", "snapshots"); strings.TrimSpace(r.stdout) != "[]" {
		t.Errorf("no snapshots, --json: %q", r.stdout)
	}
}

func TestVerbJSON(t *testing.T) {
	const snap = "v1@2026-11-22T20:57:08.947340"
	for _, tc := range []struct {
		args  []string
		setup func(*fake)
		want  map[string]any
	}{
		{[]string{"restore", "v1"}, func(f *fake) { f.restored = [3]string{snap, "v1", "v1@2026-11-23T00:00:00.000000"} },
			map[string]any{"snapshot": snap, "volume": "v1", "safety_snapshot": "v1@2026-11-23T00:00:00.000000"}},
		{[]string{"restore", snap, "v2"}, func(f *fake) { f.restored = [3]string{snap, "v2", ""} },
			map[string]any{"snapshot": snap, "volume": "v2", "safety_snapshot": ""}},
		{[]string{"clone", "v1", "v2"}, nil, map[string]any{"name": "v2", "source": "v1"}},
		{[]string{"rm", snap}, nil, map[string]any{"removed": snap}},
		{[]string{"volume", "create", "v1"}, nil, map[string]any{"name": "v1"}},
		{[]string{"volume", "rm", "v1"}, func(f *fake) { f.final = snap; f.removedSchedules = []string{"butterd-sched-snapshot-v1.timer"} },
			map[string]any{"name": "v1", "final_snapshot": snap, "schedules_removed": []any{"butterd-sched-snapshot-v1.timer"}}},
		{[]string{"volume", "rm", "--no-final-snapshot", "v1"}, nil, map[string]any{"name": "v1", "final_snapshot": "", "schedules_removed": []any{}}},
		{[]string{"volume", "unmount", "--forget", "v1"}, func(f *fake) { f.forgotten = 3 }, map[string]any{"name": "v1", "forgotten": 3.0}},
	} {
		f := &fake{}
		if tc.setup != nil {
			tc.setup(f)
		}
		r := runWith(t, f, append(tc.args, "--json")...)
		var got map[string]any
		if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || r.code != 0 {
			t.Errorf("%q: exit %d, %v: %q", tc.args, r.code, err, r.stdout)
			continue
		}
		if len(got) != len(tc.want) {
			t.Errorf("%q: %v, want %v", tc.args, got, tc.want)
		}
		for k, v := range tc.want {
			if !reflect.DeepEqual(got[k], v) {
				t.Errorf("%q: %s = %v, want %v", tc.args, k, got[k], v)
			}
		}
	}
}

func TestVolumeInspect(t *testing.T) {
	inZone(t)
	f := &fake{props: map[string]dbus.Variant{
		"Name": dbus.MakeVariant("db"), "Mountpoint": dbus.MakeVariant("/pool mnt/volumes/db"),
		"Created": dbus.MakeVariant(created), "Mounts": dbus.MakeVariant(uint32(1)),
		"UUID": dbus.MakeVariant("0b6c0e6e-1111-2222-3333-444455556666"), "ParentUUID": dbus.MakeVariant(""),
		"ReadOnly": dbus.MakeVariant(false), "Zeta": dbus.MakeVariant(int32(-1)),
		"Size": dbus.MakeVariant(uint64(4<<20 + 16384)), "ExclusiveSize": dbus.MakeVariant(uint64(16384)),
	}}
	r := runWith(t, f, "volume", "inspect", "db")
	want := "" +
		"Name:          db\n" +
		"Mountpoint:    /pool mnt/volumes/db\n" +
		"Created:       2026-11-22 20:57:08\n" +
		"Mounts:        1\n" +
		"Size:          4.0 MiB (4210688 bytes)\n" +
		"ExclusiveSize: 16 KiB (16384 bytes)\n" +
		"ReadOnly:      no\n" +
		"UUID:          0b6c0e6e-1111-2222-3333-444455556666\n" +
		"ParentUUID:    -\n" +
		"Zeta:          -1\n"
	if r.code != 0 || r.stdout != want {
		t.Errorf("exit %d, stderr %q, text:\n%s\nwant:\n%s", r.code, r.stderr, r.stdout, want)
	}
	got := inspectJSON(t, f, "db")
	wantJSON := map[string]any{"name": "db", "mountpoint": "/pool mnt/volumes/db", "created": "2026-11-22T20:57:08.947340+01:00",
		"mounts": 1.0, "uuid": "0b6c0e6e-1111-2222-3333-444455556666", "parent_uuid": "", "read_only": false, "zeta": -1.0,
		"size": 4210688.0, "exclusive_size": 16384.0}
	if len(got) != len(wantJSON) {
		t.Errorf("inspect --json: %v", got)
	}
	for k, v := range wantJSON {
		if got[k] != v {
			t.Errorf("inspect --json: %s = %v, want %v", k, got[k], v)
		}
	}
}

// Without quotas BTRFS counts no sizes: butterd sends UINT64_MAX, the
// text says how to turn quotas on and --json gives null.
func TestVolumeInspectSizeUnknown(t *testing.T) {
	unknown := dbus.MakeVariant(uint64(math.MaxUint64))
	f := &fake{props: map[string]dbus.Variant{
		"Name": dbus.MakeVariant("db"), "Mountpoint": dbus.MakeVariant("/pool mnt/volumes/db"),
		"Size": unknown, "ExclusiveSize": unknown,
	}}
	r := runWith(t, f, "volume", "inspect", "db")
	want := "" +
		"Name:          db\n" +
		"Mountpoint:    /pool mnt/volumes/db\n" +
		"Size:          unknown (quotas are off or rescanning: btrfs quota enable '/pool mnt')\n" +
		"ExclusiveSize: unknown\n"
	if r.code != 0 || r.stdout != want {
		t.Errorf("exit %d, stderr %q, text:\n%s\nwant:\n%s", r.code, r.stderr, r.stdout, want)
	}
	got := inspectJSON(t, f, "db")
	for _, k := range []string{"size", "exclusive_size"} {
		if v, ok := got[k]; !ok || v != nil {
			t.Errorf("inspect --json: %s = %v (present %v), want null", k, v, ok)
		}
	}
}

// inspectJSON runs volume inspect --json NAME.
func inspectJSON(t *testing.T, f *fake, name string) map[string]any {
	t.Helper()
	r := runWith(t, f, "volume", "inspect", "--json", name)
	var got map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("inspect --json: %v: %q", err, r.stdout)
	}
	return got
}

func TestSnakeCase(t *testing.T) {
	for in, want := range map[string]string{
		"Name": "name", "ParentUUID": "parent_uuid", "ReadOnly": "read_only", "UUID": "uuid",
		"ReceivedUUID": "received_uuid", "BytesDone": "bytes_done", "UUIDOfParent": "uuid_of_parent", "Id": "id",
	} {
		if got := snakeCase(in); got != want {
			t.Errorf("snakeCase(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestShellWord(t *testing.T) {
	for in, want := range map[string]string{
		"/var/lib/butterd": "/var/lib/butterd", "/pool mnt": "'/pool mnt'", "/it's": `'/it'\''s'`, "": "''", "/a$b": "'/a$b'",
	} {
		if got := shellWord(in); got != want {
			t.Errorf("shellWord(%q) = %s, want %s", in, got, want)
		}
	}
}
