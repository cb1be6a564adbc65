package dbusapi

import (
	"fmt"
	"os"
	"time"

	"github.com/godbus/dbus/v5"
)

// Client calls butterd's Manager; butterctl is built on it.
type Client struct {
	conn *dbus.Conn
	obj  dbus.BusObject
}

// Dial connects to the system bus (DBUS_SYSTEM_BUS_ADDRESS when set).
func Dial() (*Client, error) {
	conn, err := dbus.ConnectSystemBus()
	if err != nil {
		addr := os.Getenv("DBUS_SYSTEM_BUS_ADDRESS")
		if addr == "" {
			addr = "unix:path=/run/dbus/system_bus_socket"
		}
		return nil, fmt.Errorf("cannot reach the system bus at %s: %w (is butterd running with a bus?)", addr, err)
	}
	return NewClient(conn), nil
}

// NewClient uses an existing connection.
func NewClient(conn *dbus.Conn) *Client {
	return &Client{conn: conn, obj: conn.Object(BusName, RootPath)}
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Conn is the underlying connection (for signals).
func (c *Client) Conn() *dbus.Conn { return c.conn }

func (c *Client) call(method string, args ...any) *dbus.Call {
	return c.obj.Call(ManagerIface+"."+method, 0, args...)
}

// callJob calls a method that starts a job and answers its id and path.
func (c *Client) callJob(method string, args ...any) (uint32, dbus.ObjectPath, error) {
	var id uint32
	var p dbus.ObjectPath
	err := c.call(method, args...).Store(&id, &p)
	return id, p, err
}

func (c *Client) CreateVolume(name string, options map[string]string) (dbus.ObjectPath, error) {
	if options == nil {
		options = map[string]string{}
	}
	var p dbus.ObjectPath
	return p, c.call("CreateVolume", name, options).Store(&p)
}

func (c *Client) RemoveVolume(name string, flags uint64) (string, error) {
	final, _, err := c.RemoveVolumeReport(name, flags)
	return final, err
}

// RemoveVolumeReport is RemoveVolume, answering the timers of the
// schedules removed with the volume too.
func (c *Client) RemoveVolumeReport(name string, flags uint64) (final string, schedules []string, err error) {
	err = c.call("RemoveVolume", name, flags).Store(&final, &schedules)
	return
}

func (c *Client) GetVolume(name string) (dbus.ObjectPath, error) {
	var p dbus.ObjectPath
	return p, c.call("GetVolume", name).Store(&p)
}

func (c *Client) ListVolumes() ([]VolumeRow, error) {
	var rows []VolumeRow
	return rows, c.call("ListVolumes").Store(&rows)
}

func (c *Client) CloneVolume(name, newName string) (dbus.ObjectPath, error) {
	var p dbus.ObjectPath
	return p, c.call("CloneVolume", name, newName).Store(&p)
}

func (c *Client) ForgetMounts(name string) (uint32, error) {
	var n uint32
	return n, c.call("ForgetMounts", name).Store(&n)
}

func (c *Client) CreateSnapshot(volume string) (string, error) {
	var name string
	var p dbus.ObjectPath
	return name, c.call("CreateSnapshot", volume).Store(&name, &p)
}

func (c *Client) GetSnapshot(name string) (dbus.ObjectPath, error) {
	var p dbus.ObjectPath
	return p, c.call("GetSnapshot", name).Store(&p)
}

func (c *Client) ListSnapshots(volume string) ([]SnapshotRow, error) {
	var rows []SnapshotRow
	return rows, c.call("ListSnapshots", volume).Store(&rows)
}

func (c *Client) RemoveSnapshot(name string) error {
	return c.call("RemoveSnapshot", name).Err
}

// Restore returns the snapshot restored, the volume and the safety snapshot.
func (c *Client) Restore(source, target string, flags uint64) (snapshot, volume, safety string, err error) {
	err = c.call("RestoreSnapshot", source, target, flags).Store(&snapshot, &volume, &safety)
	return
}

// Properties reads every property of an object.
func (c *Client) Properties(path dbus.ObjectPath, iface string) (map[string]dbus.Variant, error) {
	var props map[string]dbus.Variant
	err := c.conn.Object(BusName, path).Call("org.freedesktop.DBus.Properties.GetAll", 0, iface).Store(&props)
	return props, err
}

// ExportSnapshot starts a job writing the snapshot's send stream into f
// (which the caller opened with its own rights; it may close its copy),
// compressed with zstd when compress is set.
func (c *Client) ExportSnapshot(snapshot, parent string, f *os.File, compress bool) (uint32, dbus.ObjectPath, error) {
	var flags uint64
	if compress {
		flags |= ExportCompress
	}
	return c.callJob("ExportSnapshot", snapshot, parent, dbus.UnixFD(f.Fd()), flags)
}

func (c *Client) ListJobs() ([]JobRow, error) {
	var rows []JobRow
	return rows, c.call("ListJobs").Store(&rows)
}

func (c *Client) CancelJob(id uint32) error { return c.call("CancelJob", id).Err }

// JobInfo is a job's properties.
type JobInfo struct {
	ID        uint32
	Kind      string
	Target    string
	State     string
	Progress  float64
	BytesDone uint64
	FilesDone uint64
	Rate      float64
	Result    string // "" while it runs; done, failed or canceled
	Error     string
	Summary   string // what a job that is done did, when it says more than its result
	// A snapshot job's result.
	Snapshots  []string
	Containers []ContainerRow
	Notes      []string
}

// Job reads a job's properties.
func (c *Client) Job(id uint32) (JobInfo, error) {
	props, err := c.Properties(JobPath(id), JobIface)
	if err != nil {
		return JobInfo{}, err
	}
	return JobInfoOf(props), nil
}

// JobInfoOf reads a job's properties as returned by GetAll.
func JobInfoOf(props map[string]dbus.Variant) JobInfo {
	var j JobInfo
	get := func(name string, into any) {
		if v, ok := props[name]; ok {
			v.Store(into)
		}
	}
	get("Id", &j.ID)
	get("Kind", &j.Kind)
	get("Target", &j.Target)
	get("State", &j.State)
	get("Progress", &j.Progress)
	get("BytesDone", &j.BytesDone)
	get("FilesDone", &j.FilesDone)
	get("Rate", &j.Rate)
	get("Result", &j.Result)
	get("Error", &j.Error)
	get("Summary", &j.Summary)
	get("Snapshots", &j.Snapshots)
	get("Containers", &j.Containers)
	get("Notes", &j.Notes)
	return j
}

// WaitJob waits until a job has a result, calling progress (when not nil)
// with its state every interval meanwhile.
func (c *Client) WaitJob(id uint32, interval time.Duration, progress func(JobInfo)) (JobInfo, error) {
	match := []dbus.MatchOption{dbus.WithMatchObjectPath(RootPath), dbus.WithMatchInterface(ManagerIface), dbus.WithMatchMember("JobRemoved")}
	if err := c.conn.AddMatchSignal(match...); err != nil {
		return JobInfo{}, err
	}
	defer c.conn.RemoveMatchSignal(match...)
	sigs := make(chan *dbus.Signal, 16)
	c.conn.Signal(sigs)
	defer c.conn.RemoveSignal(sigs)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		j, err := c.Job(id)
		if err != nil {
			return j, err
		}
		if j.Result != "" {
			return j, nil
		}
		if progress != nil {
			progress(j)
		}
		select {
		case <-sigs:
		case <-tick.C:
		}
	}
}

