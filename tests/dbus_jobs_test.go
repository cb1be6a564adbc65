package tests

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"butterd/btrfs"
	"butterd/service"
	"butterd/service/retention"
	"butterd/tests/testenv"
)

// The Manager's job, purge, pin, export/import and schedule methods
// through busctl, as dbus_test.go does for volumes and snapshots.

const jobIface = busName + ".Job"

// jobSignal waits for a Manager signal member (JobNew or JobRemoved) about
// job id from butterd after mark from, and returns its arguments.
func (e *dbusEnv) jobSignal(from int, member string, id uint64) []json.RawMessage {
	e.t.Helper()
	m, ok := e.mon.waitFor(from, 30*time.Second, func(m busMsg) bool {
		if m.Type != "signal" || m.Sender != e.owner || m.Path != rootPath || m.Interface != managerIface || m.Member != member {
			return false
		}
		a := m.args(e.t)
		return len(a) > 0 && jsonUint(e.t, a[0]) == id
	})
	if !ok {
		e.t.Fatalf("no signal %s(%d) from butterd within 30 s; seen:\n%s", member, id, e.mon.signals(from))
	}
	return m.args(e.t)
}

// waitJob checks JobNew(id, path) and waits for JobRemoved(id, path,
// result), returning the result.
func (e *dbusEnv) waitJob(from int, id uint64, path string) string {
	e.t.Helper()
	if a := e.jobSignal(from, "JobNew", id); len(a) != 2 || jsonString(e.t, a[1]) != path {
		e.t.Errorf("JobNew(%d) = %s, want path %s", id, a, path)
	}
	a := e.jobSignal(from, "JobRemoved", id)
	if len(a) != 3 || jsonString(e.t, a[1]) != path {
		e.t.Fatalf("JobRemoved(%d) = %s, want path %s and a result", id, a, path)
	}
	return jsonString(e.t, a[2])
}

// started reads the (job_id, job_path) a method answered for a job.
func (e *dbusEnv) started(vals []json.RawMessage) (uint64, string) {
	e.t.Helper()
	if len(vals) < 2 {
		e.t.Fatalf("no job id and path in %s", vals)
	}
	id, path := jsonUint(e.t, vals[0]), jsonString(e.t, vals[1])
	if id == 0 || path != rootPath+"/job/"+strconv.FormatUint(id, 10) {
		e.t.Fatalf("job id %d, path %q", id, path)
	}
	return id, path
}

func jsonFloat(t *testing.T, raw json.RawMessage) float64 {
	t.Helper()
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatalf("%s is not a number: %v", raw, err)
	}
	return f
}

// planRows reads the names of a(sts) purge rows, sorted, checking that
// each row's time is the one of its name and that it gives a reason.
func planRows(t *testing.T, raw json.RawMessage) ([]string, map[string]string) {
	t.Helper()
	var names []string
	reasons := map[string]string{}
	for _, r := range rows(t, raw) {
		name := jsonString(t, r[0])
		_, when, err := service.ParseSnapshotName(name)
		if err != nil {
			t.Errorf("purge row %s: %v", r, err)
		} else if got := jsonUint(t, r[1]); got != uint64(when.UnixMicro()) {
			t.Errorf("purge row %s: time %d, want %d (the name's)", r, got, when.UnixMicro())
		}
		reasons[name] = jsonString(t, r[2])
		if reasons[name] == "" {
			t.Errorf("purge row %s gives no reason", r)
		}
		names = append(names, name)
	}
	slices.Sort(names)
	return names, reasons
}

