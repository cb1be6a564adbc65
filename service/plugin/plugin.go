// Package plugin serves the Docker legacy volume plugin protocol over the
// service. It only decodes, calls the service and maps errors: every answer,
// for malformed JSON and unknown paths too, is JSON with "Err".
package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/docker/go-plugins-helpers/sdk"
	"github.com/docker/go-plugins-helpers/volume"

	"butterd/service"
)

// DriverName is the name users give to `docker volume create -d`.
const DriverName = "btrfs"

// maxBody bounds a request body; real requests are a few hundred bytes.
const maxBody = 1 << 20

// Store is what the plugin needs of the service.
type Store interface {
	CreateVolumeContext(ctx context.Context, name string, opts service.CreateOptions) (service.Volume, bool, error)
	RemoveVolumeContext(ctx context.Context, name string, opts service.RemoveOptions) (string, error)
	GetVolume(name string) (service.Volume, error)
	ListVolumes() []service.Volume
	MountContext(ctx context.Context, name, id string) (string, error)
	Unmount(name, id string) error
}

// Handler answers the plugin protocol. The go-plugins-helpers handler is
// not used as the HTTP handler because it answers malformed JSON and
// unknown paths in plain text; its request and response types are.
//
// Create, Remove and Mount pass the request's context to the service: a
// call whose client went away while it waited for a volume changes
// nothing, and one that finds the volume held by another operation for
// long (a sync merging into it) is answered busy rather than kept waiting
// until Docker gives up (README, "Using it").
type Handler struct {
	store  Store
	log    *slog.Logger
	routes map[string]func(ctx context.Context, body []byte) (any, error)
	// Touch, when set, is called on every request (idle tracking).
	Touch func()
}

