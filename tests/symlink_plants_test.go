package tests

import (
	"bytes"
	cryptorand "crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"butterd/btrfs"
	"butterd/dbusapi"
	"butterd/tests/testenv"
)

// outside is what lies outside butterd's data root for plants to point
// at: files and a directory on another filesystem, a subvolume and a
// read-only snapshot of it on the pool itself (where an ioctl could reach
// them).
type outside struct {
	dir    string // another filesystem: secret, dir/victim
	sub    string // a subvolume on the pool, holding precious and .nocow
	subRO  string // a read-only snapshot of sub
	victim string // dir/victim
}

func newOutside(t *testing.T, mnt string) *outside {
	t.Helper()
	o := &outside{dir: t.TempDir(), sub: filepath.Join(mnt, "outside"), subRO: filepath.Join(mnt, "outside-ro")}
	o.victim = filepath.Join(o.dir, "dir", "victim")
	must(t, os.Mkdir(filepath.Join(o.dir, "dir"), 0o755))
	writeFile(t, filepath.Join(o.dir, "secret"), "secret")
	writeFile(t, o.victim, "victim")
	mustCreate(t, o.sub)
	writeFile(t, filepath.Join(o.sub, "precious"), "precious")
	writeFile(t, filepath.Join(o.sub, ".nocow"), "")
	must(t, btrfs.Snapshot(o.sub, o.subRO, true))
	// A first look updates access times (directories are read); committed,
	// later looks change nothing, so that a new generation means a write.
	o.fingerprint(t)
	syncFS(t, mnt)
	return o
}

// fingerprint describes every entry under the outside places: kind, mode,
// owner, size, content, link target, change and modification times, and
// for subvolumes their generation: any write, chmod, attribute change,
// rename or deletion shows.
func (o *outside) fingerprint(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for _, root := range []string{o.dir, o.sub, o.subRO} {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			var st syscall.Stat_t
			if err := syscall.Lstat(p, &st); err != nil {
				return err
			}
			fmt.Fprintf(&b, "%s mode=%o uid=%d size=%d mtime=%d.%d ctime=%d.%d", p, st.Mode, st.Uid, st.Size,
				st.Mtim.Sec, st.Mtim.Nsec, st.Ctim.Sec, st.Ctim.Nsec)
			switch {
			case d.Type()&fs.ModeSymlink != 0:
				l, _ := os.Readlink(p)
				fmt.Fprintf(&b, " -> %s", l)
			case d.Type().IsRegular():
				// O_NOATIME: reading must not change what it looks at
				// (an atime update would show in the generation).
				f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOATIME, 0)
				if err != nil {
					return err
				}
				data, err := io.ReadAll(f)
				f.Close()
				if err != nil {
					return err
				}
				fmt.Fprintf(&b, " sha256=%x", sha256.Sum256(data))
			}
			if info, err := btrfs.GetInfo(p); err == nil {
				fmt.Fprintf(&b, " generation=%d ro=%v", info.Generation, info.ReadOnly)
			}
			b.WriteString("\n")
			return nil
		})
		if err != nil {
			t.Fatalf("fingerprint of %s: %v", root, err)
		}
	}
	return b.String()
}

// untouched fails the test when the outside places changed since before.
func (o *outside) untouched(t *testing.T, before, when string) {
	t.Helper()
	if after := o.fingerprint(t); after != before {
		t.Errorf("%s changed what lies outside the data root:\nbefore:\n%s\nafter:\n%s", when, before, after)
	}
}

// plantLinks puts symbolic links to the outside places into a volume's
// directory: .nocow, absolute and relative links to a directory and a file,
// and a link to the outside subvolume.
func plantLinks(t *testing.T, dir string, o *outside) {
	t.Helper()
	rel, err := filepath.Rel(dir, filepath.Join(o.dir, "dir"))
	must(t, err)
	for name, target := range map[string]string{
		".nocow": filepath.Join(o.dir, "secret"), "link": filepath.Join(o.dir, "dir"), "victim": o.victim,
		"rel": rel, "sub": o.sub, "sub-ro": o.subRO,
	} {
		must(t, os.Symlink(target, filepath.Join(dir, name)))
	}
	writeFile(t, filepath.Join(dir, "data"), "inside")
}

// oldName renames a stream's snapshot to the same volume in 2001, with a
// new UUID, so that a purge takes it once imported.
func oldName(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	must(t, err)
	name := streamHeader(t, path).Name
	volume, _, _ := strings.Cut(name, "@")
	out := filepath.Join(t.TempDir(), "old.stream")
	// A new UUID too: butterd refuses a stream posing as a subvolume it
	// has (the snapshot exported stays here).
	uuid := make([]byte, 16)
	cryptorand.Read(uuid)
	data = withStreamAttrs(t, data, map[uint16][]byte{1: uuid}) // BTRFS_SEND_A_UUID
	must(t, os.WriteFile(out, withStreamName(t, data, volume+"@2001-01-01T00:00:00.000000"), 0o600))
	return out
}

