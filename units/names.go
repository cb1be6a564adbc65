package units

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

const (
	// Prefix starts the name of every generated schedule unit.
	Prefix = "butterd-sched-"
	// TargetName groups the schedule timers (see RenderTarget).
	TargetName = "butterd-schedules.target"
	// SSHSocket is the socket of butterd's replication endpoint: disabled
	// until the first peer is added. Enabling it makes sockets.target and
	// ServiceName want it, so that it runs whenever butterd does.
	SSHSocket = "butterd-ssh.socket"
	// ServiceName is butterd's own service.
	ServiceName = "butterd.service"

	maxUnitName = 255 // systemd's UNIT_NAME_MAX less the NUL
	hashDigits  = 16  // hex digits of sha256(key) in a shortened name
)

// Names gives the timer and service unit names of s: "butterd-sched-" and
// Escape(s.Key()), with ".timer" and ".service". When the .service name
// would pass 255 characters, the escaped key is cut at an escape boundary
// and "-" and the first 16 hex digits of sha256(Key) are appended, so names
// stay unique. Names does not validate s.
func Names(s Schedule) (timer, service string) {
	stem := stemOf(s.Key())
	return stem + ".timer", stem + ".service"
}

func stemOf(key string) string {
	const room = maxUnitName - len(".service")
	stem := Prefix + Escape(key)
	if len(stem) <= room && !looksHashed(stem) {
		return stem
	}
	sum := sha256.Sum256([]byte(key))
	suffix := "-" + hex.EncodeToString(sum[:])[:hashDigits]
	return cutEscaped(stem, room-len(suffix)) + suffix
}

// looksHashed says whether a stem ends like a shortened one ("-" and 16
// lowercase hex digits); a plain name that does is shortened too, so that a
// plain name never equals another key's shortened one.
func looksHashed(stem string) bool {
	if len(stem) < hashDigits+1 || stem[len(stem)-hashDigits-1] != '-' {
		return false
	}
	for _, c := range []byte(stem[len(stem)-hashDigits:]) {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// cutEscaped shortens an escaped string to at most n bytes without cutting
// a \xNN sequence in two.
func cutEscaped(s string, n int) string {
	if len(s) <= n {
		return s
	}
	if i := strings.LastIndexByte(s[max(0, n-3):n], '\\'); i >= 0 {
		return s[:max(0, n-3)+i]
	}
	return s[:n]
}

// NameOf says whether unit (a .timer or .service name) is one Names gives
// for a schedule of action and volume, whatever its argument, so that units
// whose content cannot be read back can still be told by their names. A
// replicate or synchronize unit is recognised by the start of its name; one
// whose escaped volume fills the whole shortened name is not.
func NameOf(unit, action, volume string) bool {
	stem, ok := strings.CutSuffix(unit, ".timer")
	if !ok {
		if stem, ok = strings.CutSuffix(unit, ".service"); !ok {
			return false
		}
	}
	if !keyedByArg(action) {
		return stem == stemOf(Schedule{Action: action, Volume: volume}.Key())
	}
	// The key goes on with "/" and the argument; '-' in action and volume
	// is escaped, so the '-' that ends this start cannot belong to another
	// volume's name.
	start := Prefix + Escape(action+"/"+volume+"/")
	return len(stem) > len(start) && strings.HasPrefix(stem, start)
}
