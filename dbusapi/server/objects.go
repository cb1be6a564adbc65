package server

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/godbus/dbus/v5"

	"butterd/dbusapi"
	"butterd/service"
)

var volumeSpec = ifaceSpec{name: dbusapi.VolumeIface, props: []propSpec{
	{"Name", "s"}, {"Mountpoint", "s"}, {"Created", "t"}, {"Mounts", "u"},
	{"UUID", "s"}, {"ParentUUID", "s"}, {"ReadOnly", "b"}, {"Size", "t"}, {"ExclusiveSize", "t"},
}, notes: sizeNotes}

var snapshotSpec = ifaceSpec{name: dbusapi.SnapIface, props: []propSpec{
	{"Name", "s"}, {"Volume", "s"}, {"Path", "s"}, {"Time", "t"}, {"Safety", "b"}, {"Pinned", "b"},
	{"UUID", "s"}, {"ParentUUID", "s"}, {"ReceivedUUID", "s"}, {"ReadOnly", "b"}, {"Size", "t"}, {"ExclusiveSize", "t"},
}, notes: sizeNotes}

// sizeNotes say in the introspection data what the sizes mean.
var sizeNotes = map[string]string{
	"Size":          "bytes the subvolume references (BTRFS qgroup 0/ID, shared data included); 18446744073709551615 (UINT64_MAX) when unknown: quotas off (btrfs quota enable) or being rescanned",
	"ExclusiveSize": "bytes only this subvolume references, about what removing it frees; 18446744073709551615 (UINT64_MAX) when unknown, as Size",
}

// sizeUnknown is Size and ExclusiveSize when BTRFS does not count them
// (quotas off, or being rescanned), as systemd shows unset sizes.
const sizeUnknown = math.MaxUint64

// sizeProps are the properties read from the quota tree: only read when
// asked for, by name or with GetAll.
func sizeProps(only string, props map[string]dbus.Variant, read func() (service.Usage, error)) {
	if only != "" && only != "Size" && only != "ExclusiveSize" {
		return
	}
	u, err := read()
	if err != nil || !u.Known {
		u = service.Usage{Referenced: sizeUnknown, Exclusive: sizeUnknown}
	}
	props["Size"] = dbus.MakeVariant(u.Referenced)
	props["ExclusiveSize"] = dbus.MakeVariant(u.Exclusive)
}

// objects serves the volume, snapshot and schedule objects under dbusapi.RootPath lazily:
// nothing is registered per object; each call looks the name up.
type objects struct {
	store   *service.Store
	manager *Manager
}

// resolvePath turns an object path into (interface spec, name): a volume,
// snapshot or schedule object, the name escaped as EscapePath does.
func resolvePath(path dbus.ObjectPath) (*ifaceSpec, string, bool) {
	p := string(path)
	for _, k := range []struct {
		prefix dbus.ObjectPath
		spec   *ifaceSpec
	}{{dbusapi.VolumePrefix, &volumeSpec}, {dbusapi.SnapshotPrefix, &snapshotSpec}, {dbusapi.SchedulePrefix, &scheduleSpec}} {
		if rest, ok := strings.CutPrefix(p, string(k.prefix)); ok && !strings.Contains(rest, "/") {
			name, ok := dbusapi.UnescapePath(rest)
			return k.spec, name, ok
		}
	}
	return nil, "", false
}

// props reads the properties of the object at path: every one, or at
// least only (a name) when it is not "".
func (o *objects) props(path dbus.ObjectPath, only string) (string, map[string]dbus.Variant, *dbus.Error) {
	if id, ok := dbusapi.ParseJobPath(path); ok {
		j, err := o.store.GetJob(id)
		if err != nil {
			return "", nil, toDBus(err)
		}
		return dbusapi.JobIface, jobProps(j), nil
	}
	spec, name, ok := resolvePath(path)
	if !ok {
		return "", nil, noObject(path)
	}
	if spec == &scheduleSpec {
		props, err := o.scheduleObjectProps(name)
		return spec.name, props, err
	}
	if spec == &volumeSpec {
		v, err := o.store.GetVolume(name)
		if err != nil {
			return "", nil, toDBus(err)
		}
		d, _ := o.store.VolumeDetails(name)
		props := map[string]dbus.Variant{
			"Name": dbus.MakeVariant(v.Name), "Mountpoint": dbus.MakeVariant(v.Path),
			"Created": dbus.MakeVariant(usec(v.CreatedAt)), "Mounts": dbus.MakeVariant(uint32(v.Mounts)),
			"UUID": dbus.MakeVariant(d.UUID), "ParentUUID": dbus.MakeVariant(d.ParentUUID),
			"ReadOnly": dbus.MakeVariant(d.ReadOnly),
		}
		sizeProps(only, props, func() (service.Usage, error) { return o.store.VolumeUsage(name) })
		return spec.name, props, nil
	}
	s, err := o.store.GetSnapshot(name)
	if err != nil {
		return "", nil, toDBus(err)
	}
	d, _ := o.store.SnapshotDetails(name)
	props := map[string]dbus.Variant{
		"Name": dbus.MakeVariant(s.Name), "Volume": dbus.MakeVariant(s.Volume), "Path": dbus.MakeVariant(s.Path),
		"Time": dbus.MakeVariant(usec(s.Time)), "Safety": dbus.MakeVariant(s.Safety), "Pinned": dbus.MakeVariant(s.Pinned),
		"UUID": dbus.MakeVariant(d.UUID), "ParentUUID": dbus.MakeVariant(d.ParentUUID),
		"ReceivedUUID": dbus.MakeVariant(d.ReceivedUUID), "ReadOnly": dbus.MakeVariant(d.ReadOnly),
	}
	sizeProps(only, props, func() (service.Usage, error) { return o.store.SnapshotUsage(name) })
	return spec.name, props, nil
}

