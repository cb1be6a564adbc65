package plugin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"butterd/service"
)

// modelStore is an in-memory store with the service's rules for names,
// creates, mounts and removes: enough for every plugin call to reach a
// real decision.
type modelStore struct {
	volumes map[string]map[string]int // volume -> mount id -> references
}

func (m *modelStore) CreateVolumeContext(_ context.Context, name string, o service.CreateOptions) (service.Volume, bool, error) {
	if err := service.ValidateName(name); err != nil {
		return service.Volume{}, false, err
	}
	if o.From != "" {
		if _, ok := m.volumes[strings.SplitN(o.From, "@", 2)[0]]; !ok || strings.Contains(o.From, "@") {
			return service.Volume{}, false, errors.Join(service.ErrNotFound, errors.New("no such source"))
		}
	}
	if _, ok := m.volumes[name]; ok {
		return m.vol(name), false, nil
	}
	m.volumes[name] = map[string]int{}
	return m.vol(name), true, nil
}

func (m *modelStore) RemoveVolumeContext(_ context.Context, name string, o service.RemoveOptions) (string, error) {
	if _, err := m.GetVolume(name); err != nil {
		return "", err
	}
	if len(m.volumes[name]) > 0 {
		return "", errors.Join(service.ErrInUse, errors.New("in use"))
	}
	delete(m.volumes, name)
	return "", nil
}

func (m *modelStore) GetVolume(name string) (service.Volume, error) {
	if err := service.ValidateName(name); err != nil {
		return service.Volume{}, err
	}
	if _, ok := m.volumes[name]; !ok {
		return service.Volume{}, errors.Join(service.ErrNotFound, service.ErrNoSuchVolume)
	}
	return m.vol(name), nil
}

func (m *modelStore) ListVolumes() []service.Volume {
	var out []service.Volume
	for name := range m.volumes {
		out = append(out, m.vol(name))
	}
	return out
}

func (m *modelStore) MountContext(_ context.Context, name, id string) (string, error) {
	v, err := m.GetVolume(name)
	if err != nil {
		return "", err
	}
	if id == "" {
		return "", errors.Join(service.ErrInvalidArg, errors.New("no mount id"))
	}
	m.volumes[name][id]++
	return v.Path, nil
}

func (m *modelStore) Unmount(name, id string) error {
	if err := service.ValidateName(name); err != nil {
		return err
	}
	if ids := m.volumes[name]; ids[id] > 1 {
		ids[id]--
	} else {
		delete(ids, id)
	}
	return nil
}

func (m *modelStore) vol(name string) service.Volume {
	n := 0
	for _, c := range m.volumes[name] {
		n += c
	}
	return service.Volume{Name: name, Path: "/var/lib/butterd/volumes/" + name, Mounts: n}
}

