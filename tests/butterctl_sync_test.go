package tests

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"butterd/dbusapi/server"
	"butterd/service"
	"butterd/service/remote"
	"butterd/tests/testenv"
)

// butterctl sync over a private system bus with the project's policy: the
// store's D-Bus server runs in this process with a Dialer that reaches two
// hosts' real SSH endpoints by name; the real butterctl binary starts the
// job with SyncVolume, waits for it and prints its summary.
func TestButterctlSync(t *testing.T) {
	testenv.Command(t, "btrfs")
	bus := testenv.StartBus(t)
	a, b := newReplHost(t), newReplHost(t)
	root := filepath.Join(testenv.Btrfs(t), "data root")
	local := &replHost{root: root, dir: t.TempDir()}
	a.serve(t, local)
	b.serve(t, local)
	key := local.key(t, "client_key")
	hosts := map[string]*replHost{"hosta": a, "hostb": b}
	local.s = openStoreAt(t, root, service.Config{Dial: func(ctx context.Context, host string) (*remote.Client, error) {
		h, ok := hosts[host]
		if !ok {
			return nil, fmt.Errorf("no peer named %q", host)
		}
		return remote.Dial(ctx, h.addr, "butterd", key, filepath.Join(local.dir, "known_hosts"), remote.Options{})
	}})
	conn, err := dbus.Connect(bus.Address)
	must(t, err)
	srv, err := server.Serve(conn, local.s, slog.Default())
	must(t, err)
	t.Cleanup(srv.Close)
	ctl := newCtl(t, bus)

	now := time.Now()
	lv := syncVolume(t, local, "v1", service.CreateOptions{})
	put(t, filepath.Join(lv, "a"), "old", now.Add(-time.Hour))
	put(t, filepath.Join(syncVolume(t, a, "v1", service.CreateOptions{}), "a"), "from A", now)
	put(t, filepath.Join(syncVolume(t, b, "v1", service.CreateOptions{}), "b"), "from B", now)
	_, err = local.s.Mount("v1", "container-1")
	must(t, err)

	ctl.fails(1, "force the sync", "sync", "v1", "hosta", "hostb")
	r := ctl.run("sync", "--force", "v1", "hosta", "hostb")
	if r.code != 0 || !jobStarted.MatchString(r.stderr) || !strings.Contains(r.stdout, "hosta: 0 created, 1 updated") ||
		!strings.Contains(r.stdout, "hostb: 1 created, 0 updated") || !strings.HasPrefix(r.stdout, "safety snapshot v1@") {
		t.Fatalf("butterctl sync --force: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if readFile(t, filepath.Join(lv, "a")) != "from A" || readFile(t, filepath.Join(lv, "b")) != "from B" {
		t.Errorf("the volume was not synced")
	}
	id := jobStarted.FindStringSubmatch(r.stderr)[1]
	var job map[string]any
	ctl.okJSON(&job, "job", id)
	if job["kind"] != "sync" || job["files_done"] != 2.0 || !strings.Contains(job["summary"].(string), "hostb: 1 created") {
		t.Errorf("job %s: %v", id, job)
	}

	// A host that cannot be reached fails the job, naming it; the others
	// are still synced.
	must(t, local.s.Unmount("v1", "container-1"))
	r = ctl.run("sync", "v1", "nohost", "hosta")
	if r.code != 1 || !strings.Contains(r.stderr, `nohost: connect: no peer named "nohost"`) || !strings.Contains(r.stdout, "hosta: 0 created, 0 updated, 1 unchanged") {
		t.Errorf("sync from an unknown host: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	ctl.fails(2, `host "hosta" is given twice`, "sync", "v1", "hosta", "hosta")
	ctl.fails(1, `no such volume "nope"`, "sync", "nope", "hosta")
	ctl.nobody().fails(4, "", "sync", "v1", "hosta")
	noSyncLeftovers(t, local)
}
