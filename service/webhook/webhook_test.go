package webhook

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"butterd/service"
)

// hook records the posts it gets and answers with the statuses given, in
// turn (then 204).
type hook struct {
	mu       sync.Mutex
	statuses []int
	bodies   []string
	types    []string
	got      chan struct{}
}

func (h *hook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	h.bodies = append(h.bodies, string(b))
	h.types = append(h.types, r.Method+" "+r.Header.Get("Content-Type"))
	status := http.StatusNoContent
	if len(h.statuses) > 0 {
		status, h.statuses = h.statuses[0], h.statuses[1:]
	}
	h.mu.Unlock()
	w.WriteHeader(status)
	h.got <- struct{}{}
}

func start(t *testing.T, statuses ...int) (*hook, *Poster) {
	t.Helper()
	retryDelay = time.Millisecond
	h := &hook{statuses: statuses, got: make(chan struct{}, 10)}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	p, err := New(srv.URL+"/hook?token=secret", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return h, p
}

func wait(t *testing.T, h *hook, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		select {
		case <-h.got:
		case <-time.After(10 * time.Second):
			t.Fatalf("webhook got %d posts, want %d", i, n)
		}
	}
}

func TestPostsFailedJob(t *testing.T) {
	h, p := start(t, http.StatusInternalServerError)
	p.JobFailed(service.Job{ID: 7, Kind: "snapshot", Target: "group:shop", State: service.JobFailed, Error: `pre command of container "db" failed`})
	wait(t, h, 2) // refused once, posted again
	p.Close(context.Background())
	if len(h.bodies) != 2 || h.types[1] != "POST application/json" {
		t.Fatalf("posts %q %q", h.types, h.bodies)
	}
	var ev struct {
		Event string `json:"event"`
		Host  string `json:"host"`
		Job   struct {
			ID     uint32 `json:"id"`
			Kind   string `json:"kind"`
			Target string `json:"target"`
			State  string `json:"state"`
			Error  string `json:"error"`
		} `json:"job"`
	}
	if err := json.Unmarshal([]byte(h.bodies[1]), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Event != "job_failed" || ev.Host == "" || ev.Job.ID != 7 || ev.Job.Kind != "snapshot" || ev.Job.Target != "group:shop" ||
		ev.Job.State != "failed" || !strings.Contains(ev.Job.Error, "pre command") {
		t.Errorf("posted %s", h.bodies[1])
	}
}

func TestGivesUpAndCloses(t *testing.T) {
	h, p := start(t, 500, 500, 500)
	p.JobFailed(service.Job{ID: 1})
	p.JobFailed(service.Job{ID: 2})
	wait(t, h, attempts+1) // three tries of the first, one post of the second
	p.Close(context.Background())
	p.JobFailed(service.Job{ID: 3}) // after Close: dropped, no panic
	if len(h.bodies) != attempts+1 {
		t.Errorf("%d posts, want %d", len(h.bodies), attempts+1)
	}
}

func TestRefusesBadURLs(t *testing.T) {
	for _, u := range []string{"ftp://host/x", "host:80/x", "http://", "::"} {
		if _, err := New(u, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "http:// or https://") {
			t.Errorf("New(%q): %v", u, err)
		}
	}
}
