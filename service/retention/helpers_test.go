package retention

import (
	"strconv"
	"testing"
	"time"

	_ "time/tzdata" // Europe/Paris and friends even where the system has no tzdata
)

// at parses an RFC 3339 time such as "2026-03-29T01:00:00Z".
func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// snapsAt makes one fake snapshot per time, named after it.
func snapsAt(times ...string) []Snapshot {
	s := make([]Snapshot, len(times))
	for i, x := range times {
		s[i] = Snapshot{Name: x, Time: at(x)}
	}
	return s
}

// every makes fake snapshots from from to to inclusive, step apart, named
// after their UTC time.
func every(from, to string, step time.Duration) []Snapshot {
	var s []Snapshot
	for t := at(from); !t.After(at(to)); t = t.Add(step) {
		s = append(s, Snapshot{Name: t.UTC().Format(time.RFC3339), Time: t})
	}
	return s
}

func mustPattern(t testing.TB, s string) Pattern {
	t.Helper()
	p, _, err := ParsePattern(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func mustLoc(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatalf("no time zone %s (tzdata is embedded): %v", name, err)
	}
	return loc
}

func entryNames(es []Entry) []string {
	n := make([]string, len(es))
	for i, e := range es {
		n[i] = e.Name
	}
	return n
}

// bucketName gives the reason words for snapshot time x in a bucket of
// width (minutes), computed the slow way from wall-clock fields.
func bucketName(x time.Time, width int64, loc *time.Location) string {
	return formatItem(width) + " bucket " + strconv.FormatInt(refBucket(x, width, loc), 10)
}
