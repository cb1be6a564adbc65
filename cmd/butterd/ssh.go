package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"butterd/internal/atomicfile"
	"butterd/service"
	"butterd/service/remote"
	"butterd/units"
)

// restartGrace is how long butterd stays up without activity after it
// enabled butterd-ssh.socket before it asks systemd to restart it: systemd
// refuses to start a socket while its service runs, and starts it, then
// hands it over, when butterd starts again.
const restartGrace = 2 * time.Second

// sshEndpoint is butterd's replication endpoint (DESIGN.md
// "Replication"), disabled until the first peer is added and again once
// the last one is removed. Under systemd it is butterd-ssh.socket, which
// systemd passes; otherwise butterd binds SSH_ADDRESS:SSH_PORT itself
// while a peer exists.
type sshEndpoint struct {
	ctx   context.Context
	store *service.Store
	log   *slog.Logger // butterd's; the endpoint adds its subsystem
	act   *activity
	addr  string        // SSH_ADDRESS:SSH_PORT
	sd    units.Manager // nil when systemd is not reachable
	// host and port are SSH_ADDRESS and SSH_PORT, which a drop-in of
	// butterd-ssh.socket in unitDir carries when they are not its own.
	host, port, unitDir string
	// managed: systemd runs butterd (it passed the plugin socket), so the
	// endpoint is butterd-ssh.socket, never a socket of butterd's own.
	managed bool

	mu       sync.Mutex
	listener net.Listener // the one served; nil when not serving
	handing  atomic.Bool  // butterd-ssh.socket is enabled: restart when idle
	wg       sync.WaitGroup
}

// start serves the socket systemd passed, or binds the endpoint when a
// peer exists and systemd does not run butterd.
func (e *sshEndpoint) start(passed net.Listener) error {
	if passed != nil {
		e.mu.Lock()
		defer e.mu.Unlock()
		e.followListen()
		return e.serveLocked(passed)
	}
	peers, err := e.store.Peers().List()
	if err != nil {
		e.logger().Error("replication endpoint off: the peers file is unreadable", "error", err)
		return nil
	}
	switch {
	case len(peers) == 0:
		e.logger().Info("replication endpoint off until the first peer is added (butterctl remote add)")
		return nil
	case e.managed:
		e.logger().Warn("replication peers exist but systemd passed no replication socket: enable it with systemctl enable " + units.SSHSocket + " && systemctl restart " + units.ServiceName)
		return nil
	}
	return e.peerAdded()
}

// peerAdded makes the endpoint listen, once a peer exists: under systemd
// it enables butterd-ssh.socket, and butterd restarts when idle so that
// systemd starts the socket and hands it over; otherwise it binds the
// address.
func (e *sshEndpoint) peerAdded() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.listener != nil {
		return nil
	}
	if e.managed && e.sd != nil {
		if _, err := e.writeListen(); err != nil {
			return err
		}
		if err := e.sd.Enable([]string{units.SSHSocket}); err != nil {
			return fmt.Errorf("enable %s: %w", units.SSHSocket, err)
		}
		if err := e.sd.Reload(); err != nil {
			return fmt.Errorf("enable %s: %w", units.SSHSocket, err)
		}
		e.logger().Info("replication endpoint enabled: butterd restarts when idle, and systemd hands it the socket", "socket", units.SSHSocket)
		e.handing.Store(true)
		e.act.exitWhenIdle(restartGrace)
		return nil
	}
	l, err := net.Listen("tcp", e.addr)
	if err != nil {
		return fmt.Errorf("listen on %s (SSH_ADDRESS:SSH_PORT): %w", e.addr, err)
	}
	return e.serveLocked(l)
}

// followListen brings the drop-in of butterd-ssh.socket in line with
// SSH_ADDRESS:SSH_PORT when systemd passed the socket; the socket listens
// there once restarted.
func (e *sshEndpoint) followListen() {
	if e.sd == nil {
		return
	}
	changed, err := e.writeListen()
	if err == nil && changed {
		err = e.sd.Reload()
	}
	if err != nil {
		e.logger().Error("replication address of "+units.SSHSocket+" not updated", "error", err)
	} else if changed {
		e.logger().Warn("SSH_ADDRESS or SSH_PORT changed: systemctl restart " + units.SSHSocket + " " + units.ServiceName + " makes the endpoint listen there")
	}
}

