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

// pluginListener returns the socket systemd passed (LISTEN_FDS), or binds
// path.
func pluginListener(path string) (net.Listener, error) {
	named, err := activation.ListenersWithNames()
	if err != nil {
		return nil, fmt.Errorf("sockets passed by systemd: %w", err)
	}
	var all []net.Listener
	for _, name := range []string{"plugin", "butterd.socket"} {
		if ls := named[name]; len(ls) > 0 {
			return ls[0], nil
		}
	}
	for _, ls := range named {
		all = append(all, ls...)
	}
	if len(all) == 1 {
		return all[0], nil
	}
	if len(all) > 1 {
		return nil, fmt.Errorf("systemd passed %d sockets and none is named \"plugin\": set FileDescriptorName=plugin", len(all))
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