// Get, GetAll and Set form org.freedesktop.DBus.Properties for the subtree.
func (o *objects) Get(msg dbus.Message, iface, prop string) (dbus.Variant, *dbus.Error) {
	all, err := o.getAll(msg, iface, prop)
	if err != nil {
		return dbus.Variant{}, err
	}
	v, ok := all[prop]
	if !ok {
		return dbus.Variant{}, dbus.NewError("org.freedesktop.DBus.Error.UnknownProperty", []any{fmt.Sprintf("no property %q on %s", prop, iface)})
	}
	return v, nil
}

func (o *objects) GetAll(msg dbus.Message, iface string) (map[string]dbus.Variant, *dbus.Error) {
	return o.getAll(msg, iface, "")
}

// getAll is GetAll, or, with only set, what Get needs to answer for it.
func (o *objects) getAll(msg dbus.Message, iface, only string) (map[string]dbus.Variant, *dbus.Error) {
	name, all, err := o.props(msg.Headers[dbus.FieldPath].Value().(dbus.ObjectPath), only)
	if err != nil {
		return nil, err
	}
	if iface != "" && iface != name {
		return nil, dbus.NewError("org.freedesktop.DBus.Error.UnknownInterface", []any{fmt.Sprintf("no interface %q here (this is a %s)", iface, name)})
	}
	return all, nil
}

func (o *objects) Set(msg dbus.Message, iface, prop string, value dbus.Variant) *dbus.Error {
	return dbus.NewError("org.freedesktop.DBus.Error.PropertyReadOnly", []any{fmt.Sprintf("property %q is read-only", prop)})
}

// Introspect describes the root, the two directories and each object.
func (o *objects) Introspect(msg dbus.Message) (string, *dbus.Error) {
	path := msg.Headers[dbus.FieldPath].Value().(dbus.ObjectPath)
	switch path {
	case dbusapi.RootPath:
		return introspect([]ifaceSpec{managerSpec}, []string{"volume", "snapshot", "job", "schedule"}), nil
	case dbusapi.SchedulePrefix[:len(dbusapi.SchedulePrefix)-1]:
		return introspect(nil, o.scheduleChildren()), nil
	case dbusapi.VolumePrefix[:len(dbusapi.VolumePrefix)-1]:
		var kids []string
		for _, v := range o.store.ListVolumes() {
			kids = append(kids, dbusapi.EscapePath(v.Name))
		}
		return introspect(nil, kids), nil
	case dbusapi.SnapshotPrefix[:len(dbusapi.SnapshotPrefix)-1]:
		var kids []string
		snaps, _ := o.store.ListSnapshots("")
		for _, s := range snaps {
			kids = append(kids, dbusapi.EscapePath(s.Name))
		}
		return introspect(nil, kids), nil
	case dbusapi.JobPrefix[:len(dbusapi.JobPrefix)-1]:
		var kids []string
		for _, j := range o.store.ListJobs() {
			kids = append(kids, strconv.FormatUint(uint64(j.ID), 10))
		}
		return introspect(nil, kids), nil
	case "/", "/io", "/io/butterd":
		next := strings.TrimPrefix(string(dbusapi.RootPath), string(path))
		next = strings.SplitN(strings.TrimPrefix(next, "/"), "/", 2)[0]
		return introspect(nil, []string{next}), nil
	}
	if _, ok := dbusapi.ParseJobPath(path); ok {
		if _, _, err := o.props(path, "Name"); err != nil {
			return "", err
		}
		return introspect([]ifaceSpec{propertiesIface, jobSpec}, nil), nil
	}
	spec, _, ok := resolvePath(path)
	if !ok {
		return "", noObject(path)
	}
	if _, _, err := o.props(path, "Name"); err != nil {
		return "", err
	}
	return introspect([]ifaceSpec{propertiesIface, *spec}, nil), nil
}

// usec is µs since the epoch, 0 for the zero time.
func usec(t time.Time) uint64 {
	if t.IsZero() {
		return 0
	}
	return uint64(t.UnixMicro())
}

func noObject(path dbus.ObjectPath) *dbus.Error {
	e := dbus.MakeNoObjectError(path)
	return &e
}
