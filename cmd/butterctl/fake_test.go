package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"butterd/dbusapi"
)

// fake is butterd as a test wants it: it records each call and answers
// from its fields, or with err.
type fake struct {
	mu    sync.Mutex
	calls []string
	err   error

	volumes          []dbusapi.VolumeRow
	snapshots        []dbusapi.SnapshotRow
	volumeErrs       map[string]error // GetVolume's answer per name
	props            map[string]dbus.Variant
	snapName         string
	restored         [3]string
	final            string
	removedSchedules []string // timers RemoveVolume answers
	forgotten        uint32
	closed           bool

	// Jobs.
	snapErrs  map[string]error // GetSnapshot's answer per name
	exportID  uint32
	exportErr error
	written   string // what the export job writes into the descriptor
	imported  string // what an import read from the descriptor
	jobRows   []dbusapi.JobRow
	jobProps  map[uint32]map[string]dbus.Variant // JobsProperties, per id
	steps     []dbusapi.JobInfo                  // WaitJob reports each as progress
	ended     dbusapi.JobInfo                    // and then returns this
	waitErr   error
	block     bool // WaitJob waits for CancelJob, then returns ended
	canceled  chan struct{}
	cancelErr error
	interval  time.Duration // WaitJob's interval

	// Purge and schedules.
	purgeID    uint32
	purgeDel   []dbusapi.PurgeRow
	purgeKeep  []dbusapi.PurgeRow
	purgeWarn  []string              // the pattern's warnings
	purgeAt    time.Time             // the at of the last Purge
	afterPurge []dbusapi.SnapshotRow // ListSnapshots answers this once WaitJob ran
	schedules  []dbusapi.ScheduleRow
	allPaused  bool
	unit       string
	// schedErrs answers SetSchedule by volume, PauseSchedule by "pause VOLUME".
	schedErrs map[string]error

	// Replication.
	sendID   uint32
	remotes  []dbusapi.RemoteRow
	replicas []dbusapi.ReplicaRow
	ownKeys  [2]string // client key line, host key fingerprint
	trusted  string    // the key TrustRemoteHost answers
	// endpointStopped is what RemoveRemote answers.
	endpointStopped bool
}

func (f *fake) record(format string, args ...any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
	return f.err
}

func (f *fake) callList() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func (f *fake) GetSnapshot(name string) (dbus.ObjectPath, error) {
	if err := f.record("GetSnapshot(%q)", name); err != nil {
		return "", err
	}
	return dbusapi.SnapshotPath(name), f.snapErrs[name]
}

// ExportSnapshot writes f.written into the descriptor at once, as if the
// job had run, so that the caller may close its copy.
func (f *fake) ExportSnapshot(snapshot, parent string, out *os.File, compress bool) (uint32, dbus.ObjectPath, error) {
	how := ""
	if compress {
		how = ", compressed"
	}
	if err := f.record("ExportSnapshot(%q, %q%s)", snapshot, parent, how); err != nil {
		return 0, "", err
	}
	if f.exportErr != nil {
		return 0, "", f.exportErr
	}
	if _, err := out.WriteString(f.written); err != nil {
		return 0, "", err
	}
	return f.exportID, dbusapi.JobPath(f.exportID), nil
}

// ImportSnapshot reads the whole stream into f.imported.
func (f *fake) ImportSnapshot(in *os.File) (uint32, dbus.ObjectPath, error) {
	if err := f.record("ImportSnapshot()"); err != nil {
		return 0, "", err
	}
	b, err := io.ReadAll(in)
	if err != nil {
		return 0, "", err
	}
	f.imported = string(b)
	return f.exportID, dbusapi.JobPath(f.exportID), nil
}

func (f *fake) SyncVolume(volume string, hosts []string, force bool) (uint32, dbus.ObjectPath, error) {
	if err := f.record("SyncVolume(%q, %q, %v)", volume, hosts, force); err != nil {
		return 0, "", err
	}
	return f.exportID, dbusapi.JobPath(f.exportID), nil
}

func (f *fake) ListJobs() ([]dbusapi.JobRow, error) {
	return f.jobRows, f.record("ListJobs()")
}

func (f *fake) JobsProperties(ids []uint32) ([]map[string]dbus.Variant, error) {
	out := make([]map[string]dbus.Variant, len(ids))
	for i, id := range ids {
		out[i] = f.jobProps[id]
	}
	return out, f.record("JobsProperties(%v)", ids)
}

