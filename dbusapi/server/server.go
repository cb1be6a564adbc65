package server

import (
	"fmt"
	"log/slog"

	"github.com/godbus/dbus/v5"

	"butterd/dbusapi"
	"butterd/service"
)

// Server is butterd on the bus.
type Server struct {
	conn    *dbus.Conn
	log     *slog.Logger
	events  chan service.Event
	done    chan struct{}
	store   *service.Store
	manager *Manager
}

// Serve exports the Manager and the objects on conn, then takes the bus
// name without queueing: if another process owns it, it fails.
func Serve(conn *dbus.Conn, store *service.Store, log *slog.Logger) (*Server, error) {
	s := &Server{
		conn:   conn,
		log:    log.With("subsystem", "dbus"),
		events: make(chan service.Event, 1024),
		done:   make(chan struct{}),
		store:  store,
	}
	s.manager = &Manager{store: store, auth: newAuthorizer(conn, s.log)}
	objs := &objects{store: store, manager: s.manager}
	exports := []struct {
		v       any
		path    dbus.ObjectPath
		iface   string
		subtree bool
	}{
		{s.manager, dbusapi.RootPath, dbusapi.ManagerIface, false},
		{map[string]any{"Get": objs.Get, "GetAll": objs.GetAll, "Set": objs.Set}, dbusapi.RootPath, "org.freedesktop.DBus.Properties", true},
		{map[string]any{"Introspect": objs.Introspect}, dbusapi.RootPath, "org.freedesktop.DBus.Introspectable", true},
		{map[string]any{"Introspect": objs.Introspect}, "/", "org.freedesktop.DBus.Introspectable", true},
		{map[string]any{"Cancel": objs.cancelJobObject}, dbusapi.JobPrefix[:len(dbusapi.JobPrefix)-1], dbusapi.JobIface, true},
		{map[string]any{"Get": objs.Get, "GetAll": objs.GetAll, "Set": objs.Set}, dbusapi.JobPrefix[:len(dbusapi.JobPrefix)-1], "org.freedesktop.DBus.Properties", true},
		{map[string]any{"Introspect": objs.Introspect}, dbusapi.JobPrefix[:len(dbusapi.JobPrefix)-1], "org.freedesktop.DBus.Introspectable", true},
	}
	for _, e := range exports {
		var err error
		switch table := cleanMethods(e.v); {
		case e.subtree:
			err = conn.ExportSubtreeMethodTable(table, e.path, e.iface)
		default:
			err = conn.ExportMethodTable(table, e.path, e.iface)
		}
		if err != nil {
			return nil, fmt.Errorf("export %s on %s: %w", e.iface, e.path, err)
		}
	}
	reply, err := conn.RequestName(dbusapi.BusName, dbus.NameFlagDoNotQueue)
	if err != nil {
		return nil, fmt.Errorf("request bus name %s: %w", dbusapi.BusName, err)
	}
	if reply != dbus.RequestNameReplyPrimaryOwner {
		return nil, fmt.Errorf("bus name %s is owned by another process (another butterd is running?)", dbusapi.BusName)
	}
	go s.emitLoop()
	store.SetNotify(func(ev service.Event) {
		select {
		case s.events <- ev:
		default:
			s.log.Warn("signal dropped: too many at once", "name", ev.Name)
		}
	})
	s.log.Info("serving management on the system bus", "name", dbusapi.BusName)
	return s, nil
}

// Close stops signals and releases the name.
// Release gives up the bus name first when butterd stops, so that a call
// made meanwhile starts the next butterd (bus activation) instead of being
// lost; calls already received are still answered.
func (s *Server) Release() {
	if _, err := s.conn.ReleaseName(dbusapi.BusName); err != nil {
		s.log.Warn("bus name not released", "error", err)
	}
}

// Close stops signals and closes the connection.
func (s *Server) Close() {
	s.store.SetNotify(nil)
	close(s.events)
	<-s.done
	s.conn.Close()
}

func (s *Server) emitLoop() {
	defer close(s.done)
	for ev := range s.events {
		var name string
		var path dbus.ObjectPath
		switch ev.Kind {
		case service.VolumeNew:
			name, path = "VolumeNew", dbusapi.VolumePath(ev.Name)
		case service.VolumeRemoved:
			name, path = "VolumeRemoved", dbusapi.VolumePath(ev.Name)
		case service.SnapshotNew:
			name, path = "SnapshotNew", dbusapi.SnapshotPath(ev.Name)
		case service.SnapshotRemoved:
			name, path = "SnapshotRemoved", dbusapi.SnapshotPath(ev.Name)
		case service.JobNew:
			s.emit("JobNew", ev.Job.ID, dbusapi.JobPath(ev.Job.ID))
			continue
		case service.JobRemoved:
			s.emit("JobRemoved", ev.Job.ID, dbusapi.JobPath(ev.Job.ID), jobResult(ev.Job))
			if ev.Job.State == service.JobFailed {
				s.emit("JobFailed", ev.Job.ID, dbusapi.JobPath(ev.Job.ID), ev.Job.Kind, ev.Job.Target, ev.Job.Error)
			}
			continue
		default:
			continue
		}
		s.emit(name, ev.Name, path)
	}
}

func (s *Server) emit(name string, args ...any) {
	for i := range args {
		args[i] = clean(args[i])
	}
	if err := s.conn.Emit(dbusapi.RootPath, dbusapi.ManagerIface+"."+name, args...); err != nil {
		s.log.Warn("signal not sent", "signal", name, "error", err)
	}
}
