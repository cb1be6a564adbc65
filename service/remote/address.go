package remote

import (
	"net"
	"strconv"
	"strings"

	"butterd/units"
)

// HostPort is addr (host or host:port) with DefaultPort when it names no
// port: the form the known hosts file and the records use.
func HostPort(addr string) string { return hostPort(addr) }

// ValidateAddress checks where a peer's endpoint is: a host name, an IPv4
// address or an IPv6 address (in brackets when a port follows), then
// optionally ":port" (1 to 65535; DefaultPort when none). No user: the
// endpoint knows a client by its key.
func ValidateAddress(addr string) error {
	const rule = "addresses are HOST or HOST:PORT (an IPv6 address in brackets: [::1]:1122)"
	if addr == "" {
		return errorf(ErrBadRequest, "address is empty: %s", rule)
	}
	if len(addr) > 300 {
		return errorf(ErrBadRequest, "address %.30q... is %d characters long: %s", addr, len(addr), rule)
	}
	host, port := addr, ""
	if h, p, err := net.SplitHostPort(addr); err == nil {
		host, port = h, p
		if port == "" || strings.TrimLeft(port, "0123456789") != "" || port[0] == '0' {
			return errorf(ErrBadRequest, "address %q: port %q must be a number from 1 to 65535", addr, port)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return errorf(ErrBadRequest, "address %q: port %q must be a number from 1 to 65535", addr, port)
		}
	} else if strings.HasPrefix(addr, "[") && strings.HasSuffix(addr, "]") {
		host = addr[1 : len(addr)-1]
	}
	bracketed := strings.HasPrefix(addr, "[")
	if ip := net.ParseIP(host); ip != nil && bracketed == strings.Contains(host, ":") {
		return nil
	} else if ip != nil && !bracketed && port == "" {
		return nil // a bare IPv6 address
	}
	if bracketed || strings.Contains(host, ":") || !units.ValidHostname(host) {
		return errorf(ErrBadRequest, "address %q: %q is not a host name or IP address: %s", addr, host, rule)
	}
	return nil
}