// Purge (dry run and job), PinSnapshot, UnpinSnapshot, and the job methods
// and objects, on hand-made snapshots of volume db; uid 65534 may read
// jobs, not purge, pin or cancel.
func TestDBusPurgePinJobs(t *testing.T) {
	testenv.Root(t)
	now := time.Now()
	h := time.Hour
	ages := []time.Duration{30 * time.Minute, 2 * h, 3 * h, 50 * h, 51 * h}
	root := filepath.Join(testenv.Btrfs(t), "root")
	s := openStoreAt(t, root, service.Config{})
	v, _, err := s.CreateVolume("db", service.CreateOptions{})
	must(t, err)
	var names []string
	for _, age := range ages {
		name := service.SnapshotName("db", now.Add(-age))
		must(t, btrfs.Snapshot(v.Path, filepath.Join(root, "snapshots", name), true))
		names = append(names, name)
	}
	must(t, s.Close())
	e := startDBusAt(t, root, nil, "--systemd-bus=none", "--unit-dir="+t.TempDir())
	at := strconv.FormatInt(now.UnixMicro(), 10)

	// Dry run at the moment the ages count from: 1h:1d deletes what is a
	// day old or more.
	vals := e.ok(asRoot, "Purge", "sstt", "db", "1h:1d", "1", at)
	if len(vals) != 5 || jsonUint(t, vals[0]) != 0 || jsonString(t, vals[1]) != "/" || string(vals[4]) != "[]" {
		t.Fatalf("dry-run Purge = %s, want job 0 and path /", vals)
	}
	del, _ := planRows(t, vals[2])
	keep, _ := planRows(t, vals[3])
	if want := sortedOf(names[3], names[4]); !slices.Equal(del, want) {
		t.Errorf("dry run deletes %q, want %q", del, want)
	}
	if want := sortedOf(names[:3]...); !slices.Equal(keep, want) {
		t.Errorf("dry run keeps %q, want %q", keep, want)
	}
	// A day later, all but the newest.
	vals = e.ok(asRoot, "Purge", "sstt", "db", "1h:1d", "1", strconv.FormatInt(now.Add(24*h).UnixMicro(), 10))
	if del, _ := planRows(t, vals[2]); !slices.Equal(del, sortedOf(names[1:]...)) {
		t.Errorf("dry run a day later deletes %q, want %q", del, sortedOf(names[1:]...))
	}
	// buttervolume's A:A is read as A, and the reply says so.
	vals = e.ok(asRoot, "Purge", "sstt", "db", "1d:1d", "1", at)
	if len(vals) != 5 || !strings.Contains(string(vals[4]), `read as \"1d\"`) {
		t.Errorf("dry run of 1d:1d warns %s", vals[4:])
	}
	// Refusals change nothing.
	e.fails(asRoot, "InvalidArgument", "an evaluation time (at) is only for a dry run", "Purge", "sstt", "db", "1h:1d", "0", at)
	e.fails(asRoot, "InvalidArgument", "unknown flag bits 0x2", "Purge", "sstt", "db", "1h:1d", "3", "0")
	e.fails(asRoot, "InvalidArgument", "unknown flag bits 0x2", "Purge", "sstt", "db", "1h:1d", "2", "0")
	for _, bad := range []string{"1h:1x", "1d:1h", ""} {
		_, _, perr := retention.ParsePattern(bad)
		if perr == nil {
			t.Fatalf("pattern %q parses", bad)
		}
		e.fails(asRoot, "InvalidArgument", perr.Error(), "Purge", "sstt", "db", bad, "0", "0")
		e.fails(asRoot, "InvalidArgument", perr.Error(), "Purge", "sstt", "db", bad, "1", at)
	}
	e.fails(asRoot, "InvalidName", "invalid character", "Purge", "sstt", "a b", "1h:1d", "1", "0")
	if got := rows(t, e.ok(asRoot, "ListSnapshots", "s", "db")[0]); len(got) != len(names) {
		t.Fatalf("after dry runs and refusals, %d snapshots, want %d", len(got), len(names))
	}

	// Pin the 50 h old one: the Pinned property follows, the plan keeps it.
	old := names[3]
	opath := e.snapshotPath(old)
	if jsonBool(t, e.prop(asRoot, opath, snapIface, "Pinned")) {
		t.Fatal("Pinned before PinSnapshot")
	}
	if vals := e.ok(asRoot, "PinSnapshot", "s", old); len(vals) != 0 {
		t.Errorf("PinSnapshot returned %s", vals)
	}
	if !jsonBool(t, e.prop(asRoot, opath, snapIface, "Pinned")) || !jsonBool(t, e.prop(asNobody, opath, snapIface, "Pinned")) {
		t.Error("Pinned is false after PinSnapshot")
	}
	e.ok(asRoot, "PinSnapshot", "s", old) // again: still pinned
	vals = e.ok(asRoot, "Purge", "sstt", "db", "1h:1d", "1", at)
	del, _ = planRows(t, vals[2])
	keep, why := planRows(t, vals[3])
	if !slices.Equal(del, []string{names[4]}) || !slices.Contains(keep, old) {
		t.Errorf("dry run with %s pinned deletes %q, keeps %q", old, del, keep)
	}
	if !strings.Contains(why[old], "pinned") || !strings.Contains(why[old], "the pattern alone") {
		t.Errorf("reason to keep the pinned snapshot: %q", why[old])
	}
	e.fails(asRoot, "NoSuchSnapshot", `no such snapshot "db@2001-01-01T00:00:00.000000"`, "PinSnapshot", "s", "db@2001-01-01T00:00:00.000000")
	e.fails(asRoot, "InvalidName", "has no '@'", "PinSnapshot", "s", "db")
	e.fails(asRoot, "NoSuchSnapshot", `no such snapshot "db@2001-01-01T00:00:00.000000"`, "UnpinSnapshot", "s", "db@2001-01-01T00:00:00.000000")

	// A real purge is a job: the pinned snapshot survives it.
	from := e.mon.mark()
	vals = e.ok(asRoot, "Purge", "sstt", "db", "1h:1d", "0", "0")
	id1, path1 := e.started(vals)
	if len(rows(t, vals[2])) != 0 || len(rows(t, vals[3])) != 0 {
		t.Errorf("a purge job answered lists: %s", vals)
	}
	if res := e.waitJob(from, id1, path1); res != "done" {
		t.Fatalf("purge job %d: %s (Error %s)", id1, res, e.prop(asRoot, path1, jobIface, "Error"))
	}
	e.signal(from, "SnapshotRemoved", names[4], e.snapshotPath(names[4]))
	e.noSignal(from, "SnapshotRemoved", old)
	if _, err := os.Stat(filepath.Join(root, "snapshots", names[4])); err == nil {
		t.Errorf("%s is still on disk after the purge", names[4])
	}
	e.fails(asRoot, "NoSuchSnapshot", fmt.Sprintf("no such snapshot %q", names[4]), "GetSnapshot", "s", names[4])
	left := map[string]bool{}
	for _, r := range rows(t, e.ok(asRoot, "ListSnapshots", "s", "db")[0]) {
		left[jsonString(t, r[0])] = true
	}
	if len(left) != 4 || !left[old] || left[names[4]] {
		t.Errorf("after the purge: %v, want all but %s", left, names[4])
	}

	// Unpin: the next purge takes it.
	if vals := e.ok(asRoot, "UnpinSnapshot", "s", old); len(vals) != 0 {
		t.Errorf("UnpinSnapshot returned %s", vals)
	}
	if jsonBool(t, e.prop(asRoot, opath, snapIface, "Pinned")) {
		t.Error("Pinned is true after UnpinSnapshot")
	}
	from = e.mon.mark()
	id2, path2 := e.started(e.ok(asRoot, "Purge", "sstt", "db", "1h:1d", "0", "0"))
	if id2 <= id1 {
		t.Errorf("second job id %d after %d", id2, id1)
	}
	if res := e.waitJob(from, id2, path2); res != "done" {
		t.Fatalf("second purge job %d: %s", id2, res)
	}
	e.signal(from, "SnapshotRemoved", old, opath)
	if _, err := os.Stat(filepath.Join(root, "snapshots", old)); err == nil {
		t.Errorf("the unpinned %s is still on disk after the second purge", old)
	}

	// Jobs: listed, found, their objects read back, as root and as
	// uid 65534 (reads pass the policy).
	for _, as := range [][]string{asRoot, asNobody} {
		list := rows(t, e.ok(as, "ListJobs", "")[0])
		if len(list) != 2 {
			t.Fatalf("ListJobs as %q = %s, want the two purges", as, list)
		}
		for i, r := range list {
			id, path := []uint64{id1, id2}[i], []string{path1, path2}[i]
			if jsonUint(t, r[0]) != id || jsonString(t, r[1]) != path || jsonString(t, r[2]) != "purge" ||
				jsonString(t, r[3]) != "db" || jsonString(t, r[4]) != "done" || jsonFloat(t, r[5]) != 1 {
				t.Errorf("ListJobs row %d as %q = %s", i, as, r)
			}
		}
		if got := jsonString(t, e.ok(as, "GetJob", "u", strconv.FormatUint(id1, 10))[0]); got != path1 {
			t.Errorf("GetJob %d as %q = %s, want %s", id1, as, got, path1)
		}
		e.fails(as, "NoSuchJob", "no such job 4242", "GetJob", "u", "4242")
		for prop, want := range map[string]string{"State": `"done"`, "Result": `"done"`, "Kind": `"purge"`, "Target": `"db"`,
			"Error": `""`, "Id": strconv.FormatUint(id1, 10), "BytesDone": "0"} {
			if got := string(e.prop(as, path1, jobIface, prop)); got != want {
				t.Errorf("job %d %s as %q = %s, want %s", id1, prop, as, got, want)
			}
		}
		if got := jsonFloat(t, e.prop(as, path1, jobIface, "Progress")); got != 1 {
			t.Errorf("job %d Progress as %q = %v, want 1", id1, as, got)
		}
		for _, prop := range []string{"Created", "Started", "Finished"} {
			if jsonUint(t, e.prop(as, path1, jobIface, prop)) == 0 {
				t.Errorf("job %d has no %s time", id1, prop)
			}
		}
	}
	if _, stderr, err := e.busctl(asRoot, "get-property", busName, rootPath+"/job/4242", jobIface, "State"); err == nil || !strings.Contains(stderr, "no such job 4242") {
		t.Errorf("get-property on an unknown job: %v %s", err, stderr)
	}
	e.fails(asRoot, "InvalidArgument", fmt.Sprintf("job %d already finished (done)", id1), "CancelJob", "u", strconv.FormatUint(id1, 10))
	e.fails(asRoot, "NoSuchJob", "no such job 4242", "CancelJob", "u", "4242")

	// uid 65534 may not purge (even a dry run), pin, unpin or cancel.
	for _, c := range []struct {
		method, sig string
		args        []string
	}{
		{"Purge", "sstt", []string{"db", "1h:1d", "1", at}},
		{"Purge", "sstt", []string{"db", "1m", "0", "0"}},
		{"PinSnapshot", "s", []string{names[0]}},
		{"UnpinSnapshot", "s", []string{names[0]}},
		{"CancelJob", "u", []string{strconv.FormatUint(id1, 10)}},
	} {
		e.deniedByBus(asNobody, c.method, c.sig, c.args...)
	}
	if got := rows(t, e.ok(asRoot, "ListSnapshots", "s", "db")[0]); len(got) != 3 {
		t.Errorf("snapshots after uid 65534's calls: %s", got)
	}
	if len(rows(t, e.ok(asRoot, "ListJobs", "")[0])) != 2 {
		t.Error("uid 65534 started a job")
	}
}