// jobBatch bounds the property reads JobsProperties has in flight at once:
// dbus-daemon limits the replies a connection may await (128 by default).
const jobBatch = 64

// JobsProperties reads every property of each job in ids, with the calls
// pipelined, and returns them in the order of ids. A job that no longer
// exists (dropped from the history meanwhile) has a nil map.
func (c *Client) JobsProperties(ids []uint32) ([]map[string]dbus.Variant, error) {
	out := make([]map[string]dbus.Variant, len(ids))
	for start := 0; start < len(ids); start += jobBatch {
		end := min(start+jobBatch, len(ids))
		calls := make([]*dbus.Call, end-start)
		for i, id := range ids[start:end] {
			calls[i] = c.conn.Object(BusName, JobPath(id)).Go("org.freedesktop.DBus.Properties.GetAll", 0, nil, JobIface)
		}
		var first error
		for i, call := range calls {
			<-call.Done
			var props map[string]dbus.Variant
			err := call.Store(&props)
			switch name := ErrorName(err); {
			case err == nil:
				out[start+i] = props
			case name == ErrNotFound || name == ErrNoSuchJob:
			case first == nil:
				first = err
			}
		}
		if first != nil {
			return nil, first
		}
	}
	return out, nil
}

// ListSchedules returns the schedules and whether all are paused.
func (c *Client) ListSchedules() ([]ScheduleRow, bool, error) {
	var rows []ScheduleRow
	var paused bool
	return rows, paused, c.call("ListSchedules").Store(&rows, &paused)
}