// New returns the protocol handler for a store.
func New(store Store, log *slog.Logger) *Handler {
	h := &Handler{store: store, log: log.With("subsystem", "plugin")}
	h.routes = map[string]func(context.Context, []byte) (any, error){
		"/Plugin.Activate":           h.activate,
		"/VolumeDriver.Create":       h.create,
		"/VolumeDriver.Remove":       h.remove,
		"/VolumeDriver.Mount":        h.mount,
		"/VolumeDriver.Unmount":      h.unmount,
		"/VolumeDriver.Path":         h.path,
		"/VolumeDriver.Get":          h.get,
		"/VolumeDriver.List":         h.list,
		"/VolumeDriver.Capabilities": h.capabilities,
	}
	return h
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if h.Touch != nil {
		h.Touch()
	}
	route, ok := h.routes[r.URL.Path]
	if !ok {
		h.reply(w, r, start, http.StatusNotFound, nil, fmt.Errorf("unknown plugin call %q: this is the %q volume plugin (VolumeDriver.Create, Remove, Mount, Unmount, Path, Get, List, Capabilities)", r.URL.Path, DriverName))
		return
	}
	if r.Method != http.MethodPost {
		h.reply(w, r, start, http.StatusMethodNotAllowed, nil, fmt.Errorf("plugin call %q must be a POST", r.URL.Path))
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err == nil && len(body) > maxBody {
		err = fmt.Errorf("request body over %d bytes", maxBody)
	}
	if err != nil {
		h.reply(w, r, start, http.StatusBadRequest, nil, err)
		return
	}
	res, err := route(r.Context(), body)
	status := http.StatusOK
	if err != nil {
		status = statusOf(err)
	}
	h.reply(w, r, start, status, res, err)
}

func (h *Handler) reply(w http.ResponseWriter, r *http.Request, start time.Time, status int, res any, err error) {
	if err != nil {
		res = volume.ErrorResponse{Err: err.Error()}
		level := slog.LevelInfo
		if r.URL.Path == "/VolumeDriver.Get" && errors.Is(err, service.ErrNotFound) {
			level = slog.LevelDebug // Docker asks before every create
		}
		h.log.Log(r.Context(), level, "plugin call failed", "call", r.URL.Path, "error", err, "duration", time.Since(start))
	} else if h.log.Enabled(r.Context(), slog.LevelDebug) {
		h.log.Debug("plugin call", "call", r.URL.Path, "duration", time.Since(start))
	}
	w.Header().Set("Content-Type", sdk.DefaultContentTypeV1_1)
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(res)
}

// statusOf maps a service error kind to an HTTP status; Docker reads Err.
func statusOf(err error) int {
	var bad *badRequest
	switch {
	case errors.As(err, &bad), errors.Is(err, service.ErrInvalidName), errors.Is(err, service.ErrInvalidArg):
		return http.StatusBadRequest
	case errors.Is(err, service.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, service.ErrInUse), errors.Is(err, service.ErrBusy), errors.Is(err, service.ErrExists):
		return http.StatusConflict
	}
	return http.StatusInternalServerError
}

type badRequest struct{ msg string }

func (e *badRequest) Error() string { return e.msg }

// decode reads a JSON request body strictly: one object, nothing after it.
func decode(body []byte, v any) error {
	dec := json.NewDecoder(strings.NewReader(string(body)))
	if err := dec.Decode(v); err != nil {
		return &badRequest{fmt.Sprintf("malformed JSON request: %v", err)}
	}
	if dec.More() {
		return &badRequest{"malformed JSON request: more than one value"}
	}
	return nil
}

func needName(name string) error {
	if name == "" {
		return &badRequest{"request has no volume Name"}
	}
	return nil
}

func (h *Handler) activate(context.Context, []byte) (any, error) {
	return map[string][]string{"Implements": {"VolumeDriver"}}, nil
}

func (h *Handler) create(ctx context.Context, body []byte) (any, error) {
	var req volume.CreateRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	if err := needName(req.Name); err != nil {
		return nil, err
	}
	opts, err := service.ParseCreateOptions(req.Options)
	if err != nil {
		return nil, err
	}
	_, _, err = h.store.CreateVolumeContext(ctx, req.Name, opts)
	return struct{}{}, err
}

func (h *Handler) remove(ctx context.Context, body []byte) (any, error) {
	var req volume.RemoveRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	if err := needName(req.Name); err != nil {
		return nil, err
	}
	_, err := h.store.RemoveVolumeContext(ctx, req.Name, service.RemoveOptions{})
	return struct{}{}, err
}

func (h *Handler) mount(ctx context.Context, body []byte) (any, error) {
	var req volume.MountRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	if err := needName(req.Name); err != nil {
		return nil, err
	}
	p, err := h.store.MountContext(ctx, req.Name, req.ID)
	return volume.MountResponse{Mountpoint: p}, err
}

func (h *Handler) unmount(_ context.Context, body []byte) (any, error) {
	var req volume.UnmountRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	if err := needName(req.Name); err != nil {
		return nil, err
	}
	return struct{}{}, h.store.Unmount(req.Name, req.ID)
}

func (h *Handler) path(_ context.Context, body []byte) (any, error) {
	var req volume.PathRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	if err := needName(req.Name); err != nil {
		return nil, err
	}
	v, err := h.store.GetVolume(req.Name)
	return volume.PathResponse{Mountpoint: v.Path}, err
}

func (h *Handler) get(_ context.Context, body []byte) (any, error) {
	var req volume.GetRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	if err := needName(req.Name); err != nil {
		return nil, err
	}
	v, err := h.store.GetVolume(req.Name)
	if err != nil {
		return nil, err
	}
	return volume.GetResponse{Volume: dockerVolume(v)}, nil
}

func (h *Handler) list(context.Context, []byte) (any, error) {
	vols := h.store.ListVolumes()
	out := make([]*volume.Volume, len(vols))
	for i, v := range vols {
		// Docker's list needs names and mountpoints; Get gives the rest.
		out[i] = &volume.Volume{Name: v.Name, Mountpoint: v.Path}
	}
	return volume.ListResponse{Volumes: out}, nil
}

func (h *Handler) capabilities(context.Context, []byte) (any, error) {
	return volume.CapabilitiesResponse{Capabilities: volume.Capability{Scope: "local"}}, nil
}

func dockerVolume(v service.Volume) *volume.Volume {
	dv := &volume.Volume{
		Name:       v.Name,
		Mountpoint: v.Path,
		Status:     map[string]interface{}{"Mounts": v.Mounts},
	}
	if !v.CreatedAt.IsZero() {
		dv.CreatedAt = v.CreatedAt.UTC().Format(time.RFC3339)
	}
	return dv
}