// fdCall calls a Manager method with a godbus client: busctl of systemd
// 252 refuses 'h' arguments ("UNIX file descriptor not supported as
// type."; newer busctl takes a descriptor number) and gdbus call passes no
// descriptor either. It returns the values, or the D-Bus error's name and
// message; the bus monitor must have seen butterd answer.
func (e *dbusEnv) fdCall(conn *dbus.Conn, method string, args ...any) (vals []any, errName, errMsg string) {
	e.t.Helper()
	from := e.mon.mark()
	c := conn.Object(busName, rootPath).Call(managerIface+"."+method, 0, args...)
	if _, ans := e.mon.answerTo(from, busName, managerIface, method); ans.Sender != e.owner {
		e.t.Errorf("%s was answered by %s, not by butterd (%s)", method, ans.Sender, e.owner)
	}
	if c.Err == nil {
		return c.Body, "", ""
	}
	var de dbus.Error
	if !errors.As(c.Err, &de) {
		e.t.Fatalf("%s: %v", method, c.Err)
	}
	if len(de.Body) > 0 {
		errMsg, _ = de.Body[0].(string)
	}
	return nil, de.Name, errMsg
}

// fdJob calls a method that must start a job and returns its id and path.
func (e *dbusEnv) fdJob(conn *dbus.Conn, method string, args ...any) (uint64, string) {
	e.t.Helper()
	vals, name, msg := e.fdCall(conn, method, args...)
	if name != "" {
		e.t.Fatalf("%s: %s: %s", method, name, msg)
	}
	id, ok1 := vals[0].(uint32)
	path, ok2 := vals[1].(dbus.ObjectPath)
	if len(vals) != 2 || !ok1 || !ok2 || id == 0 || string(path) != rootPath+"/job/"+strconv.FormatUint(uint64(id), 10) {
		e.t.Fatalf("%s returned %v, want a job id and its path", method, vals)
	}
	return uint64(id), string(path)
}

