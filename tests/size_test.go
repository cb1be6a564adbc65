package tests

import (
	"crypto/rand"
	"encoding/json"
	"encoding/xml"
	"errors"
	"maps"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"butterd/btrfs"
	"butterd/tests/testenv"

	"golang.org/x/sys/unix"
)

// Sizes come from BTRFS quotas (qgroups), which only the operator turns on.

const (
	oneMiB      = 1 << 20
	sizeUnknown = uint64(math.MaxUint64) // Size and ExclusiveSize on the bus when BTRFS does not count them
)

// enableQuotas runs `btrfs quota enable` on the filesystem holding path
// and waits for the first count (the rescan) to finish.
func enableQuotas(t *testing.T, path string) {
	t.Helper()
	output(t, "btrfs", "quota", "enable", path)
	output(t, "btrfs", "quota", "rescan", "-W", path)
}

// writeRandom writes n bytes that no compression shrinks into a new file
// and commits them (`btrfs filesystem sync`), so that the qgroups count
// them.
func writeRandom(t *testing.T, path string, n int) {
	t.Helper()
	b := make([]byte, n)
	rand.Read(b)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	fsSync(t, path)
}

func fsSync(t *testing.T, path string) {
	t.Helper()
	output(t, "btrfs", "filesystem", "sync", filepath.Dir(path))
}

