package retention

import (
	"slices"
	"testing"
	"time"
)

type planCase struct {
	name     string
	pattern  string
	now      string
	loc      string // time zone name; "" is UTC
	snaps    []Snapshot
	protect  map[string]string
	keep     []string          // names kept, in time order
	reasons  map[string]string // some names and their expected Reason
	override map[string]string // some names and their expected Overridden
}

func runPlanCases(t *testing.T, cases []planCase) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var loc *time.Location
			if c.loc != "" {
				loc = mustLoc(t, c.loc)
			}
			p := mustPattern(t, c.pattern)
			r := Plan(p, c.snaps, at(c.now), loc, c.protect)
			if msg := checkShape(c.snaps, r); msg != "" {
				t.Fatal(msg)
			}
			if got := entryNames(r.Keep); !slices.Equal(got, c.keep) {
				t.Errorf("kept\n got %q\nwant %q", got, c.keep)
			}
			all := append(slices.Clone(r.Keep), r.Delete...)
			for _, e := range all {
				if want, ok := c.reasons[e.Name]; ok && e.Reason != want {
					t.Errorf("%s: reason %q, want %q", e.Name, e.Reason, want)
				}
				if want := c.override[e.Name]; e.Overridden != want {
					t.Errorf("%s: overridden %q, want %q", e.Name, e.Overridden, want)
				}
			}
			ref := refPlan(p, c.snaps, at(c.now), loc, c.protect)
			for _, e := range r.Keep {
				if !ref[e.Name] {
					t.Errorf("%s kept, the reference model deletes it", e.Name)
				}
			}
			for _, e := range r.Delete {
				if ref[e.Name] {
					t.Errorf("%s deleted, the reference model keeps it", e.Name)
				}
			}
		})
	}
}