// Symbolic links planted in volumes and snapshots (by a container, or by
// hand in the data root) never lead butterd to write, change or delete
// anything outside its data root: not through links inside a volume
// (mount, unmount, snapshot, clone, restore, export, import, purge,
// remove), not through a volume or a snapshot replaced by a link while
// butterd runs (those operations are refused), not through links a
// received stream creates and then writes through.
func TestAccessSymlinkPlants(t *testing.T) {
	mnt := testenv.Btrfs(t)
	e := startPool(t, mnt)
	o := newOutside(t, mnt)
	before := o.fingerprint(t)
	dbusErr := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Errorf("%s: %s: %s", what, dbusapi.ErrorName(err), dbusapi.Message(err))
		}
	}
	plugin := func(path string, body map[string]any) (int, string) {
		t.Helper()
		st, m := e.d.Call(path, body)
		msg, _ := m["Err"].(string)
		return st, msg
	}

	// Links inside a volume
	{
		_, err := e.c.CreateVolume("pv", nil)
		dbusErr("CreateVolume", err)
		plantLinks(t, filepath.Join(e.root, "volumes/pv"), o)
		if st, msg := plugin("/VolumeDriver.Mount", map[string]any{"Name": "pv", "ID": "m1"}); st != 200 {
			t.Errorf("Mount: %s", msg)
		}
		if st, msg := plugin("/VolumeDriver.Unmount", map[string]any{"Name": "pv", "ID": "m1"}); st != 200 {
			t.Errorf("Unmount: %s", msg)
		}
		snap, err := e.c.CreateSnapshot("pv")
		dbusErr("CreateSnapshot", err)
		_, err = e.c.CloneVolume("pv", "pv2")
		dbusErr("CloneVolume", err)
		_, err = e.c.RemoveVolume("pv2", 0)
		dbusErr("RemoveVolume v2", err)
		_, _, _, err = e.c.Restore(snap, "", 0)
		dbusErr("Restore over v", err)
		_, _, _, err = e.c.Restore(snap, "pv3", 0)
		dbusErr("Restore into v3", err)
		stream := e.exportTo(snap)
		if msg := e.importFrom(oldName(t, stream)); msg != "" {
			t.Errorf("import of a tree holding links: %s", msg)
		}
		_, _, _, err = e.c.Restore("pv@2001-01-01T00:00:00.000000", "pv4", 0)
		dbusErr("Restore of the imported snapshot", err)
		id, _, _, _, err := e.c.Purge("pv", "1d", false, time.Time{})
		dbusErr("Purge", err)
		if err == nil {
			if msg := e.waitJob(id); msg != "" {
				t.Errorf("purge: %s", msg)
			}
		}
		if _, err := e.c.GetSnapshot("pv@2001-01-01T00:00:00.000000"); err == nil {
			t.Error("the purge left the snapshot of 2001")
		}
		for _, v := range []string{"pv", "pv3", "pv4"} {
			_, err = e.c.RemoveVolume(v, 0)
			dbusErr("RemoveVolume "+v, err)
		}
		o.untouched(t, before, "operations on volumes holding links")
		e.consistent("after operations on volumes holding links")
	}

	// A volume replaced by a link
	{
		_, err := e.c.CreateVolume("pw", nil)
		dbusErr("CreateVolume", err)
		snap, err := e.c.CreateSnapshot("pw")
		dbusErr("CreateSnapshot", err)
		vol, away := filepath.Join(e.root, "volumes/pw"), filepath.Join(mnt, "pw-away")
		must(t, os.Rename(vol, away))
		must(t, os.Symlink(o.sub, vol))
		refused := func(what string, err error) {
			t.Helper()
			if err == nil {
				t.Errorf("%s of a volume replaced by a link succeeded", what)
			} else {
				t.Logf("%s: %s", what, dbusapi.Message(err))
			}
		}
		if st, msg := plugin("/VolumeDriver.Mount", map[string]any{"Name": "pw", "ID": "m1"}); st == 200 {
			t.Error("Mount of a volume replaced by a link succeeded")
		} else {
			t.Logf("Mount: %s", msg)
		}
		_, err = e.c.CreateSnapshot("pw")
		refused("CreateSnapshot", err)
		_, err = e.c.CloneVolume("pw", "pw2")
		refused("CloneVolume", err)
		_, _, _, err = e.c.Restore(snap, "", 0)
		refused("Restore", err)
		_, err = e.c.RemoveVolume("pw", 0)
		refused("RemoveVolume", err)
		_, err = e.c.RemoveVolume("pw", dbusapi.RemoveNoFinalSnapshot)
		refused("RemoveVolume without a final snapshot", err)
		o.untouched(t, before, "operations on a volume replaced by a link")
		if l, err := os.Readlink(vol); err != nil || l != o.sub {
			t.Errorf("the link in place of volume w became %q, %v", l, err)
		}

		// Put back, the volume works again.
		must(t, os.Remove(vol))
		must(t, os.Rename(away, vol))
		if st, msg := plugin("/VolumeDriver.Mount", map[string]any{"Name": "pw", "ID": "m1"}); st != 200 {
			t.Errorf("Mount once put back: %s", msg)
		}
		plugin("/VolumeDriver.Unmount", map[string]any{"Name": "pw", "ID": "m1"})
		_, err = e.c.RemoveVolume("pw", dbusapi.RemoveNoFinalSnapshot)
		dbusErr("RemoveVolume once put back", err)
		e.consistent("after a volume was put back")
	}

	// A snapshot replaced by a link
	{
		_, err := e.c.CreateVolume("pu", nil)
		dbusErr("CreateVolume", err)
		snap, err := e.c.CreateSnapshot("pu")
		dbusErr("CreateSnapshot", err)
		if msg := e.importFrom(oldName(t, e.exportTo(snap))); msg != "" {
			t.Fatalf("import: %s", msg)
		}
		const old = "pu@2001-01-01T00:00:00.000000"
		path, away := filepath.Join(e.root, "snapshots", old), filepath.Join(mnt, "pu-old-away")
		must(t, btrfs.SetReadOnly(path, false)) // a read-only subvolume cannot leave its directory
		must(t, os.Rename(path, away))
		must(t, os.Symlink(o.subRO, path))
		id, _, _, _, err := e.c.Purge("pu", "1d", false, time.Time{})
		dbusErr("Purge", err)
		if err == nil {
			t.Logf("purge: %q", e.waitJob(id))
		}
		if err := e.c.RemoveSnapshot(old); err == nil {
			t.Error("RemoveSnapshot of a snapshot replaced by a link succeeded")
		}
		out, err := os.Create(filepath.Join(t.TempDir(), "stream"))
		must(t, err)
		if id, _, err := e.c.ExportSnapshot(old, "", out, false); err == nil && e.waitJob(id) == "" {
			t.Error("ExportSnapshot of a snapshot replaced by a link succeeded")
		}
		out.Close()
		if _, _, _, err := e.c.Restore(old, "pu5", 0); err == nil {
			t.Error("Restore of a snapshot replaced by a link succeeded")
		}
		if _, err := e.c.CreateVolume("pu6", map[string]string{"from": old}); err == nil {
			t.Error("CreateVolume from a snapshot replaced by a link succeeded")
		}
		o.untouched(t, before, "operations on a snapshot replaced by a link")

		must(t, os.Remove(path))
		must(t, os.Rename(away, path))
		dbusErr("RemoveSnapshot once put back", e.c.RemoveSnapshot(old))
		_, err = e.c.RemoveVolume("pu", dbusapi.RemoveNoFinalSnapshot)
		dbusErr("RemoveVolume", err)
		dbusErr("RemoveSnapshot", e.c.RemoveSnapshot(snap))
		e.consistent("after a snapshot was put back")
	}

	// Streams that write through their own links
	{
		farUp := strings.Repeat("../", 40) + strings.TrimPrefix(filepath.Join(o.dir, "dir"), "/")
		for i, target := range []string{filepath.Join(o.dir, "dir"), farUp} {
			for _, attack := range []struct {
				name string
				cmd  []byte
			}{
				{"write", sendCommand(15, sendAttr(15, "evil/victim"), sendAttr(18, u64(0)), sendAttr(19, "pwned"))},
				{"truncate", sendCommand(17, sendAttr(15, "evil/victim"), sendAttr(4, u64(0)))},
				{"chmod", sendCommand(18, sendAttr(15, "evil/victim"), sendAttr(5, u64(0o777)))},
				{"chown", sendCommand(19, sendAttr(15, "evil/victim"), sendAttr(6, u64(65534)), sendAttr(7, u64(65534)))},
				{"utimes", sendCommand(20, sendAttr(15, "evil/victim"), sendAttr(9, make([]byte, 12)), sendAttr(10, make([]byte, 12)), sendAttr(11, make([]byte, 12)))},
				{"set_xattr", sendCommand(13, sendAttr(15, "evil/victim"), sendAttr(13, "user.pwned"), sendAttr(14, "1"))},
				{"rename", sendCommand(9, sendAttr(15, "evil/victim"), sendAttr(16, "stolen"))},
				{"unlink", sendCommand(11, sendAttr(15, "evil/victim"))},
				{"link", sendCommand(10, sendAttr(15, "evil/hardlink"), sendAttr(17, "data"))},
			} {
				name := fmt.Sprintf("h%d@2002-01-01T00:00:%02d.000000", i, len(attack.name))
				stream := craftStream(t, name,
					sendCommand(3, sendAttr(15, "data"), sendAttr(3, u64(258))),
					sendCommand(8, sendAttr(15, "evil"), sendAttr(3, u64(257)), sendAttr(17, target)),
					attack.cmd)
				msg := e.importFrom(stream)
				t.Logf("%s through a link to %.40q: %q", attack.name, target, msg)
				if msg == "" {
					dbusErr("RemoveSnapshot", e.c.RemoveSnapshot(name))
				}
				o.untouched(t, before, "a stream that does "+attack.name+" through a link")
				e.consistent("after a stream that does " + attack.name + " through a link")
			}
		}
	}
}

