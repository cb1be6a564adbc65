package tests

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"butterd/btrfs"
	"butterd/tests/testenv"
)

// A job that fails is in butterctl jobs with its error, in butterd's log,
// signalled as JobFailed on the bus and posted to the webhook.
func TestFailureReported(t *testing.T) {
	testenv.Root(t)
	posts := make(chan string, 10)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		posts <- r.Method + " " + r.URL.Path + " " + string(b)
	}))
	defer hook.Close()
	root := filepath.Join(testenv.Btrfs(t), "root")
	// No Docker at that address: butterd starts and snapshots all the same.
	e := startDBusAt(t, root, nil, "--webhook-url="+hook.URL+"/hook", "--docker-host=unix://"+filepath.Join(t.TempDir(), "docker.sock"))
	ctl := newCtl(t, e.bus)
	ctl.ok("volume", "create", "v1")
	// A nested subvolume makes every snapshot of v1 fail.
	must(t, btrfs.Create(filepath.Join(root, "volumes", "v1", "nested")))

	from := e.mon.mark()
	r := ctl.run("snapshot", "v1")
	if r.code != 1 || !strings.Contains(r.stderr, "nested subvolumes") {
		t.Fatalf("butterctl snapshot v1: exit %d, stderr %q", r.code, r.stderr)
	}
	a := e.jobSignal(from, "JobFailed", 1)
	if len(a) != 5 || jsonString(t, a[2]) != "snapshot" || jsonString(t, a[3]) != "v1" || !strings.Contains(jsonString(t, a[4]), "nested subvolumes") {
		t.Errorf("JobFailed signal %s, want (1, path, snapshot, v1, the error)", a)
	}
	select {
	case p := <-posts:
		var ev struct {
			Event string `json:"event"`
			Job   struct {
				ID     uint32 `json:"id"`
				Kind   string `json:"kind"`
				Target string `json:"target"`
				Error  string `json:"error"`
			} `json:"job"`
		}
		body, ok := strings.CutPrefix(p, "POST /hook ")
		if !ok || json.Unmarshal([]byte(body), &ev) != nil || ev.Event != "job_failed" || ev.Job.ID != 1 ||
			ev.Job.Kind != "snapshot" || ev.Job.Target != "v1" || !strings.Contains(ev.Job.Error, "nested subvolumes") {
			t.Errorf("webhook got %q", p)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("nothing posted to the webhook within 30 s")
	}
	jobs := ctl.ok("jobs")
	if !regexp.MustCompile(`(?m)^1\s+snapshot\s+v1\s+failed\s.*nested subvolumes`).MatchString(jobs) {
		t.Errorf("butterctl jobs:\n%s", jobs)
	}
	if log := e.d.Log(); !strings.Contains(log, `msg="job failed" subsystem=service job=1 kind=snapshot target=v1`) {
		t.Errorf("butterd did not log the failure:\n%s", log)
	}

	// A snapshot that works leaves no job behind (no containers to tell of).
	must(t, btrfs.Delete(filepath.Join(root, "volumes", "v1", "nested")))
	ctl.ok("snapshot", "v1")
	if got := ctl.ok("jobs"); got != jobs {
		t.Errorf("a plain snapshot changed the job list:\n%s", got)
	}
}