// fdFails calls a method that butterd must refuse with errPrefix+name and a
// message containing want.
func (e *dbusEnv) fdFails(conn *dbus.Conn, name, want, method string, args ...any) {
	e.t.Helper()
	vals, got, msg := e.fdCall(conn, method, args...)
	if got != errPrefix+name || !strings.Contains(msg, want) {
		e.t.Errorf("%s: %v, error %q %q; want %s saying %q", method, vals, got, msg, errPrefix+name, want)
	}
}

func openFile(t *testing.T, path string, flag int) *os.File {
	t.Helper()
	f, err := os.OpenFile(path, flag, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// ExportSnapshot and ImportSnapshot with a real file descriptor (through
// godbus, see fdCall): the export writes a btrfs stream into the file;
// after the snapshot is removed, importing the file makes it again, as a
// received snapshot.
func TestDBusExportImport(t *testing.T) {
	e := startDBus(t)
	conn, err := dbus.Connect(e.bus.Address)
	if err != nil {
		t.Fatalf("connect to the bus: %v", err)
	}
	defer conn.Close()
	if !conn.SupportsUnixFDs() {
		t.Fatal("the godbus connection does not pass file descriptors")
	}
	e.ok(asRoot, "CreateVolume", "sa{ss}", "ex1", "0")
	writeFile(t, filepath.Join(e.root, "volumes", "ex1", "f"), "exported data")
	snap := jsonString(t, e.ok(asRoot, "CreateSnapshot", "s", "ex1")[0])
	spath := e.snapshotPath(snap)
	uuid := jsonString(t, e.prop(asRoot, spath, snapIface, "UUID"))
	if got := jsonString(t, e.prop(asRoot, spath, snapIface, "ReceivedUUID")); got != "" {
		t.Errorf("a snapshot taken here has ReceivedUUID %q", got)
	}
	stream := filepath.Join(t.TempDir(), "snap.stream")
	const create = os.O_WRONLY | os.O_CREATE | os.O_TRUNC

	out := openFile(t, stream, create)
	from := e.mon.mark()
	id, path := e.fdJob(conn, "ExportSnapshot", snap, "", dbus.UnixFD(out.Fd()), uint64(0))
	out.Close() // butterd has its own descriptor
	if res := e.waitJob(from, id, path); res != "done" {
		t.Fatalf("export job %d: %s (Error %s)", id, res, e.prop(asRoot, path, jobIface, "Error"))
	}
	data, err := os.ReadFile(stream)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(data, []byte("btrfs-stream\x00")) {
		t.Fatalf("the exported file (%d bytes) is not a btrfs stream: %q", len(data), data[:min(len(data), 32)])
	}
	for prop, want := range map[string]string{"State": `"done"`, "Result": `"done"`, "Kind": `"export"`, "Target": strconv.Quote(snap),
		"Error": `""`, "BytesDone": strconv.Itoa(len(data))} {
		if got := string(e.prop(asRoot, path, jobIface, prop)); got != want {
			t.Errorf("export job %s = %s, want %s", prop, got, want)
		}
	}
	if got := jsonFloat(t, e.prop(asRoot, path, jobIface, "Progress")); got != 1 {
		t.Errorf("export job Progress = %v, want 1", got)
	}
	none := openFile(t, filepath.Join(t.TempDir(), "none"), create)
	e.fdFails(conn, "NoSuchSnapshot", `no such snapshot "ex1@2001-01-01T00:00:00.000000"`,
		"ExportSnapshot", "ex1@2001-01-01T00:00:00.000000", "", dbus.UnixFD(none.Fd()), uint64(0))
	e.fdFails(conn, "NoSuchSnapshot", `no such snapshot "ex1@2001-01-01T00:00:00.000000"`,
		"ExportSnapshot", snap, "ex1@2001-01-01T00:00:00.000000", dbus.UnixFD(none.Fd()), uint64(0))
	e.fdFails(conn, "InvalidArgument", "unknown flag bits 0x2", "ExportSnapshot", snap, "", dbus.UnixFD(none.Fd()), uint64(2))
	if fi, err := none.Stat(); err != nil || fi.Size() != 0 {
		t.Errorf("refused exports wrote into the file: %v %v", fi.Size(), err)
	}

	// Import it back once the snapshot is gone.
	from = e.mon.mark()
	e.ok(asRoot, "RemoveSnapshot", "s", snap)
	e.signal(from, "SnapshotRemoved", snap, spath)
	in := openFile(t, stream, os.O_RDONLY)
	e.fdFails(conn, "InvalidArgument", "unknown flag bits 0x1", "ImportSnapshot", dbus.UnixFD(in.Fd()), uint64(1))
	from = e.mon.mark()
	id, path = e.fdJob(conn, "ImportSnapshot", dbus.UnixFD(in.Fd()), uint64(0))
	in.Close()
	if res := e.waitJob(from, id, path); res != "done" {
		t.Fatalf("import job %d: %s (Error %s)", id, res, e.prop(asRoot, path, jobIface, "Error"))
	}
	e.signal(from, "SnapshotNew", snap, spath)
	if !jsonBool(t, e.prop(asRoot, spath, snapIface, "ReadOnly")) {
		t.Error("the imported snapshot is not ReadOnly")
	}
	if got := jsonString(t, e.prop(asRoot, spath, snapIface, "ReceivedUUID")); got == "" || got != uuid {
		t.Errorf("the imported snapshot's ReceivedUUID = %q, want the exported one's UUID %q", got, uuid)
	}
	requireFile(t, filepath.Join(e.root, "snapshots", snap, "f"), "exported data")
	if got := string(e.prop(asRoot, path, jobIface, "Kind")); got != `"import"` {
		t.Errorf("import job Kind = %s", got)
	}
	if got := jsonUint(t, e.prop(asRoot, path, jobIface, "BytesDone")); got != uint64(len(data)) {
		t.Errorf("import job BytesDone = %d, want %d", got, len(data))
	}

	// Importing it again fails in the job: the snapshot exists.
	in = openFile(t, stream, os.O_RDONLY)
	from = e.mon.mark()
	id, path = e.fdJob(conn, "ImportSnapshot", dbus.UnixFD(in.Fd()), uint64(0))
	in.Close()
	if res := e.waitJob(from, id, path); res != "failed" {
		t.Errorf("second import job %d: %s, want failed", id, res)
	}
	if got := jsonString(t, e.prop(asRoot, path, jobIface, "Result")); got != "failed" {
		t.Errorf("failed import job Result = %q", got)
	}
	if got := jsonString(t, e.prop(asRoot, path, jobIface, "Error")); !strings.Contains(got, snap) {
		t.Errorf("the failed import job's Error %q does not name %s", got, snap)
	}
}

// Without systemd (--systemd-bus=none, even where the machine has one),
// every schedule method fails with butterd's reason and writes no unit.
func TestDBusSchedulesWithoutSystemd(t *testing.T) {
	unitDir := filepath.Join(t.TempDir(), "units")
	root := filepath.Join(testenv.Btrfs(t), "root")
	e := startDBusAt(t, root, nil, "--systemd-bus=none", "--unit-dir="+unitDir)
	e.ok(asRoot, "CreateVolume", "sa{ss}", "sv", "0")
	const reason = "no systemd reachable: schedules need systemd"

	// ListSchedules passes the policy for everyone and answers butterd's
	// reason.
	for _, as := range [][]string{asRoot, asNobody} {
		e.fails(as, "NoSystemd", reason, "ListSchedules", "")
	}
	for _, c := range []struct {
		method, sig string
		args        []string
	}{
		{"SetSchedule", "ssstst", []string{"snapshot", "sv", "", "3600000000", "", "0"}},
		{"SetSchedule", "ssstst", []string{"purge", "sv", "1h:1d", "0", "Mon *-*-* 03:00", "0"}},
		{"RemoveSchedule", "sss", []string{"snapshot", "sv", ""}},
		{"PauseSchedule", "sss", []string{"snapshot", "sv", ""}},
		{"ResumeSchedule", "sss", []string{"snapshot", "sv", ""}},
		{"PauseAllSchedules", "", nil},
		{"ResumeAllSchedules", "", nil},
	} {
		e.fails(asRoot, "NoSystemd", reason, c.method, c.sig, c.args...)
		e.deniedByBus(asNobody, c.method, c.sig, c.args...)
	}
	if entries, err := os.ReadDir(unitDir); err == nil && len(entries) > 0 {
		t.Errorf("units written without systemd: %v", entries)
	}
	if out := e.busctlOK(asRoot, "tree", "--list", busName); strings.Contains(out, rootPath+"/schedule/") {
		t.Errorf("busctl tree lists schedules:\n%s", out)
	}
}