// SetSchedule creates or replaces a schedule; every (or onCalendar) says
// when. It returns the timer unit.
func (c *Client) SetSchedule(action, volume, arg string, every time.Duration, onCalendar string) (string, error) {
	var unit string
	return unit, c.call("SetSchedule", action, volume, arg, uint64(every.Microseconds()), onCalendar, uint64(0)).Store(&unit)
}

func (c *Client) RemoveSchedule(action, volume, arg string) error {
	return c.call("RemoveSchedule", action, volume, arg).Err
}

func (c *Client) PauseSchedule(action, volume, arg string) error {
	return c.call("PauseSchedule", action, volume, arg).Err
}

func (c *Client) ResumeSchedule(action, volume, arg string) error {
	return c.call("ResumeSchedule", action, volume, arg).Err
}

func (c *Client) PauseAllSchedules() error  { return c.call("PauseAllSchedules").Err }
func (c *Client) ResumeAllSchedules() error { return c.call("ResumeAllSchedules").Err }

// Purge starts a purge job, or with dryRun answers the plan evaluated at
// `at` (zero: now) without deleting anything.
func (c *Client) Purge(volume, pattern string, dryRun bool, at time.Time) (id uint32, path dbus.ObjectPath, del, keep []PurgeRow, err error) {
	id, path, del, keep, _, err = c.PurgeWarned(volume, pattern, dryRun, at)
	return
}

// PurgeWarned is Purge, answering the pattern's warnings too.
func (c *Client) PurgeWarned(volume, pattern string, dryRun bool, at time.Time) (id uint32, path dbus.ObjectPath, del, keep []PurgeRow, warnings []string, err error) {
	var flags, atUsec uint64
	if dryRun {
		flags |= PurgeDryRun
	}
	if !at.IsZero() {
		atUsec = uint64(at.UnixMicro())
	}
	err = c.call("Purge", volume, pattern, flags, atUsec).Store(&id, &path, &del, &keep, &warnings)
	return
}

func (c *Client) PinSnapshot(name string) error   { return c.call("PinSnapshot", name).Err }
func (c *Client) UnpinSnapshot(name string) error { return c.call("UnpinSnapshot", name).Err }

// SyncVolume starts a job pulling into volume the newer files of the
// same-named volume of each host; force syncs a mounted volume too.
func (c *Client) SyncVolume(volume string, hosts []string, force bool) (uint32, dbus.ObjectPath, error) {
	var flags uint64
	if force {
		flags |= SyncForce
	}
	return c.callJob("SyncVolume", volume, hosts, flags)
}

