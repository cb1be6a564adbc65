package remote

import (
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Defaults of the Server's bounds on connections that have not
// authenticated yet.
const (
	DefaultHandshakeTimeout   = 10 * time.Second
	DefaultMaxHandshakes      = 32
	DefaultMaxHandshakesPerIP = 8
)

// refusedWarnEvery spaces the warnings about refused connections: the
// first is logged at once, the next ones sum up what was refused since.
const refusedWarnEvery = time.Minute

// handshakeGate bounds the handshakes in progress, in all and per source
// address, so that clients that connect and never authenticate cannot tie
// up the process: the excess is refused at once.
type handshakeGate struct {
	max, perIP int
	log        *slog.Logger

	mu       sync.Mutex
	total    int
	byIP     map[string]int
	refused  int       // since lastWarn
	lastWarn time.Time // zero: no warning yet
}

func newHandshakeGate(max, perIP int, log *slog.Logger) *handshakeGate {
	return &handshakeGate{max: max, perIP: perIP, log: log, byIP: map[string]int{}}
}

// enter takes a handshake slot for a connection from addr, or reports that
// the bounds are reached; a taken slot is given back with leave.
func (g *handshakeGate) enter(addr net.Addr) (source string, ok bool) {
	source = sourceOf(addr)
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.total < g.max && g.byIP[source] < g.perIP {
		g.total++
		g.byIP[source]++
		return source, true
	}
	why := "too many unauthenticated connections at once"
	if g.total < g.max {
		why = "too many unauthenticated connections at once from this address"
	}
	g.log.Debug("connection refused: "+why, "remote", addr.String(), "handshakes", g.total, "from_address", g.byIP[source])
	g.refused++
	if now := time.Now(); g.lastWarn.IsZero() || now.Sub(g.lastWarn) >= refusedWarnEvery {
		g.log.Warn("refusing connections that would wait for their handshake: "+why+" (a flood of connections that never authenticate?)",
			"remote", addr.String(), "refused", g.refused, "max", g.max, "max_per_address", g.perIP)
		g.refused, g.lastWarn = 0, now
	}
	return source, false
}

// leave gives back a slot that enter took for source.
func (g *handshakeGate) leave(source string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.total--
	if g.byIP[source]--; g.byIP[source] <= 0 {
		delete(g.byIP, source)
	}
}

// sourceOf is the key of a connection's source for the bound per
// address: the IPv4 address, or the /64 network of an IPv6 address (one
// host commonly holds a whole /64), or the address as written when it
// has no IP.
func sourceOf(addr net.Addr) string {
	ap, err := netip.ParseAddrPort(addr.String())
	if err != nil {
		return addr.String()
	}
	ip := ap.Addr().Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}
