package retention

import (
	"slices"
	"strings"
	"time"
)

// refPlan is a slow, literal model of the rules, written independently of
// Plan: it returns the names kept. Names must be unique.
func refPlan(p Pattern, snaps []Snapshot, now time.Time, loc *time.Location, protect map[string]string) map[string]bool {
	items := p.Items()
	n := len(items)
	keep := map[string]bool{}
	type key struct {
		window int
		bucket int64
	}
	oldest := map[key]Snapshot{}
	win := func(s Snapshot) int {
		age := now.Sub(s.Time)
		w := 0
		for w < n && age >= items[w] {
			w++
		}
		return w
	}
	older := func(a, b Snapshot) bool {
		if !a.Time.Equal(b.Time) {
			return a.Time.Before(b.Time)
		}
		return a.Name < b.Name
	}
	for _, s := range snaps {
		if s.Time.IsZero() || s.Time.After(now) {
			continue
		}
		if w := win(s); w > 0 && w < n {
			k := key{w, refBucket(s.Time, int64(items[w-1]/time.Minute), loc)}
			if o, ok := oldest[k]; !ok || older(s, o) {
				oldest[k] = s
			}
		}
	}
	var newest *Snapshot
	for i, s := range snaps {
		if !s.Time.IsZero() && !s.Time.After(now) && (newest == nil || older(*newest, s)) {
			newest = &snaps[i]
		}
	}
	for _, s := range snaps {
		switch {
		case s.Time.IsZero(), s.Time.After(now), n == 0:
			keep[s.Name] = true
		case newest != nil && s.Name == newest.Name:
			keep[s.Name] = true
		default:
			if _, ok := protect[s.Name]; ok {
				keep[s.Name] = true
				continue
			}
			w := win(s)
			if w == 0 {
				keep[s.Name] = true
			} else if w < n {
				k := key{w, refBucket(s.Time, int64(items[w-1]/time.Minute), loc)}
				keep[s.Name] = oldest[k].Name == s.Name
			}
		}
	}
	return keep
}

// refBucket computes floor(minutes since 1970-01-01T00:00 / width) from
// the wall-clock fields: UTC under a day, loc for a day or more.
func refBucket(t time.Time, width int64, loc *time.Location) int64 {
	if loc == nil || width < 24*60 {
		loc = time.UTC
	}
	l := t.In(loc)
	wall := time.Date(l.Year(), l.Month(), l.Day(), l.Hour(), l.Minute(), 0, 0, time.UTC)
	m := wall.Unix() / 60 // exact: whole minutes
	q := m / width
	if m%width != 0 && m < 0 {
		q--
	}
	return q
}

// checkShape verifies that every input is listed once and both lists are
// sorted by time, then name. It returns a description of the first fault.
func checkShape(snaps []Snapshot, r Result) string {
	seen := map[string]int{}
	for _, s := range snaps {
		seen[s.Name]++
	}
	for _, list := range [][]Entry{r.Keep, r.Delete} {
		for _, e := range list {
			seen[e.Name]--
		}
		if !slices.IsSortedFunc(list, func(a, b Entry) int {
			if c := a.Time.Compare(b.Time); c != 0 {
				return c
			}
			return strings.Compare(a.Name, b.Name)
		}) {
			return "a list is not sorted by time"
		}
		for _, e := range list {
			if e.Reason == "" {
				return "entry " + e.Name + " has no reason"
			}
		}
	}
	for name, c := range seen {
		if c != 0 {
			return "snapshot " + name + " is not listed exactly once"
		}
	}
	return ""
}
