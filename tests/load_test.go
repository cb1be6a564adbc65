package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"butterd/btrfs"
	"butterd/dbusapi"
	"butterd/tests/testenv"
)

// Load (make load prints the figures): 64 clients at once, for
// BUTTERD_LOAD_TIME (20s by default), mixing the Docker plugin's calls
// (create, mount, unmount, remove, list, get) with D-Bus calls (snapshot,
// restore, clone, purge, remove snapshot, remove clone) on a few shared
// names, so that they collide. Only the expected conflicts may fail (no
// such volume or snapshot, in use, busy, exists); afterwards, once every
// client has unmounted what it mounted, no volume holds a mount, butterd's
// index equals what is on disk, nothing is left half-done or orphaned, and
// a restarted butterd finds the same. Latency percentiles per call kind
// are printed.
const (
	loadClients = 64
	loadVolumes = 16 // lv00..lv15, shared by all clients
	loadMounted = 8  // lv00..lv07 are mounted too
	loadClones  = 8  // lc00..lc07
)

// loadStats holds the latencies and outcomes of one call kind.
type loadStats struct {
	lat       []time.Duration
	conflicts int
	succeeded int
}

type loadRecorder struct {
	mu     sync.Mutex
	kinds  map[string]*loadStats
	errors []string // unexpected failures
}

func (r *loadRecorder) add(kind string, d time.Duration, conflict bool, unexpected string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.kinds[kind]
	if s == nil {
		s = &loadStats{}
		r.kinds[kind] = s
	}
	s.lat = append(s.lat, d)
	switch {
	case conflict:
		s.conflicts++
	case unexpected == "":
		s.succeeded++
	}
	if unexpected != "" && len(r.errors) < 50 {
		r.errors = append(r.errors, kind+": "+unexpected)
	}
}

// table writes one line per call kind: calls, expected conflicts and
// latency percentiles.
func (r *loadRecorder) table(elapsed time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d clients for %v:\n%-16s %7s %9s %9s %9s %9s %9s %9s\n", loadClients, elapsed.Round(time.Second),
		"call", "calls", "succeeded", "conflicts", "p50", "p95", "p99", "max")
	kinds := make([]string, 0, len(r.kinds))
	for k := range r.kinds {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	total := 0
	for _, k := range kinds {
		s := r.kinds[k]
		slices.Sort(s.lat)
		q := func(p float64) time.Duration { return s.lat[min(len(s.lat)-1, int(p*float64(len(s.lat))))] }
		fmt.Fprintf(&b, "%-16s %7d %9d %9d %9v %9v %9v %9v\n", k, len(s.lat), s.succeeded, s.conflicts,
			q(0.50).Round(time.Microsecond), q(0.95).Round(time.Microsecond), q(0.99).Round(time.Microsecond),
			s.lat[len(s.lat)-1].Round(time.Microsecond))
		total += len(s.lat)
	}
	fmt.Fprintf(&b, "%d calls, %.0f per second", total, float64(total)/elapsed.Seconds())
	return b.String()
}

// loadClient is one of the clients: its plugin connection, its D-Bus
// connection and the mounts it holds.
type loadClient struct {
	id     int
	http   *http.Client
	bus    *dbusapi.Client
	rec    *loadRecorder
	rng    *rand.Rand
	mounts map[string]int // volume -> mounts held under this client's id
}

// plugin posts one plugin call. A 404 or 409 is an expected conflict;
// anything else but 200 is not.
func (c *loadClient) plugin(kind, path string, body any) (map[string]any, bool) {
	data, _ := json.Marshal(body)
	start := time.Now()
	resp, err := c.http.Post("http://plugin"+path, "application/json", bytes.NewReader(data))
	d := time.Since(start)
	if err != nil {
		c.rec.add(kind, d, false, err.Error())
		return nil, false
	}
	defer resp.Body.Close()
	var m map[string]any
	jerr := json.NewDecoder(resp.Body).Decode(&m)
	switch {
	case jerr != nil:
		c.rec.add(kind, d, false, fmt.Sprintf("status %d, answer not JSON: %v", resp.StatusCode, jerr))
	case resp.StatusCode == 200:
		c.rec.add(kind, d, false, "")
		return m, true
	case resp.StatusCode == 404 || resp.StatusCode == 409:
		c.rec.add(kind, d, true, "")
	default:
		c.rec.add(kind, d, false, fmt.Sprintf("status %d: %v", resp.StatusCode, m["Err"]))
	}
	return m, false
}