func TestPlan(t *testing.T) {
	utcBucket := func(x string, width int64) string { return bucketName(at(x), width, nil) }
	runPlanCases(t, []planCase{{
		name:    "one item deletes age >= T1",
		pattern: "1h",
		now:     "2026-06-10T12:00:00Z",
		snaps: snapsAt("2026-06-10T10:00:00Z", "2026-06-10T10:59:59Z", "2026-06-10T11:00:00Z",
			"2026-06-10T11:00:01Z", "2026-06-10T11:30:00Z", "2026-06-10T12:00:00Z"),
		keep: []string{"2026-06-10T11:00:01Z", "2026-06-10T11:30:00Z", "2026-06-10T12:00:00Z"},
		reasons: map[string]string{
			"2026-06-10T10:00:00Z": "older than 1h",
			"2026-06-10T11:00:00Z": "older than 1h",
			"2026-06-10T11:00:01Z": "younger than 1h",
		},
	}, {
		name:    "one item keeps the newest even when old",
		pattern: "1d",
		now:     "2026-06-10T12:00:00Z",
		snaps:   snapsAt("2026-06-01T00:00:00Z", "2026-06-02T00:00:00Z", "2026-06-03T00:00:00Z"),
		keep:    []string{"2026-06-03T00:00:00Z"},
		reasons: map[string]string{
			"2026-06-01T00:00:00Z": "older than 1d",
			"2026-06-03T00:00:00Z": "newest snapshot",
		},
		override: map[string]string{"2026-06-03T00:00:00Z": "older than 1d"},
	}, {
		name:    "windows and buckets",
		pattern: "1h:4h:1d",
		now:     "2026-06-10T12:00:00Z",
		snaps:   every("2026-06-08T10:00:00Z", "2026-06-10T12:00:00Z", 30*time.Minute),
		keep: []string{
			// [4h, 1d): 4h buckets in UTC, the oldest of each
			"2026-06-09T12:30:00Z", "2026-06-09T16:00:00Z", "2026-06-09T20:00:00Z",
			"2026-06-10T00:00:00Z", "2026-06-10T04:00:00Z", "2026-06-10T08:00:00Z",
			// [1h, 4h): 1h buckets
			"2026-06-10T08:30:00Z", "2026-06-10T09:00:00Z", "2026-06-10T10:00:00Z", "2026-06-10T11:00:00Z",
			// younger than 1h
			"2026-06-10T11:30:00Z", "2026-06-10T12:00:00Z",
		},
		reasons: map[string]string{
			"2026-06-09T12:00:00Z": "older than 1d",
			"2026-06-09T12:30:00Z": "oldest of its " + utcBucket("2026-06-09T12:30:00Z", 240),
			"2026-06-09T13:00:00Z": "not the oldest of its " + utcBucket("2026-06-09T13:00:00Z", 240),
			"2026-06-10T08:00:00Z": "oldest of its " + utcBucket("2026-06-10T08:00:00Z", 240),
			"2026-06-10T08:30:00Z": "oldest of its " + utcBucket("2026-06-10T08:30:00Z", 60),
			"2026-06-10T09:30:00Z": "not the oldest of its " + utcBucket("2026-06-10T09:30:00Z", 60),
			"2026-06-10T11:30:00Z": "younger than 1h",
		},
	}, {
		name:    "bucket numbers are stable words",
		pattern: "1h:1d:1y",
		now:     "2026-03-10T00:00:00Z",
		snaps:   snapsAt("2026-02-28T05:00:00Z", "2026-02-28T06:00:00Z", "2026-03-09T23:30:00Z"),
		keep:    []string{"2026-02-28T05:00:00Z", "2026-03-09T23:30:00Z"},
		reasons: map[string]string{
			"2026-02-28T05:00:00Z": "oldest of its 1d bucket 20512",
			"2026-02-28T06:00:00Z": "not the oldest of its 1d bucket 20512",
			"2026-03-09T23:30:00Z": "younger than 1h",
		},
	}, {
		name:    "protections override the pattern and say so",
		pattern: "1h:1d",
		now:     "2026-06-10T12:00:00Z",
		snaps: snapsAt("2026-06-01T00:00:00Z", "2026-06-02T00:00:00Z", "2026-06-03T00:00:00Z",
			"2026-06-10T01:00:00Z", "2026-06-10T01:10:00Z", "2026-06-10T01:20:00Z", "2026-06-10T01:30:00Z"),
		protect: map[string]string{
			"2026-06-01T00:00:00Z": "pinned",
			"2026-06-02T00:00:00Z": "",
			"2026-06-10T01:10:00Z": "used by job 7",
			"2026-06-10T01:00:00Z": "shared with peer b", // kept by the pattern anyway
			"no-such-snapshot":     "pinned",
		},
		keep: []string{"2026-06-01T00:00:00Z", "2026-06-02T00:00:00Z",
			"2026-06-10T01:00:00Z", "2026-06-10T01:10:00Z", "2026-06-10T01:30:00Z"},
		reasons: map[string]string{
			"2026-06-01T00:00:00Z": "pinned",
			"2026-06-02T00:00:00Z": "protected",
			"2026-06-03T00:00:00Z": "older than 1d",
			"2026-06-10T01:00:00Z": "oldest of its " + utcBucket("2026-06-10T01:00:00Z", 60),
			"2026-06-10T01:10:00Z": "used by job 7",
			"2026-06-10T01:20:00Z": "not the oldest of its " + utcBucket("2026-06-10T01:20:00Z", 60),
			"2026-06-10T01:30:00Z": "newest snapshot",
		},
		override: map[string]string{
			"2026-06-01T00:00:00Z": "older than 1d",
			"2026-06-02T00:00:00Z": "older than 1d",
			"2026-06-10T01:10:00Z": "not the oldest of its " + utcBucket("2026-06-10T01:10:00Z", 60),
			"2026-06-10T01:30:00Z": "not the oldest of its " + utcBucket("2026-06-10T01:30:00Z", 60),
		},
	}, {
		name:    "unparsed names and the future",
		pattern: "1h",
		now:     "2026-06-10T12:00:00Z",
		snaps: append(snapsAt("2026-06-01T00:00:00Z", "2026-06-10T12:00:01Z", "2030-01-01T00:00:00Z"),
			Snapshot{Name: "v@garbage"}, Snapshot{Name: "v@2026-13-01"}),
		keep: []string{"v@2026-13-01", "v@garbage", "2026-06-01T00:00:00Z", "2026-06-10T12:00:01Z", "2030-01-01T00:00:00Z"},
		reasons: map[string]string{
			"v@garbage":            "name does not parse",
			"2026-06-10T12:00:01Z": "in the future",
			"2030-01-01T00:00:00Z": "in the future",
			// the newest snapshot is the newest one not in the future
			"2026-06-01T00:00:00Z": "newest snapshot",
		},
		override: map[string]string{"2026-06-01T00:00:00Z": "older than 1h"},
	}, {
		name:    "age exactly at a window edge belongs to the older window",
		pattern: "1h:2h:3h",
		now:     "2026-06-10T12:00:00Z",
		snaps:   snapsAt("2026-06-10T09:00:00Z", "2026-06-10T10:00:00Z", "2026-06-10T11:00:00Z", "2026-06-10T12:00:00Z"),
		keep:    []string{"2026-06-10T10:00:00Z", "2026-06-10T11:00:00Z", "2026-06-10T12:00:00Z"},
		reasons: map[string]string{
			"2026-06-10T09:00:00Z": "older than 3h",
			"2026-06-10T10:00:00Z": "oldest of its " + utcBucket("2026-06-10T10:00:00Z", 120),
			"2026-06-10T11:00:00Z": "oldest of its " + utcBucket("2026-06-10T11:00:00Z", 60),
			"2026-06-10T12:00:00Z": "younger than 1h",
		},
	}, {
		name:    "same bucket number in two windows is two buckets",
		pattern: "1h:2h:1d",
		now:     "2026-06-10T12:00:00Z",
		// 10:00 is in [2h, 1d) with 2h buckets (10:00-12:00), 10:30 in
		// [1h, 2h) with 1h buckets
		snaps: snapsAt("2026-06-10T09:59:00Z", "2026-06-10T10:00:00Z", "2026-06-10T10:30:00Z", "2026-06-10T10:45:00Z", "2026-06-10T11:30:00Z"),
		keep:  []string{"2026-06-10T09:59:00Z", "2026-06-10T10:00:00Z", "2026-06-10T10:30:00Z", "2026-06-10T11:30:00Z"},
	}, {
		name:    "equal times: the name decides which is oldest",
		pattern: "1h:1d",
		now:     "2026-06-10T12:00:00Z",
		snaps: []Snapshot{{Name: "b", Time: at("2026-06-10T05:00:00Z")}, {Name: "a", Time: at("2026-06-10T05:00:00Z")},
			{Name: "c", Time: at("2026-06-10T11:30:00Z")}},
		keep: []string{"a", "c"},
	}, {
		name:    "nothing to plan",
		pattern: "1h:1d",
		now:     "2026-06-10T12:00:00Z",
		keep:    []string{},
	}, {
		name:    "local day buckets start at local midnight",
		pattern: "1d:1w",
		now:     "2026-06-15T00:00:00Z",
		loc:     "Asia/Kolkata", // UTC+05:30: local midnight is 18:30Z
		snaps: snapsAt("2026-06-10T18:00:00Z", "2026-06-10T18:29:00Z", "2026-06-10T18:30:00Z",
			"2026-06-11T18:29:00Z", "2026-06-11T18:30:00Z", "2026-06-14T23:59:00Z"),
		keep: []string{"2026-06-10T18:00:00Z", "2026-06-10T18:30:00Z", "2026-06-11T18:30:00Z", "2026-06-14T23:59:00Z"},
	}})
}

// TestPlanDoesNotTouchInput checks that Plan neither sorts nor edits snaps.
func TestPlanDoesNotTouchInput(t *testing.T) {
	snaps := snapsAt("2026-06-10T11:00:00Z", "2026-06-01T00:00:00Z", "2026-06-05T00:00:00Z")
	before := slices.Clone(snaps)
	Plan(mustPattern(t, "1h:1d:4w"), snaps, at("2026-06-10T12:00:00Z"), nil, nil)
	if !slices.Equal(snaps, before) {
		t.Fatalf("Plan changed its input: %v", snaps)
	}
}

func TestPlanZeroPattern(t *testing.T) {
	snaps := snapsAt("2026-06-01T00:00:00Z", "2026-06-02T00:00:00Z")
	r := Plan(Pattern{}, snaps, at("2026-06-10T12:00:00Z"), nil, nil)
	if len(r.Delete) != 0 || len(r.Keep) != 2 || r.Keep[0].Reason != "no pattern" {
		t.Fatalf("zero pattern: %+v", r)
	}
}