func (f *fake) CancelJob(id uint32) error {
	if err := f.record("CancelJob(%d)", id); err != nil {
		return err
	}
	if f.canceled != nil && f.cancelErr == nil {
		close(f.canceled)
	}
	return f.cancelErr
}

func (f *fake) WaitJob(id uint32, interval time.Duration, progress func(dbusapi.JobInfo)) (dbusapi.JobInfo, error) {
	if err := f.record("WaitJob(%d)", id); err != nil {
		return dbusapi.JobInfo{}, err
	}
	f.mu.Lock()
	f.interval = interval
	f.mu.Unlock()
	for _, j := range f.steps {
		if progress != nil {
			progress(j)
		}
	}
	if f.block {
		<-f.canceled
	}
	if f.afterPurge != nil {
		f.mu.Lock()
		f.snapshots = f.afterPurge
		f.mu.Unlock()
	}
	return f.ended, f.waitErr
}

func (f *fake) CreateVolume(name string, options map[string]string) (dbus.ObjectPath, error) {
	return dbusapi.VolumePath(name), f.record("CreateVolume(%q, %v)", name, options)
}

func (f *fake) RemoveVolumeReport(name string, flags uint64) (string, []string, error) {
	return f.final, f.removedSchedules, f.record("RemoveVolume(%q, %d)", name, flags)
}

func (f *fake) GetVolume(name string) (dbus.ObjectPath, error) {
	if err := f.record("GetVolume(%q)", name); err != nil {
		return "", err
	}
	return dbusapi.VolumePath(name), f.volumeErrs[name]
}

func (f *fake) ListVolumes() ([]dbusapi.VolumeRow, error) {
	return f.volumes, f.record("ListVolumes()")
}

func (f *fake) CloneVolume(name, newName string) (dbus.ObjectPath, error) {
	return dbusapi.VolumePath(newName), f.record("CloneVolume(%q, %q)", name, newName)
}

func (f *fake) ForgetMounts(name string) (uint32, error) {
	return f.forgotten, f.record("ForgetMounts(%q)", name)
}

func (f *fake) CreateSnapshot(volume string) (string, error) {
	return f.snapName, f.record("CreateSnapshot(%q)", volume)
}

func (f *fake) ListSnapshots(volume string) ([]dbusapi.SnapshotRow, error) {
	f.mu.Lock()
	rows := f.snapshots
	f.mu.Unlock()
	return rows, f.record("ListSnapshots(%q)", volume)
}

func (f *fake) PurgeWarned(volume, pattern string, dryRun bool, at time.Time) (uint32, dbus.ObjectPath, []dbusapi.PurgeRow, []dbusapi.PurgeRow, []string, error) {
	f.mu.Lock()
	f.purgeAt = at
	f.mu.Unlock()
	if err := f.record("Purge(%q, %q, %v, %v)", volume, pattern, dryRun, !at.IsZero()); err != nil {
		return 0, "", nil, nil, nil, err
	}
	if dryRun {
		return 0, "/", f.purgeDel, f.purgeKeep, f.purgeWarn, nil
	}
	return f.purgeID, dbusapi.JobPath(f.purgeID), nil, nil, f.purgeWarn, nil
}

func (f *fake) PinSnapshot(name string) error   { return f.record("PinSnapshot(%q)", name) }
func (f *fake) UnpinSnapshot(name string) error { return f.record("UnpinSnapshot(%q)", name) }

func (f *fake) ListSchedules() ([]dbusapi.ScheduleRow, bool, error) {
	return f.schedules, f.allPaused, f.record("ListSchedules()")
}

func (f *fake) SetSchedule(action, volume, arg string, every time.Duration, onCalendar string) (string, error) {
	if err := f.record("SetSchedule(%q, %q, %q, %v, %q)", action, volume, arg, every, onCalendar); err != nil {
		return "", err
	}
	return f.unit, f.schedErrs[volume]
}

func (f *fake) RemoveSchedule(action, volume, arg string) error {
	return f.record("RemoveSchedule(%q, %q, %q)", action, volume, arg)
}

