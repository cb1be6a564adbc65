package retention

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// propCase is one random purge: a pattern, a volume's snapshots, a moment
// and a zone, and the caller's protections.
type propCase struct {
	p       Pattern
	snaps   []Snapshot
	now     time.Time
	loc     *time.Location
	protect map[string]string
}

func (c propCase) String() string {
	loc := "nil"
	if c.loc != nil {
		loc = c.loc.String()
	}
	return fmt.Sprintf("pattern %s, %d snapshots, now %s, zone %s", c.p, len(c.snaps), c.now.Format(time.RFC3339Nano), loc)
}

// Moments around which the random cases are evaluated: Paris's changes of
// 2026, Lord Howe's half-hour change, Juneau's day going back in 1867, and
// Santiago's change at local midnight.
var propMoments = []string{
	"2026-03-29T01:00:00Z", "2026-10-25T01:00:00Z", "2026-04-04T15:00:00Z",
	"1867-10-19T00:31:13Z", "2026-04-05T03:00:00Z", "2026-06-10T12:00:00Z",
}

var propZones = []string{"UTC", "Europe/Paris", "Australia/Lord_Howe", "Asia/Kolkata", "America/Juneau", "America/Santiago", ""}

// niceSpans are pattern items in minutes that users write.
var niceSpans = []int64{1, 5, 10, 30, 60, 90, 120, 240, 360, 720, 1440, 2 * 1440, 3 * 1440, 10080, 2 * 10080, 4 * 10080, 30 * 1440, 90 * 1440, 525600}

func randomCase(t *testing.T, rng *rand.Rand) propCase {
	// a pattern of 1 to 5 ascending items, parsed from its text
	n := 1 + rng.IntN(5)
	var items []string
	last := int64(0)
	for len(items) < n {
		var m int64
		if rng.IntN(3) == 0 {
			m = last + 1 + rng.Int64N(3*1440)
		} else {
			m = niceSpans[rng.IntN(len(niceSpans))]
		}
		if m <= last {
			continue
		}
		items = append(items, formatItem(m))
		last = m
	}
	p := mustPattern(t, strings.Join(items, ":"))
	tn := time.Duration(last) * time.Minute

	c := propCase{p: p, protect: map[string]string{}}
	c.now = at(propMoments[rng.IntN(len(propMoments))]).Add(time.Duration(rng.Int64N(int64(tn)+1)) - tn/2)
	if z := propZones[rng.IntN(len(propZones))]; z != "" {
		c.loc = mustLoc(t, z)
	}
	// snapshots from 1.3 Tn ago to a little in the future: either at random
	// times or at a regular interval, so that buckets hold several
	count := rng.IntN(300)
	span := tn + tn*3/10
	step := span / time.Duration(count+1)
	for i := 0; i < count; i++ {
		s := Snapshot{Name: fmt.Sprintf("s%04d", i)}
		switch k := rng.IntN(100); {
		case k < 3: // name does not parse
		case k < 6: // in the future
			s.Time = c.now.Add(time.Duration(1 + rng.Int64N(int64(time.Hour))))
		case k < 9 && i > 0: // same time as another
			s.Time = c.snaps[rng.IntN(i)].Time
		case rng.IntN(2) == 0:
			s.Time = c.now.Add(-time.Duration(rng.Int64N(int64(span))))
		default:
			s.Time = c.now.Add(-span + time.Duration(i)*step).Truncate(time.Second)
		}
		if rng.IntN(20) == 0 {
			c.protect[s.Name] = "pinned"
		}
		c.snaps = append(c.snaps, s)
	}
	rng.Shuffle(len(c.snaps), func(i, j int) { c.snaps[i], c.snaps[j] = c.snaps[j], c.snaps[i] })
	return c
}

// windowAt is the window index of a snapshot at a moment: 0 for age < T1
// (and for the future), i for Ti <= age < Ti+1, n for age >= Tn.
func windowAt(p Pattern, x, now time.Time) int {
	age := now.Sub(x)
	w := 0
	for _, d := range p.Items() {
		if age < d {
			break
		}
		w++
	}
	return w
}

func kept(r Result) []Snapshot {
	s := make([]Snapshot, len(r.Keep))
	for i, e := range r.Keep {
		s[i] = Snapshot{Name: e.Name, Time: e.Time}
	}
	return s
}