// expectedDBus are the D-Bus errors that concurrent clients cause each
// other.
var expectedDBus = map[string]bool{
	dbusapi.ErrNoSuchVolume: true, dbusapi.ErrNoSuchSnapshot: true, dbusapi.ErrNotFound: true,
	dbusapi.ErrBusy: true, dbusapi.ErrInUse: true, dbusapi.ErrExists: true,
}

// dbus records one D-Bus call's outcome and says whether it succeeded.
func (c *loadClient) dbus(kind string, start time.Time, err error) bool {
	d := time.Since(start)
	switch {
	case err == nil:
		c.rec.add(kind, d, false, "")
		return true
	case expectedDBus[dbusapi.ErrorName(err)]:
		c.rec.add(kind, d, true, "")
	default:
		c.rec.add(kind, d, false, dbusapi.ErrorName(err)+": "+dbusapi.Message(err))
	}
	return false
}

func (c *loadClient) step() {
	vol := fmt.Sprintf("lv%02d", c.rng.IntN(loadVolumes))
	clone := fmt.Sprintf("lc%02d", c.rng.IntN(loadClones))
	mountID := fmt.Sprintf("client%02d", c.id)
	switch n := c.rng.IntN(100); {
	case n < 14:
		c.plugin("plugin create", "/VolumeDriver.Create", map[string]any{"Name": vol})
	case n < 28:
		vol = fmt.Sprintf("lv%02d", c.rng.IntN(loadMounted))
		if m, ok := c.plugin("plugin mount", "/VolumeDriver.Mount", map[string]any{"Name": vol, "ID": mountID}); ok {
			c.mounts[vol]++
			p, _ := m["Mountpoint"].(string)
			os.WriteFile(filepath.Join(p, mountID), []byte(mountID), 0o644)
		}
	case n < 40:
		if c.mounts[vol] > 0 {
			if _, ok := c.plugin("plugin unmount", "/VolumeDriver.Unmount", map[string]any{"Name": vol, "ID": mountID}); ok {
				c.mounts[vol]--
			}
		}
	case n < 46:
		c.plugin("plugin remove", "/VolumeDriver.Remove", map[string]any{"Name": vol})
	case n < 54:
		c.plugin("plugin list", "/VolumeDriver.List", map[string]any{})
	case n < 60:
		c.plugin("plugin get", "/VolumeDriver.Get", map[string]any{"Name": vol})
	case n < 72:
		start := time.Now()
		_, err := c.bus.CreateSnapshot(vol)
		c.dbus("snapshot", start, err)
	case n < 78:
		// Half of the restores are forced: they replace mounted volumes.
		start := time.Now()
		_, _, _, err := c.bus.Restore(vol, "", uint64(c.rng.IntN(2))*dbusapi.RestoreForce)
		c.dbus("restore", start, err)
	case n < 84:
		start := time.Now()
		_, err := c.bus.CloneVolume(vol, clone)
		c.dbus("clone", start, err)
	case n < 88:
		start := time.Now()
		_, err := c.bus.RemoveVolume(clone, dbusapi.RemoveNoFinalSnapshot)
		c.dbus("remove clone", start, err)
	case n < 94:
		start := time.Now()
		_, _, _, _, err := c.bus.Purge(vol, "1m", false, time.Time{})
		c.dbus("purge", start, err)
	default:
		start := time.Now()
		snaps, err := c.bus.ListSnapshots(vol)
		if !c.dbus("list snapshots", start, err) || len(snaps) == 0 {
			return
		}
		start = time.Now()
		c.dbus("remove snapshot", start, c.bus.RemoveSnapshot(snaps[c.rng.IntN(len(snaps))].Name))
	}
}

// unmountAll gives back every mount the client holds.
func (c *loadClient) unmountAll() {
	for vol, n := range c.mounts {
		for ; n > 0; n-- {
			c.plugin("plugin unmount", "/VolumeDriver.Unmount", map[string]any{"Name": vol, "ID": fmt.Sprintf("client%02d", c.id)})
		}
	}
}

