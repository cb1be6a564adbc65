package retention

import (
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
	"time"
)

// FuzzParsePattern checks that any accepted pattern is strictly ascending,
// positive, and round-trips through its canonical form without warnings.
// Its seed corpus runs as a plain test.
func FuzzParsePattern(f *testing.F) {
	for _, s := range []string{"1h", "4h:1d:2w:2y", "2h:2h", "1h:30m", "2x", "", ":", "1h::1d",
		"60", "0h", "100y", "101y", "60m:1h", "99999999999999999999m", "1y:1y:1y", "1m:2m:3m:4m"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, warns, err := ParsePattern(s)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "purge pattern ") || p.String() != "" || warns != nil {
				t.Fatalf("ParsePattern(%q) = %q, %q, %v", s, p, warns, err)
			}
			return
		}
		items := p.Items()
		if len(items) == 0 || items[0] <= 0 {
			t.Fatalf("ParsePattern(%q) items %v", s, items)
		}
		for i := 1; i < len(items); i++ {
			if items[i] <= items[i-1] {
				t.Fatalf("ParsePattern(%q) items not ascending: %v", s, items)
			}
		}
		q, w2, err := ParsePattern(p.String())
		if err != nil || len(w2) != 0 || q.String() != p.String() || !equalDurations(q.Items(), items) {
			t.Fatalf("ParsePattern(%q) = %q does not round-trip: %q, %q, %v", s, p, q, w2, err)
		}
		if len(warns) > 0 && len(items) != 1 {
			t.Fatalf("ParsePattern(%q) warned %q but kept %d items", s, warns, len(items))
		}
	})
}

// FuzzPlan plans any pattern over any snapshots. Each snapshot is 5 bytes
// of data: 4 for its age (scaled to 1.3 times the pattern's longest item,
// counted back from now; a little in the future when flag bit 0 is set)
// and a flag byte (bit 1: the name does not parse; bit 2: protected; bit
// 3: the same time as the snapshot before). Whatever the input:
//   - every snapshot is listed once, with a reason, and the plan agrees
//     with the slow reference model;
//   - the newest snapshot (and the newest not in the future) is never
//     deleted, nor any snapshot younger than T1, unparsed, in the future
//     or protected;
//   - planning again over what is kept deletes nothing (idempotence).
//
// Its seed corpus runs as a plain test.
func FuzzPlan(f *testing.F) {
	f.Add("1d:4w:1y", int64(1_780_000_000), uint8(0), []byte{0, 0, 0, 1, 0, 0xff, 0xff, 0xff, 0xff, 0})
	f.Add("1h", int64(1_774_746_000), uint8(1), []byte{0x80, 0, 0, 0, 0, 0x80, 0, 0, 0, 8, 0x10, 0, 0, 0, 1})
	f.Add("2h:1d:2w", int64(1_792_890_000), uint8(1), []byte{0x40, 0, 0, 0, 4, 0xc0, 0, 0, 0, 2, 0xe0, 0, 0, 0, 0, 0xf0, 0, 0, 0, 8})
	f.Add("30m:1h:90m", int64(-3_500_000_000), uint8(2), []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10})
	f.Add("1m:100y", int64(0), uint8(3), []byte{0xff, 0xff, 0xff, 0xfe, 0, 0xff, 0xff, 0xff, 0xff, 0})
	f.Add("1h:1h", int64(1_780_000_000), uint8(4), []byte{})
	f.Fuzz(func(t *testing.T, pattern string, nowSec int64, zone uint8, data []byte) {
		p, _, err := ParsePattern(pattern)
		if err != nil {
			return
		}
		// Moments from year 1 to 9999: what a clock can say.
		const lo, hi = -62_135_596_800, 253_402_300_799
		if nowSec < lo || nowSec > hi {
			return
		}
		now := time.Unix(nowSec, 0)
		var loc *time.Location
		if z := propZones[int(zone)%len(propZones)]; z != "" {
			loc = mustLoc(t, z)
		}
		items := p.Items()
		span := items[len(items)-1] * 13 / 10
		protect := map[string]string{}
		var snaps []Snapshot
		for i := 0; i+5 <= len(data) && len(snaps) < 500; i += 5 {
			u := binary.BigEndian.Uint32(data[i:])
			flags := data[i+4]
			s := Snapshot{Name: fmt.Sprintf("s%04d", len(snaps))}
			age := time.Duration(float64(span) * float64(u) / (1 << 32))
			if flags&1 != 0 {
				age = -age % time.Hour
			}
			switch {
			case flags&2 != 0: // name does not parse
			case flags&8 != 0 && len(snaps) > 0:
				s.Time = snaps[len(snaps)-1].Time
			default:
				s.Time = now.Add(-age)
			}
			if flags&4 != 0 {
				protect[s.Name] = "pinned"
			}
			snaps = append(snaps, s)
		}

		r := Plan(p, snaps, now, loc, protect)
		if msg := checkShape(snaps, r); msg != "" {
			t.Fatal(msg)
		}
		ref := refPlan(p, snaps, now, loc, protect)
		for _, e := range r.Keep {
			if !ref[e.Name] {
				t.Fatalf("%s at %s kept (%s), the reference model deletes it", e.Name, e.Time, e.Reason)
			}
		}
		var newest, newestPast string
		var tNewest, tNewestPast time.Time
		for _, s := range snaps {
			if s.Time.IsZero() {
				continue
			}
			if after(s, newest, tNewest) {
				newest, tNewest = s.Name, s.Time
			}
			if !s.Time.After(now) && after(s, newestPast, tNewestPast) {
				newestPast, tNewestPast = s.Name, s.Time
			}
		}
		for _, e := range r.Delete {
			switch {
			case ref[e.Name]:
				t.Fatalf("%s at %s deleted (%s), the reference model keeps it", e.Name, e.Time, e.Reason)
			case e.Name == newest || e.Name == newestPast:
				t.Fatalf("newest snapshot %s at %s deleted (%s)", e.Name, e.Time, e.Reason)
			case e.Time.IsZero() || now.Sub(e.Time) < items[0]:
				t.Fatalf("%s at %s deleted (%s) though younger than %s", e.Name, e.Time, e.Reason, items[0])
			case protect[e.Name] != "":
				t.Fatalf("protected %s deleted (%s)", e.Name, e.Reason)
			}
		}
		if again := Plan(p, kept(r), now, loc, protect); len(again.Delete) != 0 {
			t.Fatalf("not idempotent: a second plan deletes %q (%s)", entryNames(again.Delete), again.Delete[0].Reason)
		}
	})
}
