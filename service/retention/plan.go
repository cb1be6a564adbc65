package retention

import (
	"slices"
	"strings"
	"time"
)

// Fixed reasons.
const (
	reasonUnparsed  = "name does not parse"
	reasonFuture    = "in the future"
	reasonNewest    = "newest snapshot"
	reasonProtected = "protected"
	reasonNoPattern = "no pattern"
)

// Plan applies pattern p at the moment now to the snapshots of ONE volume
// and says what to keep and what to delete. The caller passes a single
// volume's snapshots: the newest of snaps is kept as that volume's newest.
// loc is the time zone of the local buckets (widths of a day or more); nil
// means UTC. protect maps the names the caller wants kept to the reason
// shown when that overrides the pattern ("pinned", "used by job 7",
// "shared with peer b"...); an empty reason reads "protected".
//
// The pattern is applied first. Then, without changing anything else, these
// leave the delete list: the newest snapshot whose time is not after now
// (snapshots after now are kept anyway, so the newest of all is kept too),
// names in protect, snapshots whose Time is zero (name did not parse) and
// snapshots in the future. With the zero Pattern everything is kept.
//
// Plan reads no clock, does not modify snaps, sorts once and allocates
// little beyond the result: 100,000 snapshots take milliseconds.
func Plan(p Pattern, snaps []Snapshot, now time.Time, loc *time.Location, protect map[string]string) Result {
	if loc == nil {
		loc = time.UTC
	}
	n := len(snaps)
	order := sortedOrder(snaps)
	// newest is the position in order of the newest snapshot not after now.
	newest := -1
	for j := n - 1; j >= 0; j-- {
		if t := snaps[order[j]].Time; !t.IsZero() && !t.After(now) {
			newest = j
			break
		}
	}
	pl := newPlanner(p, now, loc)
	out := make([]Entry, n)
	keeps, dels := 0, 0
	for j, i := range order {
		s := &snaps[i]
		reason, keep := pl.verdict(s.Time)
		e := Entry{Name: s.Name, Time: s.Time, Reason: reason}
		if !keep {
			if why, ok := protect[s.Name]; ok {
				if why == "" {
					why = reasonProtected
				}
				e.Reason, e.Overridden, keep = why, reason, true
			} else if j == newest {
				e.Reason, e.Overridden, keep = reasonNewest, reason, true
			}
		}
		if keep {
			out[keeps] = e
			keeps++
		} else {
			dels++
			out[n-dels] = e // filled from the end, reversed below
		}
	}
	slices.Reverse(out[keeps:])
	return Result{Keep: out[:keeps:keeps], Delete: out[keeps:]}
}

// sortedOrder returns the indexes of snaps sorted by time, then name.
func sortedOrder(snaps []Snapshot) []int {
	order := make([]int, len(snaps))
	for i := range order {
		order[i] = i
	}
	cmp := func(a, b int) int {
		if c := snaps[a].Time.Compare(snaps[b].Time); c != 0 {
			return c
		}
		return strings.Compare(snaps[a].Name, snaps[b].Name)
	}
	if !slices.IsSortedFunc(order, cmp) {
		slices.SortFunc(order, cmp)
	}
	return order
}

// planner gives the pattern's verdicts during one sweep over snapshots in
// ascending time order, in which each window is met in one run.
type planner struct {
	items   []int64 // the pattern, in minutes
	now     time.Time
	loc     *time.Location
	younger string   // "younger than T1"
	older   string   // "older than Tn"
	widths  []string // each item's canonical text
	buckets buckets  // the current window's buckets
}

func newPlanner(p Pattern, now time.Time, loc *time.Location) *planner {
	pl := &planner{items: p.items, now: now, loc: loc, widths: make([]string, len(p.items))}
	for i, m := range p.items {
		pl.widths[i] = formatItem(m)
	}
	if len(p.items) > 0 {
		pl.younger = "younger than " + pl.widths[0]
		pl.older = "older than " + pl.widths[len(p.items)-1]
	}
	return pl
}

// verdict gives the pattern's reason and decision for a snapshot time.
func (pl *planner) verdict(t time.Time) (string, bool) {
	switch {
	case t.IsZero():
		return reasonUnparsed, true
	case t.After(pl.now):
		return reasonFuture, true
	case len(pl.items) == 0:
		return reasonNoPattern, true
	}
	win := windowOf(pl.items, pl.now.Sub(t))
	switch win {
	case 0:
		return pl.younger, true
	case len(pl.items):
		return pl.older, false
	}
	if win != pl.buckets.window {
		pl.buckets.reset(win)
	}
	width := pl.items[win-1]
	return pl.buckets.add(bucketOf(t, width, pl.loc), pl.widths[win-1])
}

// windowOf returns 0 for age < T1, i for Ti <= age < Ti+1, and n (the
// number of items) for age >= Tn.
func windowOf(items []int64, age time.Duration) int {
	for i, m := range items {
		if age < time.Duration(m)*time.Minute {
			return i
		}
	}
	return len(items)
}
