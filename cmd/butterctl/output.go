package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/godbus/dbus/v5"

	"butterd/dbusapi"
)

// Text output prints names alone, one a line, so that scripts written for
// buttervolume keep working; --json prints one JSON document whose keys are
// the snake_case names of the D-Bus arguments and properties, and times in
// RFC 3339 with microseconds (null when unknown).

const (
	textTime = "2006-01-02 15:04:05"
	jsonTime = "2006-01-02T15:04:05.000000Z07:00"
)

// usec is a time in microseconds since the epoch, as butterd sends it.
type usec uint64

func (u usec) time() time.Time { return time.UnixMicro(int64(u)).Local() }

func (u usec) String() string {
	if u == 0 {
		return "-"
	}
	return u.time().Format(textTime)
}

func (u usec) MarshalJSON() ([]byte, error) {
	if u == 0 {
		return []byte("null"), nil
	}
	return []byte(strconv.Quote(u.time().Format(jsonTime))), nil
}

func (a *app) println(s string) error {
	_, err := fmt.Fprintln(a.out, s)
	return err
}

func (a *app) printJSON(v any) error {
	enc := json.NewEncoder(a.out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

type snapshotJSON struct {
	Name   string `json:"name"`
	Volume string `json:"volume"`
	Time   usec   `json:"time"`
	Safety bool   `json:"safety"`
}

func snapshotsJSON(rows []dbusapi.SnapshotRow) []snapshotJSON {
	out := make([]snapshotJSON, len(rows))
	for i, r := range rows {
		out[i] = snapshotJSON{Name: r.Name, Volume: r.Volume, Time: usec(r.Time), Safety: r.Safety}
	}
	return out
}

// replicaJSON is a peer holding a snapshot, by the records.
type replicaJSON struct {
	Peer     string `json:"peer"`
	Received bool   `json:"received"` // received from the peer
	Newest   bool   `json:"newest"`   // the newest shared with it: purge keeps it
	Time     usec   `json:"time"`     // when the records last said so
}

type snapshotLongJSON struct {
	snapshotJSON
	Peers []replicaJSON `json:"peers"`
}

// peersBySnapshot groups replica rows by snapshot.
func peersBySnapshot(reps []dbusapi.ReplicaRow) map[string][]dbusapi.ReplicaRow {
	m := map[string][]dbusapi.ReplicaRow{}
	for _, r := range reps {
		m[r.Snapshot] = append(m[r.Snapshot], r)
	}
	return m
}

func snapshotsLongJSON(rows []dbusapi.SnapshotRow, reps []dbusapi.ReplicaRow) []snapshotLongJSON {
	by := peersBySnapshot(reps)
	out := make([]snapshotLongJSON, len(rows))
	for i, j := range snapshotsJSON(rows) {
		out[i] = snapshotLongJSON{snapshotJSON: j, Peers: []replicaJSON{}}
		for _, r := range by[j.Name] {
			out[i].Peers = append(out[i].Peers, replicaJSON{Peer: r.Peer, Received: r.Received, Newest: r.Newest, Time: usec(r.Time)})
		}
	}
	return out
}

// snapshotsTable writes `snapshots -l`: the peers that hold a snapshot, by
// the records, with "(from)" for one it came from.
func snapshotsTable(w io.Writer, rows []dbusapi.SnapshotRow, reps []dbusapi.ReplicaRow) error {
	by := peersBySnapshot(reps)
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "NAME\tTIME\tPEERS")
	for _, r := range rows {
		var peers []string
		for _, p := range by[r.Name] {
			if p.Received {
				peers = append(peers, p.Peer+" (from)")
			} else {
				peers = append(peers, p.Peer)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Name, usec(r.Time), orDash(strings.Join(slices.Compact(peers), ", ")))
	}
	return tw.Flush()
}

type volumeJSON struct {
	Name       string `json:"name"`
	Mounts     uint32 `json:"mounts"`
	Created    usec   `json:"created"`
	Mountpoint string `json:"mountpoint"`
}

func volumesJSON(rows []dbusapi.VolumeRow) []volumeJSON {
	out := make([]volumeJSON, len(rows))
	for i, r := range rows {
		out[i] = volumeJSON{Name: r.Name, Mounts: r.Mounts, Created: usec(r.Created), Mountpoint: r.Mountpoint}
	}
	return out
}

// volumeTable writes the `volume ls` table.
func volumeTable(w io.Writer, rows []dbusapi.VolumeRow) error {
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "NAME\tMOUNTS\tCREATED\tMOUNTPOINT")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", r.Name, r.Mounts, usec(r.Created), r.Mountpoint)
	}
	return tw.Flush()
}

// timeProps are the properties that hold a time in µs since the epoch.
var timeProps = map[string]bool{"Created": true, "Time": true, "Started": true, "Finished": true}

// propOrder is the order known properties are shown in; others follow,
// sorted.
var propOrder = []string{"Id", "Kind", "Target", "State", "Result", "Summary", "Progress", "BytesDone", "FilesDone", "Rate",
	"Name", "Volume", "Mountpoint", "Path", "Created", "Time", "Started", "Finished", "Mounts", "Size", "ExclusiveSize", "Safety",
	"ReadOnly", "UUID", "ParentUUID", "ReceivedUUID"}