// TestPlanProperties checks, over many random cases:
//   - every snapshot is listed once, with a reason, both lists sorted;
//   - the plan equals the slow reference model of the rules;
//   - no snapshot younger than T1 (nor in the future, nor unparsed) is
//     deleted;
//   - the newest snapshot, and the newest not in the future, are kept;
//   - no protected snapshot is deleted;
//   - idempotence: planning again over the kept set at the same moment and
//     with the same protections deletes nothing;
//   - stability: let s be kept by the pattern itself at now (in Keep with an
//     empty Overridden: kept without any protection's help). Plan again at
//     now+δ over the snapshots kept at now plus new snapshots taken in
//     (now, now+δ], same protections. If s is deleted then, its window
//     index at now+δ differs from (is greater than) its window at now: a
//     kept snapshot stays kept until it moves to another window or ages
//     past Tn.
func TestPlanProperties(t *testing.T) {
	iterations := 3000
	if testing.Short() {
		iterations = 300
	}
	for it := 0; it < iterations; it++ {
		rng := rand.New(rand.NewPCG(uint64(it), 0x5eed))
		c := randomCase(t, rng)
		fail := func(format string, args ...any) {
			t.Helper()
			t.Fatalf("case %d (%s): %s", it, c, fmt.Sprintf(format, args...))
		}
		r := Plan(c.p, c.snaps, c.now, c.loc, c.protect)
		if msg := checkShape(c.snaps, r); msg != "" {
			fail("%s", msg)
		}
		ref := refPlan(c.p, c.snaps, c.now, c.loc, c.protect)
		for _, e := range r.Keep {
			if !ref[e.Name] {
				fail("%s at %s kept (%s), the reference model deletes it", e.Name, e.Time, e.Reason)
			}
		}
		for _, e := range r.Delete {
			if ref[e.Name] {
				fail("%s at %s deleted (%s), the reference model keeps it", e.Name, e.Time, e.Reason)
			}
		}

		t1 := c.p.Items()[0]
		for _, e := range r.Delete {
			if e.Time.IsZero() || c.now.Sub(e.Time) < t1 {
				fail("%s at %s deleted (%s) though younger than %s", e.Name, e.Time, e.Reason, c.p.Items()[0])
			}
			if _, ok := c.protect[e.Name]; ok {
				fail("protected %s deleted (%s)", e.Name, e.Reason)
			}
		}

		// the newest in Plan's order (time, then name), of all and of those
		// not after now
		var newest, newestPast string
		var tNewest, tNewestPast time.Time
		for _, s := range c.snaps {
			if s.Time.IsZero() {
				continue
			}
			if after(s, newest, tNewest) {
				newest, tNewest = s.Name, s.Time
			}
			if !s.Time.After(c.now) && after(s, newestPast, tNewestPast) {
				newestPast, tNewestPast = s.Name, s.Time
			}
		}
		for _, e := range r.Delete {
			if e.Name == newest || e.Name == newestPast {
				fail("newest snapshot %s deleted (%s)", e.Name, e.Reason)
			}
		}

		again := Plan(c.p, kept(r), c.now, c.loc, c.protect)
		if len(again.Delete) != 0 {
			fail("not idempotent: a second plan deletes %q (%s)", entryNames(again.Delete), again.Delete[0].Reason)
		}

		delta := time.Duration(rng.Int64N(int64(c.p.Items()[len(c.p.Items())-1]) * 6 / 5))
		later := c.now.Add(delta)
		next := kept(r)
		for i, k := 0, rng.IntN(20); i < k; i++ {
			next = append(next, Snapshot{Name: fmt.Sprintf("n%04d", i), Time: c.now.Add(1 + time.Duration(rng.Int64N(int64(delta)+1)))})
		}
		r2 := Plan(c.p, next, later, c.loc, c.protect)
		keptByPattern := map[string]Entry{}
		for _, e := range r.Keep {
			if e.Overridden == "" {
				keptByPattern[e.Name] = e
			}
		}
		for _, e := range r2.Delete {
			k, ok := keptByPattern[e.Name]
			if !ok {
				continue
			}
			before, after := windowAt(c.p, k.Time, c.now), windowAt(c.p, k.Time, later)
			if after <= before {
				fail("%s at %s kept at now (%s) in window %d, deleted %s later (%s) still in window %d",
					e.Name, e.Time, k.Reason, before, delta, e.Reason, after)
			}
		}
	}
}

// after reports whether s sorts after (name, x) by time then name; an
// empty name sorts first.
func after(s Snapshot, name string, x time.Time) bool {
	if name == "" {
		return true
	}
	if !s.Time.Equal(x) {
		return s.Time.After(x)
	}
	return s.Name > name
}