func getUsage(t *testing.T, path string) btrfs.Usage {
	t.Helper()
	u, err := btrfs.GetUsage(path)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// within says whether got lies in [lo, hi].
func within(got, lo, hi uint64) bool { return lo <= got && got <= hi }

// A subvolume's usage is unknown while quotas are off, and counts its data
// once they are on: all of it exclusive until a snapshot shares it, then
// the snapshot references about as much and owns almost nothing.
func TestBtrfsUsage(t *testing.T) {
	mnt := testenv.Btrfs(t)
	vol := filepath.Join(mnt, "vol")
	mustCreate(t, vol)
	if u := getUsage(t, vol); u.Known {
		t.Errorf("usage with quotas off = %+v, want unknown", u)
	}
	if _, err := btrfs.GetUsage(mnt + "/nothing"); !errors.Is(err, unix.ENOENT) {
		t.Errorf("usage of a missing path: %v, want ENOENT", err)
	}

	enableQuotas(t, mnt)
	writeRandom(t, filepath.Join(vol, "blob"), 4*oneMiB)
	u := getUsage(t, vol)
	if !u.Known || !within(u.Referenced, 4*oneMiB, 5*oneMiB) || !within(u.Exclusive, 4*oneMiB, 5*oneMiB) {
		t.Fatalf("usage of a volume holding 4 MiB = %+v, want both sizes known, from 4 to 5 MiB", u)
	}

	snap := filepath.Join(mnt, "snap")
	if err := btrfs.Snapshot(vol, snap, true); err != nil {
		t.Fatal(err)
	}
	fsSync(t, snap)
	u, s := getUsage(t, vol), getUsage(t, snap)
	t.Logf("volume %+v, snapshot %+v", u, s)
	if !s.Known || !within(s.Referenced, u.Referenced-256<<10, u.Referenced+256<<10) || s.Exclusive >= oneMiB {
		t.Errorf("snapshot usage = %+v (volume %+v), want Referenced within 256 KiB of the volume's, Exclusive under 1 MiB", s, u)
	}
	if !u.Known || u.Exclusive >= oneMiB {
		t.Errorf("volume usage once a snapshot shares its data = %+v, want Exclusive under 1 MiB", u)
	}

	output(t, "btrfs", "quota", "disable", mnt)
	if u := getUsage(t, vol); u.Known {
		t.Errorf("usage after btrfs quota disable = %+v, want unknown", u)
	}
}

// Size and ExclusiveSize of volume and snapshot objects, through busctl
// get-property and butterctl volume inspect.
func TestDBusSizes(t *testing.T) {
	e := startDBus(t)
	ctl := newCtl(t, e.bus)
	e.ok(asRoot, "CreateVolume", "sa{ss}", "sized", "0")
	vpath := e.volumePath("sized")
	for _, p := range []string{"Size", "ExclusiveSize"} {
		if got := jsonUint(t, e.prop(asNobody, vpath, volumeIface, p)); got != sizeUnknown {
			t.Errorf("volume %s with quotas off = %d, want %d (unknown)", p, got, sizeUnknown)
		}
	}
	out := ctl.ok("volume", "inspect", "sized")
	hint := regexp.QuoteMeta("unknown (quotas are off or rescanning: btrfs quota enable " + shellQuote(e.root) + ")")
	if !regexp.MustCompile(`(?m)^Size:\s+` + hint + `$`).MatchString(out) {
		t.Errorf("volume inspect with quotas off does not say how to turn them on:\n%s", out)
	}
	var js map[string]any
	ctl.okJSON(&js, "volume", "inspect", "--json", "sized")
	for _, k := range []string{"size", "exclusive_size"} {
		if v, ok := js[k]; !ok || v != nil {
			t.Errorf("volume inspect --json with quotas off: %s = %v (present: %v), want null", k, v, ok)
		}
	}

	enableQuotas(t, e.root)
	writeRandom(t, filepath.Join(e.root, "volumes", "sized", "blob"), 4*oneMiB)
	size := jsonUint(t, e.prop(asNobody, vpath, volumeIface, "Size"))
	excl := jsonUint(t, e.prop(asNobody, vpath, volumeIface, "ExclusiveSize"))
	if !within(size, 4*oneMiB, 5*oneMiB) || !within(excl, 4*oneMiB, 5*oneMiB) {
		t.Errorf("volume holding 4 MiB: Size %d, ExclusiveSize %d, want both from 4 to 5 MiB", size, excl)
	}
	out = ctl.ok("volume", "inspect", "sized")
	if !regexp.MustCompile(`(?m)^Size:\s+4\.\d MiB \(\d+ bytes\)$`).MatchString(out) {
		t.Errorf("volume inspect does not show a Size of about 4 MiB:\n%s", out)
	}
	js = nil
	ctl.okJSON(&js, "volume", "inspect", "--json", "sized")
	if got, _ := js["size"].(float64); !within(uint64(got), 4*oneMiB, 5*oneMiB) {
		t.Errorf("volume inspect --json: size %v, want a number from 4 to 5 MiB", js["size"])
	}

	snap := jsonString(t, e.ok(asRoot, "CreateSnapshot", "s", "sized")[0])
	fsSync(t, filepath.Join(e.root, "snapshots", snap))
	spath := e.snapshotPath(snap)
	size = jsonUint(t, e.prop(asNobody, vpath, volumeIface, "Size"))
	ssize := jsonUint(t, e.prop(asNobody, spath, snapIface, "Size"))
	sexcl := jsonUint(t, e.prop(asNobody, spath, snapIface, "ExclusiveSize"))
	t.Logf("volume Size %d; snapshot Size %d, ExclusiveSize %d", size, ssize, sexcl)
	if !within(ssize, size-256<<10, size+256<<10) || sexcl >= oneMiB {
		t.Errorf("snapshot of the volume (Size %d): Size %d, ExclusiveSize %d, want Size within 256 KiB of the volume's and ExclusiveSize under 1 MiB (the data is shared)", size, ssize, sexcl)
	}
	if got := jsonUint(t, e.prop(asNobody, vpath, volumeIface, "ExclusiveSize")); got >= oneMiB {
		t.Errorf("volume ExclusiveSize once a snapshot shares its data = %d, want under 1 MiB", got)
	}
}

// The properties a volume or snapshot object introspects are exactly those
// GetAll returns, with the same types; the sizes say what UINT64_MAX means.
func TestDBusIntrospectObjectProperties(t *testing.T) {
	e := startDBus(t)
	e.ok(asRoot, "CreateVolume", "sa{ss}", "intro", "0")
	snap := jsonString(t, e.ok(asRoot, "CreateSnapshot", "s", "intro")[0])
	for _, o := range []struct{ path, iface string }{{e.volumePath("intro"), volumeIface}, {e.snapshotPath(snap), snapIface}} {
		raw := e.busctlOK(asNobody, "introspect", "--xml-interface", busName, o.path)
		var node struct {
			Interfaces []struct {
				Name  string `xml:"name,attr"`
				Props []struct {
					Name    string `xml:"name,attr"`
					Type    string `xml:"type,attr"`
					Comment string `xml:",comment"`
				} `xml:"property"`
			} `xml:"interface"`
		}
		if err := xml.Unmarshal([]byte(raw), &node); err != nil {
			t.Fatalf("introspection XML of %s: %v\n%s", o.path, err, raw)
		}
		introspected := map[string]string{}
		for _, iface := range node.Interfaces {
			if iface.Name != o.iface {
				continue
			}
			for _, p := range iface.Props {
				introspected[p.Name] = p.Type
				if (p.Name == "Size" || p.Name == "ExclusiveSize") && !strings.Contains(p.Comment, "18446744073709551615") {
					t.Errorf("%s.%s: the introspection data does not say what an unknown size is: %q", o.iface, p.Name, p.Comment)
				}
			}
		}
		var all map[string]struct {
			Type string `json:"type"`
		}
		got := e.busctlJSON(asNobody, "call", busName, o.path, "org.freedesktop.DBus.Properties", "GetAll", "s", o.iface)
		if err := json.Unmarshal(got[0], &all); err != nil {
			t.Fatalf("GetAll %s: %v: %s", o.path, err, got[0])
		}
		returned := map[string]string{}
		for name, v := range all {
			returned[name] = v.Type
		}
		if !maps.Equal(introspected, returned) {
			t.Errorf("%s: introspected properties %v, GetAll returns %v", o.path, introspected, returned)
		}
		if introspected["Size"] != "t" || introspected["ExclusiveSize"] != "t" {
			t.Errorf("%s: Size and ExclusiveSize are not introspected as t: %v", o.path, introspected)
		}
	}
}