func (f *fake) PauseSchedule(action, volume, arg string) error {
	if err := f.record("PauseSchedule(%q, %q, %q)", action, volume, arg); err != nil {
		return err
	}
	return f.schedErrs["pause "+volume]
}

func (f *fake) ResumeSchedule(action, volume, arg string) error {
	return f.record("ResumeSchedule(%q, %q, %q)", action, volume, arg)
}

func (f *fake) PauseAllSchedules() error  { return f.record("PauseAllSchedules()") }
func (f *fake) ResumeAllSchedules() error { return f.record("ResumeAllSchedules()") }

func (f *fake) RemoveSnapshot(name string) error {
	return f.record("RemoveSnapshot(%q)", name)
}

func (f *fake) Restore(source, target string, flags uint64) (string, string, string, error) {
	return f.restored[0], f.restored[1], f.restored[2], f.record("Restore(%q, %q, %d)", source, target, flags)
}

func (f *fake) Properties(path dbus.ObjectPath, iface string) (map[string]dbus.Variant, error) {
	return f.props, f.record("Properties(%s, %s)", path, iface)
}

func (f *fake) SendSnapshot(host, snapshot string, bwlimit uint64, compress bool) (uint32, dbus.ObjectPath, error) {
	return f.sendID, dbusapi.JobPath(f.sendID), f.record("SendSnapshot(%q, %q, %d, %v)", host, snapshot, bwlimit, compress)
}

func (f *fake) ReplicateVolume(volume, host string, bwlimit uint64, compress bool) (uint32, dbus.ObjectPath, error) {
	return f.sendID, dbusapi.JobPath(f.sendID), f.record("ReplicateVolume(%q, %q, %d, %v)", volume, host, bwlimit, compress)
}

func (f *fake) AddRemote(name, address, publicKey string, volumes []string, flags uint64) error {
	return f.record("AddRemote(%q, %q, %q, %q, %d)", name, address, publicKey, volumes, flags)
}

func (f *fake) ListRemotes() ([]dbusapi.RemoteRow, error) {
	return f.remotes, f.record("ListRemotes()")
}
func (f *fake) RemoveRemote(name string) (bool, error) {
	return f.endpointStopped, f.record("RemoveRemote(%q)", name)
}

func (f *fake) TrustRemoteHost(host, fingerprint string, replace bool) (string, error) {
	return f.trusted, f.record("TrustRemoteHost(%q, %q, %v)", host, fingerprint, replace)
}

func (f *fake) GetOwnKeys() (string, string, error) {
	return f.ownKeys[0], f.ownKeys[1], f.record("GetOwnKeys()")
}

func (f *fake) ListReplicas(volume string) ([]dbusapi.ReplicaRow, error) {
	return f.replicas, f.record("ListReplicas(%q)", volume)
}

func (f *fake) Close() error { f.closed = true; return nil }

type result struct {
	code           int
	stdout, stderr string
	dialed         bool
}

// runWith runs butterctl against f.
func runWith(t *testing.T, f *fake, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	var r result
	r.code = run(context.Background(), args, &out, &errb, func() (manager, error) {
		r.dialed = true
		return f, nil
	})
	r.stdout, r.stderr = out.String(), errb.String()
	if r.dialed && !f.closed {
		t.Errorf("butterctl %s: the connection was not closed", strings.Join(args, " "))
	}
	return r
}

// dbusErr is an error as godbus returns it for a D-Bus error reply.
func dbusErr(name, msg string) error {
	return dbus.Error{Name: name, Body: []any{msg}}
}

func (f *fake) CreateGroupSnapshot(group, project string, volumes []string) (uint32, dbus.ObjectPath, error) {
	if err := f.record("CreateGroupSnapshot(%q, %q, %q)", group, project, volumes); err != nil {
		return 0, "", err
	}
	return f.exportID, dbusapi.JobPath(f.exportID), nil
}

func (f *fake) RestoreGroup(group, project, timestamp string, flags uint64) (string, []dbusapi.RestoredRow, error) {
	return timestamp, nil, f.record("RestoreGroup(%q, %q, %q, %d)", group, project, timestamp, flags)
}

func (f *fake) ListGroups() ([]dbusapi.GroupRow, error) { return nil, f.record("ListGroups()") }

func (f *fake) RemoveGroup(name string) ([]string, error) {
	return nil, f.record("RemoveGroup(%q)", name)
}