// textProps format properties whose raw value reads badly in text (given
// the object's other properties too); --json keeps the raw value.
var textProps = map[string]func(v dbus.Variant, all map[string]dbus.Variant) (string, bool){
	"Progress": func(v dbus.Variant, _ map[string]dbus.Variant) (string, bool) {
		f, ok := v.Value().(float64)
		return progressText(f), ok
	},
	"BytesDone": func(v dbus.Variant, _ map[string]dbus.Variant) (string, bool) {
		n, ok := v.Value().(uint64)
		return bytesText(n), ok
	},
	"Rate": func(v dbus.Variant, _ map[string]dbus.Variant) (string, bool) {
		f, ok := v.Value().(float64)
		return rateText(f), ok
	},
	"Containers": func(v dbus.Variant, _ map[string]dbus.Variant) (string, bool) {
		return containersText(v)
	},
	"Size": func(v dbus.Variant, all map[string]dbus.Variant) (string, bool) {
		return sizeText(v, all, true)
	},
	"ExclusiveSize": func(v dbus.Variant, all map[string]dbus.Variant) (string, bool) {
		return sizeText(v, all, false)
	},
}

// bytesText is a size in human units, and in bytes past 1 KiB.
func bytesText(n uint64) string {
	if n < 1024 {
		return formatBytes(n)
	}
	return fmt.Sprintf("%s (%d bytes)", formatBytes(n), n)
}

// sizeUnknown is a Size or ExclusiveSize that BTRFS does not count: its
// quotas are off (or being rescanned).
const sizeUnknown = math.MaxUint64

// sizeText formats Size and ExclusiveSize; with hint, an unknown size says
// how to turn quotas on for the data root holding the volume or snapshot
// (DATA_ROOT/volumes/NAME, DATA_ROOT/snapshots/NAME).
func sizeText(v dbus.Variant, all map[string]dbus.Variant, hint bool) (string, bool) {
	n, ok := v.Value().(uint64)
	switch {
	case n != sizeUnknown:
		return bytesText(n), ok
	case !hint:
		return "unknown", ok
	}
	root := "MOUNTPOINT"
	for _, k := range []string{"Mountpoint", "Path"} {
		if p, _ := all[k].Value().(string); filepath.IsAbs(p) {
			root = filepath.Dir(filepath.Dir(p))
			break
		}
	}
	return "unknown (quotas are off or rescanning: btrfs quota enable " + shellWord(root) + ")", ok
}

// shellWord is s as one word of a POSIX shell command line: quoted only
// when it has to be.
func shellWord(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+=:,@%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func sortedProps(props map[string]dbus.Variant) []string {
	keys := make([]string, 0, len(props))
	for k := range props {
		keys = append(keys, k)
	}
	rank := func(k string) int {
		if i := slices.Index(propOrder, k); i >= 0 {
			return i
		}
		return len(propOrder)
	}
	sort.Slice(keys, func(i, j int) bool {
		ri, rj := rank(keys[i]), rank(keys[j])
		if ri != rj {
			return ri < rj
		}
		return keys[i] < keys[j]
	})
	return keys
}

func propValue(name string, v dbus.Variant) any {
	val := v.Value()
	if u, ok := val.(uint64); ok && timeProps[name] {
		return usec(u)
	}
	if u, ok := val.(uint64); ok && u == sizeUnknown && (name == "Size" || name == "ExclusiveSize") {
		return nil
	}
	return val
}

// propsJSON turns D-Bus properties into a JSON object with snake_case keys.
func propsJSON(props map[string]dbus.Variant) map[string]any {
	out := make(map[string]any, len(props))
	for k, v := range props {
		out[snakeCase(k)] = propValue(k, v)
	}
	return out
}

// propsText writes properties as aligned "Name: value" lines.
func propsText(w io.Writer, props map[string]dbus.Variant) error {
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
	for _, k := range sortedProps(props) {
		if format, ok := textProps[k]; ok {
			if s, ok := format(props[k], props); ok {
				fmt.Fprintf(tw, "%s:\t%s\n", k, s)
				continue
			}
		}
		var s string
		switch val := propValue(k, props[k]).(type) {
		case bool:
			s = map[bool]string{true: "yes", false: "no"}[val]
		case string:
			// Lines after the first stay in the value column.
			s = strings.ReplaceAll(val, "\n", "\n\t")
			if s == "" {
				s = "-"
			}
		default:
			s = fmt.Sprint(val)
		}
		fmt.Fprintf(tw, "%s:\t%s\n", k, s)
	}
	return tw.Flush()
}

// snakeCase turns a D-Bus property name into a JSON key: ParentUUID is
// parent_uuid, ReadOnly is read_only.
func snakeCase(s string) string {
	r := []rune(s)
	var b strings.Builder
	for i, c := range r {
		if unicode.IsUpper(c) && i > 0 {
			prevLower := unicode.IsLower(r[i-1]) || unicode.IsDigit(r[i-1])
			nextLower := i+1 < len(r) && unicode.IsLower(r[i+1])
			if prevLower || (unicode.IsUpper(r[i-1]) && nextLower) {
				b.WriteByte('_')
			}
		}
		b.WriteRune(unicode.ToLower(c))
	}
	return b.String()
}
