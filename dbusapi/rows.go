package dbusapi

import (
	"strconv"
	"strings"

	"github.com/godbus/dbus/v5"
)

// Flags of RemoveVolume, RestoreSnapshot and SyncVolume; unknown bits are
// refused.
const (
	RemoveNoFinalSnapshot uint64 = 1 << 0
	RestoreForce          uint64 = 1 << 0
	SyncForce             uint64 = 1 << 0 // sync a mounted volume too
)

// VolumeRow is one entry of ListVolumes: a(sostu).
type VolumeRow struct {
	Name       string
	Path       dbus.ObjectPath
	Mountpoint string
	Created    uint64 // µs since the epoch
	Mounts     uint32
}

// SnapshotRow is one entry of ListSnapshots: a(sostb).
type SnapshotRow struct {
	Name   string
	Path   dbus.ObjectPath
	Volume string
	Time   uint64 // µs since the epoch
	Safety bool
}

// JobPrefix is the parent of job objects.
const JobPrefix = RootPath + "/job/"

// JobPath is the object path of a job.
func JobPath(id uint32) dbus.ObjectPath {
	return JobPrefix + dbus.ObjectPath(strconv.FormatUint(uint64(id), 10))
}

// JobRow is one entry of ListJobs: a(uosssd).
type JobRow struct {
	ID       uint32
	Path     dbus.ObjectPath
	Kind     string
	Target   string
	State    string
	Progress float64
}

// ParseJobPath reads the id from a job object path.
func ParseJobPath(path dbus.ObjectPath) (uint32, bool) {
	rest, ok := strings.CutPrefix(string(path), string(JobPrefix))
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(rest, 10, 32)
	return uint32(n), err == nil && strconv.FormatUint(n, 10) == rest // one path per job
}

// PurgeDryRun asks Purge for its plan only.
const PurgeDryRun uint64 = 1 << 0

// PurgeRow is one snapshot of a purge plan: a(sts).
type PurgeRow struct {
	Name   string
	Time   uint64 // µs since the epoch; 0 when the name does not parse
	Reason string
}

// ScheduleRow is one schedule of ListSchedules: a(ssstsbstst). A row with
// an empty Action is a unit named like a schedule's that butterd cannot
// read back (a hand-edited or broken timer, a service without its timer):
// Unit names it, Arg says why, and Paused, LastRun, LastResult and NextRun
// are its state in systemd; butterd leaves it alone, except that removing
// the volume its name belongs to removes it.
type ScheduleRow struct {
	Action     string // snapshot, purge, replicate, synchronize
	Volume     string
	Arg        string // purge pattern, replicate host, synchronize hosts (comma-separated)
	Every      uint64 // interval in µs; 0 for a calendar schedule
	OnCalendar string // systemd calendar expression, or ""
	Paused     bool   // its own timer is disabled and stopped
	Unit       string // the timer unit
	LastRun    uint64 // µs since the epoch; 0: never
	LastResult string // "success", "failed" or "" (never ran)
	NextRun    uint64 // µs since the epoch; 0: not planned (paused)
}

// SchedulePath is the object path of a schedule, by its timer unit.
func SchedulePath(unit string) dbus.ObjectPath {
	return SchedulePrefix + dbus.ObjectPath(EscapePath(unit))
}

// SchedulePrefix is the parent of schedule objects.
const SchedulePrefix = RootPath + "/schedule/"

// Flags of ExportSnapshot.
const ExportCompress uint64 = 1 << 0 // write the stream compressed with zstd

// Flags of SendSnapshot and ReplicateVolume.
const SendCompress uint64 = 1 << 0 // compress the stream with zstd on the wire

// Flags of AddRemote: the peer's rights on this host.
const (
	RemotePush uint64 = 1 << 0 // it may send snapshots here
	RemotePull uint64 = 1 << 1 // it may fetch snapshots from here
)

// TrustReplace asks TrustRemoteHost to drop a key known before for the host.
const TrustReplace uint64 = 1 << 0

// RemoteRow is one peer of ListRemotes: a(ssssbbas).
type RemoteRow struct {
	Name        string
	Address     string // "" means its name
	PublicKey   string // its client key, an authorized_keys line
	Fingerprint string // SHA256:...
	Push        bool
	Pull        bool
	Volumes     []string // empty: all
}

// ReplicaRow says a peer holds a snapshot, by the records: a(ssbbt).
type ReplicaRow struct {
	Snapshot string
	Peer     string
	Received bool   // received from the peer (else: the peer held it at the last send)
	Newest   bool   // the newest snapshot shared with the peer: purge keeps it
	Time     uint64 // µs since the epoch when the records last said so
}

// ContainerRow is what a snapshot job did with one container: a(ssts).
type ContainerRow struct {
	Name   string
	Action string // pause, stop, none, or "left as it was"
	Held   uint64 // µs paused or stopped
	Note   string // how the pre and post commands went, or why it was left alone
}

// RestoredRow is one volume of a group restore: a(sss).
type RestoredRow struct {
	Snapshot string // the snapshot restored
	Volume   string
	Safety   string // the snapshot keeping the replaced data ("" for a volume that did not exist)
}

// GroupRow is one group of ListGroups: a(sas).
type GroupRow struct {
	Name    string
	Volumes []string
}
