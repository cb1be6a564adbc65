package tests

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"butterd/dbusapi"
	"butterd/tests/testenv"
)

// BenchmarkConsistentPause times the pause window of a consistent snapshot
// of one volume: a container labelled butterd.action=pause writes into
// the volume, and each operation is a snapshot job (CreateGroupSnapshot of
// that volume, awaited) with a real dockerd and butterd. The figure timed
// is the window the job reports, from the pause returning to the unpause
// being issued (the whole round trip is ns/op); benchreport compares its
// median with the 100 ms limit.
func BenchmarkConsistentPause(b *testing.B) {
	testenv.Root(b)
	bus := testenv.StartBus(b)
	dk := testenv.StartDocker(b)
	root := filepath.Join(testenv.BtrfsSize(b, perfFSSize), "data root")
	testenv.StartButterdWith(b, root, testenv.PluginSocket, testenv.ButterdOptions{
		Bus: bus, Args: []string{"--log-level=info", "--docker-host=unix://" + dk.Socket}})
	// The container goes while butterd serves, so that Docker can unmount.
	b.Cleanup(func() {
		if ids, err := dk.Run("ps", "-aq"); err == nil && strings.TrimSpace(ids) != "" {
			dk.Run(append([]string{"rm", "-f"}, strings.Fields(ids)...)...)
		}
	})
	dk.MustRun("volume", "create", "-d", "btrfs", "db")
	dk.MustRun("run", "-d", "--network", "none", "--label", "butterd.action=pause", "-v", "db:/data", testenv.Image,
		"sh", "-c", "while :; do date >> /data/log; usleep 10000; done")
	conn, err := dbus.Connect(bus.Address)
	if err != nil {
		b.Fatalf("connect to the bus %s: %v", bus.Address, err)
	}
	client := dbusapi.NewClient(conn)
	b.Cleanup(func() { client.Close() })

	var times perfTimes
	for b.Loop() {
		id, _, err := client.CreateGroupSnapshot("", "", []string{"db"})
		if err != nil {
			b.Fatalf("CreateGroupSnapshot db: %v", dbusapi.Message(err))
		}
		j, err := client.WaitJob(id, time.Second, nil)
		if err != nil || j.Result != "done" || len(j.Containers) != 1 || j.Containers[0].Action != "pause" {
			b.Fatalf("snapshot job %d: %+v, %v: want done, one container paused", id, j, err)
		}
		times = append(times, time.Duration(j.Containers[0].Held)*time.Microsecond)
	}
	times.report(b)
}
