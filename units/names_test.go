package units

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestNamesExamples(t *testing.T) {
	for _, c := range []struct {
		s    Schedule
		stem string
	}{
		{Schedule{Action: ActionSnapshot, Volume: "pgdata"}, "butterd-sched-snapshot-pgdata"},
		{Schedule{Action: ActionPurge, Volume: "pg-data", Arg: "1d:4w"}, `butterd-sched-purge-pg\x2ddata`},
		{Schedule{Action: ActionReplicate, Volume: "v1", Arg: "backup@nas:2222"}, `butterd-sched-replicate-v1-backup\x40nas:2222`},
		{Schedule{Action: ActionSynchronize, Volume: "v1", Arg: "a,b.lan"}, `butterd-sched-synchronize-v1-a\x2cb.lan`},
	} {
		timer, service := Names(c.s)
		if timer != c.stem+".timer" || service != c.stem+".service" {
			t.Errorf("Names(%+v) = %q, %q; want stem %q", c.s, timer, service, c.stem)
		}
	}
}

// TestNamesKey: purge and snapshot are keyed by volume only, replicate and
// synchronize by their hosts too.
func TestNamesKey(t *testing.T) {
	p1, _ := Names(Schedule{Action: ActionPurge, Volume: "v1", Arg: "1d"})
	p2, _ := Names(Schedule{Action: ActionPurge, Volume: "v1", Arg: "2h:1w"})
	if p1 != p2 {
		t.Errorf("purge schedules of one volume have names %q and %q", p1, p2)
	}
	r1, _ := Names(Schedule{Action: ActionReplicate, Volume: "v1", Arg: "a"})
	r2, _ := Names(Schedule{Action: ActionReplicate, Volume: "v1", Arg: "b"})
	if r1 == r2 {
		t.Errorf("replicate schedules to two hosts share the name %q", r1)
	}
}

func TestNamesLong(t *testing.T) {
	seen := map[string]string{}
	add := func(s Schedule) string {
		t.Helper()
		s.Every = time.Hour
		if err := s.Validate(); err != nil {
			t.Fatalf("test schedule: %v", err)
		}
		timer, service := Names(s)
		if len(service) > 255 || len(timer) > 255 {
			t.Errorf("Names(%s) is %d characters: %q", s.Key(), len(service), service)
		}
		if prev, ok := seen[service]; ok && prev != s.Key() {
			t.Errorf("%s and %s share the name %q", prev, s.Key(), service)
		}
		seen[service] = s.Key()
		if strings.TrimSuffix(timer, ".timer") != strings.TrimSuffix(service, ".service") {
			t.Errorf("timer %q and service %q differ", timer, service)
		}
		if _, err := Unescape(strings.TrimSuffix(service, ".service")); err != nil {
			t.Errorf("name %q has a cut escape: %v", service, err)
		}
		return service
	}
	dashes := "v" + strings.Repeat("-", 95) // 96 characters, escaped to 381
	for _, v := range []string{strings.Repeat("a", 96), dashes, "v" + strings.Repeat(".-", 47) + "z"} {
		for i := range 20 {
			add(Schedule{Action: ActionSnapshot, Volume: v})
			host := fmt.Sprintf("h%d.%s.example.com", i, strings.Repeat("x", 60))
			add(Schedule{Action: ActionReplicate, Volume: v, Arg: host})
			add(Schedule{Action: ActionSynchronize, Volume: v, Arg: host + ",u@" + host + ":22"})
		}
	}
	// Every cut position of \xNN: lengths around the limit.
	for n := 1; n < 96; n++ {
		v := strings.Repeat("a", n) + strings.Repeat("-", 96-n)
		s := Schedule{Action: ActionPurge, Volume: v, Arg: "1d"}
		name := add(s)
		plain := Prefix + Escape(s.Key()) + ".service"
		if hashed := looksHashed(strings.TrimSuffix(name, ".service")); hashed != (len(plain) > 255) {
			t.Errorf("name %q of a %d-character plain name: hashed %v", name, len(plain), hashed)
		}
	}
	// A short name is kept as is; one that would look shortened is hashed.
	short := add(Schedule{Action: ActionSnapshot, Volume: "pgdata"})
	if short != "butterd-sched-snapshot-pgdata.service" {
		t.Errorf("short name %q", short)
	}
	lookalike := add(Schedule{Action: ActionReplicate, Volume: "v1", Arg: "0123456789abcdef"})
	if !looksHashed(strings.TrimSuffix(lookalike, ".service")) || lookalike == `butterd-sched-replicate-v1-0123456789abcdef.service` {
		t.Errorf("look-alike name %q", lookalike)
	}
	// The name of the longest key that fits whole, and one more character.
	base := "butterd-sched-replicate-v1-"
	room := 255 - len(".service") - len(base)
	fits := add(Schedule{Action: ActionReplicate, Volume: "v1", Arg: hostOfLen(room)})
	if fits != base+hostOfLen(room)+".service" || len(fits) != 255 {
		t.Errorf("name of %d characters was changed to %q", 255, fits)
	}
	over := add(Schedule{Action: ActionReplicate, Volume: "v1", Arg: hostOfLen(room + 1)})
	if !looksHashed(strings.TrimSuffix(over, ".service")) {
		t.Errorf("name over 255 characters kept: %q", over)
	}
}

