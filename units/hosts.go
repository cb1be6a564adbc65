package units

import (
	"net"
	"strconv"
	"strings"
)

// checkHost accepts [user@]host[:port]: host a DNS name or IPv4 address, or
// an IPv6 address in brackets; user [a-zA-Z0-9_][a-zA-Z0-9_.-]*.
func checkHost(h string) error {
	if err := checkText("host", h); err != nil {
		return err
	}
	const rule = "hosts are [user@]host[:port], with an IPv6 address in brackets"
	if h == "" {
		return invalidf("host is empty: %s", rule)
	}
	rest := h
	if user, after, ok := strings.Cut(rest, "@"); ok {
		if !validUser(user) {
			return invalidf("host %q: user %q must be [a-zA-Z0-9_][a-zA-Z0-9_.-]*, at most 32 characters", h, user)
		}
		rest = after
	}
	host, port := rest, ""
	if strings.HasPrefix(rest, "[") {
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return invalidf("host %q: no ']' after the IPv6 address", h)
		}
		host, port = rest[1:end], rest[end+1:]
		if ip := net.ParseIP(host); ip == nil || ip.To4() != nil || strings.Contains(host, "%") {
			return invalidf("host %q: %q is not an IPv6 address", h, host)
		}
		if port != "" && !strings.HasPrefix(port, ":") {
			return invalidf("host %q: only ':port' may follow ']'", h)
		}
		port = strings.TrimPrefix(port, ":")
		if port == "" && strings.HasSuffix(rest, ":") {
			return invalidf("host %q: empty port", h)
		}
	} else {
		if i := strings.IndexByte(rest, ':'); i >= 0 {
			host, port = rest[:i], rest[i+1:]
			if port == "" {
				return invalidf("host %q: empty port", h)
			}
		}
		if !ValidHostname(host) {
			return invalidf("host %q: %q is not a host name (labels of letters, digits, '-' and '_' separated by dots, at most 253 characters): %s", h, host, rule)
		}
	}
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || port[0] == '0' || port[0] == '+' {
			return invalidf("host %q: port %q must be a number from 1 to 65535", h, port)
		}
	}
	return nil
}

func validUser(u string) bool {
	if u == "" || len(u) > 32 || u[0] == '-' || u[0] == '.' {
		return false
	}
	for i := 0; i < len(u); i++ {
		if c := u[i]; !alnum(c) && c != '_' && c != '.' && c != '-' {
			return false
		}
	}
	return true
}

// ValidHostname reports whether h is a DNS name: labels of letters, digits,
// '-' and '_', separated by dots, at most 253 characters.
func ValidHostname(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			if c := label[i]; !alnum(c) && c != '-' && c != '_' {
				return false
			}
		}
	}
	return true
}

// checkHosts checks synchronize's comma-separated list: at least one host,
// no empty item, no host twice.
func checkHosts(list string) error {
	if list == "" {
		return invalidf("synchronize schedule needs hosts: HOST[,HOST...]")
	}
	seen := map[string]bool{}
	for _, h := range strings.Split(list, ",") {
		if h == "" {
			return invalidf("synchronize hosts %q: empty item (use HOST[,HOST...] without spaces)", list)
		}
		if err := checkHost(h); err != nil {
			return invalidf("synchronize hosts: %v", err)
		}
		if seen[h] {
			return invalidf("synchronize hosts %q: %q appears twice", list, h)
		}
		seen[h] = true
	}
	return nil
}
