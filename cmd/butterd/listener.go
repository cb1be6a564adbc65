package main

import (
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"

	"github.com/coreos/go-systemd/v22/activation"
	"golang.org/x/sys/unix"
)

// passed are the sockets systemd passed (LISTEN_FDS), picked by their
// FileDescriptorName= (or unit name): the plugin socket and the
// replication endpoint's.
type passed struct {
	plugin, ssh net.Listener
}

// passedListeners picks the plugin socket ("plugin", else "butterd.socket",
// else the only unnamed one) and the replication socket ("ssh", else
// "butterd-ssh.socket") out of what systemd passed.
func passedListeners() (passed, error) {
	named, err := activation.ListenersWithNames()
	if err != nil {
		return passed{}, fmt.Errorf("sockets passed by systemd: %w", err)
	}
	var p passed
	pick := func(names ...string) net.Listener {
		for _, name := range names {
			if ls := named[name]; len(ls) > 0 {
				delete(named, name)
				return ls[0]
			}
		}
		return nil
	}
	p.plugin = pick("plugin", "butterd.socket")
	p.ssh = pick("ssh", "butterd-ssh.socket")
	var rest []net.Listener
	for _, ls := range named {
		rest = append(rest, ls...)
	}
	switch {
	case p.plugin == nil && len(rest) == 1:
		p.plugin = rest[0]
	case len(rest) > 0:
		return passed{}, fmt.Errorf("systemd passed %d sockets that are not named \"plugin\" or \"ssh\": set FileDescriptorName=", len(rest))
	}
	return p, nil
}

// pluginListener returns the plugin socket systemd passed, or binds path.
func pluginListener(p passed, path string) (net.Listener, error) {
	if p.plugin != nil {
		return p.plugin, nil
	}
	path = trimUnix(path)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("plugin socket %q exists and is not a socket: remove it or set PLUGIN_SOCKET", path)
		}
		if isSocketInUse(path) {
			return nil, fmt.Errorf("plugin socket %q is in use by another process (another butterd?)", path)
		}
		os.Remove(path) // stale: nobody listens
	}
	// Mode 0600 from the start, as butterd.socket makes it (SocketMode=):
	// only root talks to the plugin, and no one connects before a chmod.
	// The umask is the process's: nothing else of butterd creates files
	// while it binds (the store is open, no job or server runs yet).
	old := unix.Umask(0o177)
	l, err := net.Listen("unix", path)
	unix.Umask(old)
	if err != nil {
		return nil, err
	}
	return l, nil
}