// writeListen writes the drop-in of butterd-ssh.socket that makes it listen
// on SSH_ADDRESS:SSH_PORT, or removes it when those are the socket's own,
// and reports whether it changed anything.
func (e *sshEndpoint) writeListen() (bool, error) {
	conf, err := units.RenderSSHListen(e.host, e.port)
	if err != nil {
		return false, fmt.Errorf("replication endpoint under systemd: %w", err)
	}
	dir := filepath.Join(e.unitDir, units.SSHSocket+".d")
	path := filepath.Join(dir, units.SSHListenDropIn)
	old, err := os.ReadFile(path)
	switch {
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return false, err
	case conf == nil && err != nil, bytes.Equal(old, conf) && err == nil:
		return false, nil
	case conf == nil:
		if err := os.Remove(path); err != nil {
			return false, err
		}
		return true, atomicfile.Sync(dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, err
	}
	return true, atomicfile.Write(path, conf, 0o644)
}

func (e *sshEndpoint) serveLocked(l net.Listener) error {
	hostKey, err := e.store.HostKey()
	if err != nil {
		l.Close()
		return err
	}
	srv := &remote.Server{HostKey: hostKey, Peers: e.store.Peers(), Handler: e.store.RemoteHandler(), Log: e.log}
	e.listener = l
	e.wg.Go(func() {
		// peerRemoved closes l: Serve returns once the connections in
		// flight have ended.
		if err := srv.Serve(e.ctx, &trackedListener{Listener: l, act: e.act}); err != nil && !errors.Is(err, net.ErrClosed) {
			e.logger().Error("replication endpoint stopped", "error", err)
		}
	})
	e.logger().Info("serving the replication endpoint", "address", l.Addr().String(), "host_key", remote.Fingerprint(hostKey.PublicKey()))
	return nil
}

// peerRemoved stops the endpoint once no peer is left, and reports
// whether it did: under systemd it stops and disables butterd-ssh.socket,
// so that systemd neither listens nor passes it; and butterd closes its own
// listener. Connections in flight go on until they end.
func (e *sshEndpoint) peerRemoved() (bool, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	peers, err := e.store.Peers().List()
	if err != nil || len(peers) > 0 {
		return false, err
	}
	stopped := e.listener != nil || e.handing.Load()
	if e.managed && e.sd != nil {
		on, err := e.stopSocket()
		if err != nil {
			return false, err
		}
		stopped = stopped || on
		e.handing.Store(false)
		e.act.exitWhenIdle(0)
	}
	if e.listener != nil {
		e.listener.Close()
		e.listener = nil
	}
	if stopped {
		e.logger().Info("replication endpoint stopped: no peer is left; connections in flight go on")
	}
	return stopped, nil
}

// stopSocket disables and stops butterd-ssh.socket, and reports whether it
// was enabled or active.
func (e *sshEndpoint) stopSocket() (bool, error) {
	st, err := e.sd.UnitState(units.SSHSocket)
	if err != nil {
		return false, fmt.Errorf("state of %s: %w", units.SSHSocket, err)
	}
	if st.UnitFileState != "enabled" && st.ActiveState == "inactive" {
		return false, nil
	}
	if err := e.sd.Disable([]string{units.SSHSocket}); err != nil {
		return false, fmt.Errorf("disable %s: %w", units.SSHSocket, err)
	}
	if err := e.sd.Reload(); err != nil {
		return false, fmt.Errorf("disable %s: %w", units.SSHSocket, err)
	}
	if err := e.sd.Stop(units.SSHSocket); err != nil {
		return false, fmt.Errorf("stop %s: %w", units.SSHSocket, err)
	}
	return true, nil
}

// handOver is what butterd does when idle after peerAdded enabled the
// socket: it asks systemd to restart it, and reports whether it did (the
// restart stops butterd as systemctl stop does).
func (e *sshEndpoint) handOver() bool {
	if !e.handing.Load() {
		return false
	}
	e.logger().Info("idle: restarting, for systemd to hand over " + units.SSHSocket)
	if err := e.sd.QueueRestart(units.ServiceName); err != nil {
		e.logger().Error("restart for the replication socket refused: exiting instead; the next start passes it", "error", err)
		return false
	}
	return true
}

func (e *sshEndpoint) logger() *slog.Logger { return e.log.With("subsystem", "ssh") }

// wait waits for the endpoint to stop (its context ended).
func (e *sshEndpoint) wait() { e.wg.Wait() }

// trackedListener counts each connection as activity until it closes.
type trackedListener struct {
	net.Listener
	act *activity
}

func (l *trackedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return l.act.track(c), nil
}