// craftStream writes a version 1 send stream of the subvolume name holding
// cmds, then END, into a file.
func craftStream(t *testing.T, name string, cmds ...[]byte) string {
	t.Helper()
	var b bytes.Buffer
	b.WriteString("btrfs-stream\x00")
	binary.Write(&b, binary.LittleEndian, uint32(1))
	uuid := sha256.Sum256([]byte(name))
	b.Write(sendCommand(1, sendAttr(15, name), sendAttr(1, uuid[:16]), sendAttr(2, u64(1))))
	for _, c := range cmds {
		b.Write(c)
	}
	b.Write(sendCommand(21))
	path := filepath.Join(t.TempDir(), "crafted.stream")
	must(t, os.WriteFile(path, b.Bytes(), 0o600))
	return path
}

// sendCommand is one command of a send stream: its length, kind and CRC
// (crc32c with seed 0 and no final inversion, as the kernel's), then its
// attributes.
func sendCommand(kind uint16, attrs ...[]byte) []byte {
	payload := bytes.Join(attrs, nil)
	cmd := binary.LittleEndian.AppendUint32(nil, uint32(len(payload)))
	cmd = binary.LittleEndian.AppendUint16(cmd, kind)
	cmd = append(cmd, 0, 0, 0, 0)
	cmd = append(cmd, payload...)
	crc := ^crc32.Update(^uint32(0), crc32.MakeTable(crc32.Castagnoli), cmd)
	binary.LittleEndian.PutUint32(cmd[6:], crc)
	return cmd
}