// ImportSnapshot starts a job receiving the send stream read from f (which
// the caller opened with its own rights; it may close its copy).
func (c *Client) ImportSnapshot(f *os.File) (uint32, dbus.ObjectPath, error) {
	return c.callJob("ImportSnapshot", dbus.UnixFD(f.Fd()), uint64(0))
}

// SendSnapshot starts a job sending snapshot to host (a peer's name or
// host[:port]); bwlimit is in bytes per second on the wire, 0 for none.
func (c *Client) SendSnapshot(host, snapshot string, bwlimit uint64, compress bool) (uint32, dbus.ObjectPath, error) {
	var flags uint64
	if compress {
		flags |= SendCompress
	}
	return c.callJob("SendSnapshot", host, snapshot, bwlimit, flags)
}

// ReplicateVolume starts a job taking a fresh snapshot of volume and
// sending it to host, as SendSnapshot does.
func (c *Client) ReplicateVolume(volume, host string, bwlimit uint64, compress bool) (uint32, dbus.ObjectPath, error) {
	var flags uint64
	if compress {
		flags |= SendCompress
	}
	return c.callJob("ReplicateVolume", volume, host, bwlimit, flags)
}

// AddRemote adds a replication peer; flags are RemotePush and RemotePull.
func (c *Client) AddRemote(name, address, publicKey string, volumes []string, flags uint64) error {
	if volumes == nil {
		volumes = []string{}
	}
	return c.call("AddRemote", name, address, publicKey, volumes, flags).Err
}

func (c *Client) ListRemotes() ([]RemoteRow, error) {
	var rows []RemoteRow
	return rows, c.call("ListRemotes").Store(&rows)
}

// RemoveRemote removes a peer and reports whether the replication endpoint
// stopped because no peer is left.
func (c *Client) RemoveRemote(name string) (endpointStopped bool, err error) {
	return endpointStopped, c.call("RemoveRemote", name).Store(&endpointStopped)
}

// TrustRemoteHost trusts host's key if it has the fingerprint given, and
// returns the key.
func (c *Client) TrustRemoteHost(host, fingerprint string, replace bool) (string, error) {
	var flags uint64
	if replace {
		flags |= TrustReplace
	}
	var key string
	return key, c.call("TrustRemoteHost", host, fingerprint, flags).Store(&key)
}

// GetOwnKeys returns butterd's client key line and host key fingerprint.
func (c *Client) GetOwnKeys() (clientKey, hostFingerprint string, err error) {
	err = c.call("GetOwnKeys").Store(&clientKey, &hostFingerprint)
	return
}

func (c *Client) ListReplicas(volume string) ([]ReplicaRow, error) {
	var rows []ReplicaRow
	return rows, c.call("ListReplicas", volume).Store(&rows)
}

// CreateGroupSnapshot starts a snapshot job of volumes, of a group (with
// volumes: the group is set to them) or of a compose project.
func (c *Client) CreateGroupSnapshot(group, project string, volumes []string) (uint32, dbus.ObjectPath, error) {
	if volumes == nil {
		volumes = []string{}
	}
	return c.callJob("CreateGroupSnapshot", group, project, volumes, uint64(0))
}

// RestoreGroup restores a group's or a project's volumes to the snapshots
// of one timestamp ("": the newest all have), all or none.
func (c *Client) RestoreGroup(group, project, timestamp string, flags uint64) (string, []RestoredRow, error) {
	var stamp string
	var rows []RestoredRow
	return stamp, rows, c.call("RestoreGroup", group, project, timestamp, flags).Store(&stamp, &rows)
}

func (c *Client) ListGroups() ([]GroupRow, error) {
	var rows []GroupRow
	return rows, c.call("ListGroups").Store(&rows)
}

// RemoveGroup forgets a group and returns the timers of its schedules,
// removed with it.
func (c *Client) RemoveGroup(name string) ([]string, error) {
	var timers []string
	return timers, c.call("RemoveGroup", name).Store(&timers)
}