// hostOfLen is a valid host name of exactly n characters.
func hostOfLen(n int) string {
	var parts []string
	for n > 0 {
		l := min(n, 60)
		if n-l == 1 { // leave room for a dot and a label
			l--
		}
		parts = append(parts, strings.Repeat(string(rune('a'+len(parts)%26)), l))
		n -= l + 1
	}
	return strings.Join(parts, ".")
}

// TestNameOf: a unit is told a volume's by its name alone, whatever its
// argument, and never for a volume whose name only starts the same.
func TestNameOf(t *testing.T) {
	long := strings.Repeat("h", 200) + ".example.com"
	for _, c := range []struct {
		s      Schedule
		action string
		volume string
		want   bool
	}{
		{Schedule{Action: ActionSnapshot, Volume: "v1"}, ActionSnapshot, "v1", true},
		{Schedule{Action: ActionPurge, Volume: "v1", Arg: "1d"}, ActionPurge, "v1", true},
		{Schedule{Action: ActionReplicate, Volume: "v1", Arg: "nas:2222"}, ActionReplicate, "v1", true},
		{Schedule{Action: ActionReplicate, Volume: "v1", Arg: long}, ActionReplicate, "v1", true}, // shortened
		{Schedule{Action: ActionSynchronize, Volume: "v1", Arg: "a,b"}, ActionSynchronize, "v1", true},
		{Schedule{Action: ActionSnapshot, Volume: "v1"}, ActionPurge, "v1", false},
		{Schedule{Action: ActionSnapshot, Volume: "v1-b"}, ActionSnapshot, "v1", false},
		{Schedule{Action: ActionReplicate, Volume: "v1-b", Arg: "nas"}, ActionReplicate, "v1", false},
		{Schedule{Action: ActionReplicate, Volume: "v1", Arg: "nas"}, ActionReplicate, "v1-b", false},
		{Schedule{Action: ActionSnapshotGroup, Volume: "v1"}, ActionSnapshot, "v1", false},
	} {
		timer, service := Names(c.s)
		for _, u := range []string{timer, service} {
			if got := NameOf(u, c.action, c.volume); got != c.want {
				t.Errorf("NameOf(%q, %s, %s) = %v, want %v", u, c.action, c.volume, got, c.want)
			}
		}
	}
	for _, u := range []string{Prefix + "snapshot-v1", Prefix + "snapshot-v1.socket", Prefix + "replicate-v1-.timer", TargetName} {
		if NameOf(u, ActionSnapshot, "v1") || NameOf(u, ActionReplicate, "v1") {
			t.Errorf("NameOf(%q) is true", u)
		}
	}
}