// sendAttr is one attribute (type, length, value) of a send command.
func sendAttr[V string | []byte](typ uint16, v V) []byte {
	a := binary.LittleEndian.AppendUint16(nil, typ)
	a = binary.LittleEndian.AppendUint16(a, uint16(len(v)))
	return append(a, v...)
}

func u64(n uint64) []byte { return binary.LittleEndian.AppendUint64(nil, n) }

// The btrfs package never follows a symbolic link in the last element of a
// path: a link to a subvolume is not one, for every call.
func TestBtrfsRefusesSymlinks(t *testing.T) {
	mnt := testenv.Btrfs(t)
	sub := filepath.Join(mnt, "sub")
	mustCreate(t, sub)
	link := filepath.Join(mnt, "link")
	must(t, os.Symlink(sub, link))
	if ok, err := btrfs.IsSubvolume(link); ok || err != nil {
		t.Errorf("IsSubvolume(link) = %v, %v", ok, err)
	}
	notSub := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, btrfs.ErrNotSubvolume) || !strings.Contains(err.Error(), "symbolic link") {
			t.Errorf("%s of a link: %v, want ErrNotSubvolume saying it is a symbolic link", what, err)
		}
	}
	_, err := btrfs.GetInfo(link)
	notSub("GetInfo", err)
	_, err = btrfs.Nested(link)
	notSub("Nested", err)
	notSub("Snapshot", btrfs.Snapshot(link, filepath.Join(mnt, "snap"), true))
	notSub("Delete", btrfs.Delete(link))
	notSub("SetReadOnly", btrfs.SetReadOnly(link, true))
	if err := btrfs.SetNoCOW(link); !errors.Is(err, syscall.ELOOP) {
		t.Errorf("SetNoCOW of a link: %v, want ELOOP", err)
	}
	if info := getInfo(t, sub); info.ReadOnly {
		t.Error("the link's target became read-only")
	}
	if on, err := btrfs.NoCOW(sub); err != nil || on {
		t.Errorf("the link's target: NOCOW %v, %v", on, err)
	}
	if _, err := os.Stat(filepath.Join(mnt, "snap")); err == nil {
		t.Error("a snapshot of the link's target was made")
	}
}