func loadDuration(t *testing.T) time.Duration {
	t.Helper()
	s := os.Getenv("BUTTERD_LOAD_TIME")
	if s == "" {
		return 20 * time.Second
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		t.Fatalf("BUTTERD_LOAD_TIME=%q: a Go duration such as 60s", s)
	}
	return d
}

func TestLoad(t *testing.T) {
	length := loadDuration(t)
	mnt := testenv.BtrfsSize(t, "1G")
	e := startPool(t, mnt)

	transport := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", e.d.Socket)
		},
		MaxIdleConnsPerHost: loadClients,
	}
	defer transport.CloseIdleConnections()
	rec := &loadRecorder{kinds: map[string]*loadStats{}}
	var clients []*loadClient
	var conns []*dbus.Conn
	for i := 0; i < loadClients; i++ {
		if i%8 == 0 { // eight clients share a bus connection
			conn, err := dbus.Connect(e.bus.Address)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conns = append(conns, conn)
		}
		clients = append(clients, &loadClient{
			id: i, rec: rec, mounts: map[string]int{},
			http: &http.Client{Transport: transport, Timeout: time.Minute},
			bus:  dbusapi.NewClient(conns[len(conns)-1]),
			rng:  rand.New(rand.NewPCG(uint64(i), 42)),
		})
	}

	start := time.Now()
	deadline := start.Add(length)
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				c.step()
			}
			c.unmountAll()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	t.Log(rec.table(elapsed))
	for _, msg := range rec.errors {
		t.Errorf("unexpected failure: %s", msg)
	}
	// Conflicts are expected, but a load where a kind of call never got
	// through tests nothing of it.
	for _, kind := range []string{"plugin create", "plugin mount", "snapshot", "restore", "clone", "purge"} {
		if s := rec.kinds[kind]; s == nil || s.succeeded == 0 {
			t.Errorf("no %s call succeeded", kind)
		}
	}

	// Wait for the purges still running, then check what is left.
	jobs, err := e.c.ListJobs()
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range jobs {
		info, err := e.c.WaitJob(j.ID, time.Second, nil)
		if err != nil || info.Result != "done" {
			t.Errorf("job %d (%s %s): %s %s %v", j.ID, j.Kind, j.Target, info.Result, info.Error, err)
		}
	}
	st := e.consistent("after the load")
	for vol, n := range st.Mounts {
		if n != 0 {
			t.Errorf("volume %s holds %d mounts after every client unmounted", vol, n)
		}
	}
	checkNoOrphans(t, mnt, st)
	t.Logf("left: %d volumes, %d snapshots", len(st.Volumes), len(st.Snapshots))

	// A restarted butterd finds the same.
	if err := e.d.Stop(); err != nil {
		t.Fatalf("butterd stopped with %v", err)
	}
	e2 := startPool(t, mnt)
	if again := e2.consistent("after a restart"); !slices.Equal(again.Volumes, st.Volumes) || !slices.Equal(again.Snapshots, st.Snapshots) {
		t.Errorf("after a restart butterd lists %d volumes and %d snapshots, before %d and %d",
			len(again.Volumes), len(again.Snapshots), len(st.Volumes), len(st.Snapshots))
	}
}

// checkNoOrphans lists every subvolume of the pool (the subvolumes inside
// its top level, and inside those) and fails for any that is not a volume
// or snapshot butterd lists.
func checkNoOrphans(t *testing.T, mnt string, st poolState) {
	t.Helper()
	known := map[string]bool{}
	for _, v := range st.Volumes {
		known["root/volumes/"+v] = true
	}
	for _, s := range st.Snapshots {
		known["root/snapshots/"+s] = true
	}
	subs, err := btrfs.Nested(mnt)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range subs {
		if !known[s] {
			t.Errorf("orphaned subvolume %s", s)
		}
		inner, err := btrfs.Nested(filepath.Join(mnt, s))
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range inner {
			t.Errorf("subvolume %s inside %s", in, s)
		}
	}
	if len(subs) != len(known) {
		t.Errorf("%d subvolumes in the pool, butterd lists %d", len(subs), len(known))
	}
}
