package plugin

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"butterd/service"
)

// fakeStore answers with a fixed error, recording what it was asked.
type fakeStore struct {
	err   error
	calls []string
}

func (f *fakeStore) CreateVolumeContext(_ context.Context, name string, o service.CreateOptions) (service.Volume, bool, error) {
	f.calls = append(f.calls, "create "+name)
	return service.Volume{Name: name}, true, f.err
}
func (f *fakeStore) RemoveVolumeContext(_ context.Context, name string, o service.RemoveOptions) (string, error) {
	f.calls = append(f.calls, "remove "+name)
	return "", f.err
}
func (f *fakeStore) GetVolume(name string) (service.Volume, error) {
	return service.Volume{Name: name, Path: "/p/" + name}, f.err
}
func (f *fakeStore) ListVolumes() []service.Volume { return []service.Volume{{Name: "a"}, {Name: "b"}} }
func (f *fakeStore) MountContext(_ context.Context, name, id string) (string, error) {
	f.calls = append(f.calls, "mount "+name+" "+id)
	return "/p/" + name, f.err
}
func (f *fakeStore) Unmount(name, id string) error { return f.err }

func call(t *testing.T, h http.Handler, path, body string) (int, map[string]any) {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, path, strings.NewReader(body)))
	res := w.Result()
	data, _ := io.ReadAll(res.Body)
	if ct := res.Header.Get("Content-Type"); ct != "application/vnd.docker.plugins.v1.1+json" {
		t.Errorf("%s: content type %q", path, ct)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("%s: answer is not JSON: %q", path, data)
	}
	return res.StatusCode, m
}

func TestErrorMapping(t *testing.T) {
	kinds := map[error]int{
		service.ErrNotFound:        404,
		service.ErrInvalidName:     400,
		service.ErrInvalidArg:      400,
		service.ErrInUse:           409,
		service.ErrBusy:            409,
		service.ErrExists:          409,
		fmt.Errorf("disk on fire"): 500,
	}
	for kind, status := range kinds {
		err := fmt.Errorf("volume %q: %w", "v1", kind)
		h := New(&fakeStore{err: err}, slog.New(slog.DiscardHandler))
		st, m := call(t, h, "/VolumeDriver.Mount", `{"Name":"v1","ID":"m"}`)
		if st != status || m["Err"] != err.Error() {
			t.Errorf("%v: got %d %v, want %d with the service's message", kind, st, m, status)
		}
	}
}

// An error whose text is not UTF-8 (a file name quoted by btrfs) still
// answers JSON that Docker reads, the bad bytes as U+FFFD.
func TestErrorTextNotUTF8(t *testing.T) {
	err := fmt.Errorf("volume %q: ERROR: cannot open a\xff\x00b: %w", "v1", service.ErrBusy)
	h := New(&fakeStore{err: err}, slog.New(slog.DiscardHandler))
	st, m := call(t, h, "/VolumeDriver.Mount", `{"Name":"v1","ID":"m"}`)
	if want := "volume \"v1\": ERROR: cannot open a\uFFFD\x00b: " + service.ErrBusy.Error(); st != 409 || m["Err"] != want {
		t.Errorf("got %d %q, want 409 %q", st, m["Err"], want)
	}
}

func TestMalformedAndUnknown(t *testing.T) {
	f := &fakeStore{}
	h := New(f, slog.New(slog.DiscardHandler))
	for path, body := range map[string]string{
		"/VolumeDriver.Create": `{"Name":`,
		"/VolumeDriver.Remove": `{"Name":"a"} trailing`,
		"/VolumeDriver.Mount":  `{}`,
	} {
		if st, m := call(t, h, path, body); st != 400 || m["Err"] == "" {
			t.Errorf("%s %q: %d %v", path, body, st, m)
		}
	}
	if st, m := call(t, h, "/nope", ""); st != 404 || !strings.Contains(m["Err"].(string), "unknown plugin call") {
		t.Errorf("unknown path: %d %v", st, m)
	}
	if len(f.calls) != 0 {
		t.Errorf("bad requests reached the store: %v", f.calls)
	}
	if st, m := call(t, h, "/VolumeDriver.Create", `{"Name":"v1","Opts":{"bogus":"1"}}`); st != 400 || !strings.Contains(m["Err"].(string), "allowed options") {
		t.Errorf("unknown option: %d %v", st, m)
	}
	if len(f.calls) != 0 {
		t.Errorf("refused options reached the store: %v", f.calls)
	}
}

func TestAnswers(t *testing.T) {
	h := New(&fakeStore{}, slog.New(slog.DiscardHandler))
	if _, m := call(t, h, "/VolumeDriver.List", ""); len(m["Volumes"].([]any)) != 2 {
		t.Errorf("list: %v", m)
	}
	if _, m := call(t, h, "/VolumeDriver.Get", `{"Name":"v1"}`); m["Volume"].(map[string]any)["Mountpoint"] != "/p/v1" {
		t.Errorf("get: %v", m)
	}
	if _, m := call(t, h, "/VolumeDriver.Capabilities", ""); m["Capabilities"].(map[string]any)["Scope"] != "local" {
		t.Errorf("capabilities: %v", m)
	}
	if st, m := call(t, h, "/VolumeDriver.Create", `{"Name":"v1"}`); st != 200 || len(m) != 0 {
		t.Errorf("create: %d %v", st, m)
	}
}