// FuzzPluginRequest sends any body to any path through the real handler,
// over a model store that already holds volume "v1". Whatever comes in,
// the handler answers once, with the plugin content type, a JSON object
// and a known status: 200 without "Err" and with the call's fields, or an
// error status with a non-empty "Err" string. Its seed corpus runs as a
// plain test.
func FuzzPluginRequest(f *testing.F) {
	for path, body := range map[string]string{
		"/Plugin.Activate":           "",
		"/VolumeDriver.Create":       `{"Name":"v2","Opts":{"copyonwrite":"false","snapshot":"1h","purge":"1d:4w"}}`,
		"/VolumeDriver.Remove":       `{"Name":"v1"}`,
		"/VolumeDriver.Mount":        `{"Name":"v1","ID":"abc"}`,
		"/VolumeDriver.Unmount":      `{"Name":"v1","ID":"abc"}`,
		"/VolumeDriver.Path":         `{"Name":"v1"}`,
		"/VolumeDriver.Get":          `{"Name":"v1"}`,
		"/VolumeDriver.List":         `{}`,
		"/VolumeDriver.Capabilities": `null`,
		"/VolumeDriver.Nope":         `{}`,
	} {
		f.Add(path, []byte(body))
	}
	for _, body := range []string{
		`{"Name":"../etc"}`, `{"Name":"v1","Opts":{"from":"v1@../x"}}`, `{"Name":"v1","Opts":{"bogus":"1"}}`,
		`{"Name":"v3","Opts":{"from":"v1"}}`, `{"Name":"v3","Opts":{"policy":"p"}}`, `{"Name":"a\u0000b"}`,
		`{"Name":1}`, `{"Name":"v1"} {}`, `[`, `{"Name":"v1","Opts":{"snapshot":"-1"}}`,
	} {
		f.Add("/VolumeDriver.Create", []byte(body))
	}
	f.Fuzz(func(t *testing.T, path string, body []byte) {
		store := &modelStore{volumes: map[string]map[string]int{"v1": {}}}
		h := New(store, slog.New(slog.DiscardHandler))
		req := &http.Request{Method: http.MethodPost, URL: &url.URL{Path: path}, Header: http.Header{},
			Body: io.NopCloser(bytes.NewReader(body))}
		req = req.WithContext(t.Context())
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		res := w.Result()
		data, _ := io.ReadAll(res.Body)
		if ct := res.Header.Get("Content-Type"); ct != "application/vnd.docker.plugins.v1.1+json" {
			t.Fatalf("%s: content type %q", path, ct)
		}
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil || m == nil {
			t.Fatalf("%s %q: answer %q is not a JSON object", path, body, data)
		}
		errText, hasErr := m["Err"]
		switch res.StatusCode {
		case http.StatusOK:
			if hasErr {
				t.Fatalf("%s %q: 200 with Err %v", path, body, errText)
			}
			if msg := checkAnswer(path, m); msg != "" {
				t.Fatalf("%s %q: %s: %s", path, body, msg, data)
			}
		case http.StatusBadRequest, http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusConflict, http.StatusInternalServerError:
			if s, ok := errText.(string); !ok || s == "" || len(m) != 1 {
				t.Fatalf("%s %q: status %d with %s", path, body, res.StatusCode, data)
			}
		default:
			t.Fatalf("%s %q: status %d", path, body, res.StatusCode)
		}
		// Only a create that succeeds adds a volume, only a remove that
		// succeeds takes one away.
		_, kept := store.volumes["v1"]
		added := len(store.volumes) - 1
		if !kept {
			added++
		}
		switch {
		case added > 0 && (path != "/VolumeDriver.Create" || res.StatusCode != http.StatusOK):
			t.Fatalf("%s %q: status %d, and a volume was added: %v", path, body, res.StatusCode, store.volumes)
		case !kept && (path != "/VolumeDriver.Remove" || res.StatusCode != http.StatusOK):
			t.Fatalf("%s %q: status %d, and v1 was removed", path, body, res.StatusCode)
		}
	})
}

// checkAnswer says what a successful answer to path lacks, or "".
func checkAnswer(path string, m map[string]any) string {
	switch path {
	case "/VolumeDriver.Mount", "/VolumeDriver.Path":
		if p, _ := m["Mountpoint"].(string); !strings.HasPrefix(p, "/var/lib/butterd/volumes/") {
			return "no Mountpoint"
		}
	case "/VolumeDriver.Get":
		if v, _ := m["Volume"].(map[string]any); v == nil || v["Name"] == "" {
			return "no Volume"
		}
	case "/VolumeDriver.List":
		if _, ok := m["Volumes"].([]any); !ok {
			return "no Volumes"
		}
	case "/VolumeDriver.Capabilities":
		if c, _ := m["Capabilities"].(map[string]any); c == nil || c["Scope"] != "local" {
			return "no local scope"
		}
	case "/Plugin.Activate":
		if _, ok := m["Implements"]; !ok {
			return "no Implements"
		}
	default:
		if len(m) != 0 {
			return "fields in an empty answer"
		}
	}
	return ""
}
