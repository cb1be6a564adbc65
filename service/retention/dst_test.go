package retention

import (
	"testing"
	"time"
)

// Europe/Paris changes to summer time on 2026-03-29 at 01:00Z (02:00 CET
// becomes 03:00 CEST) and back on 2026-10-25 at 01:00Z (03:00 CEST becomes
// 02:00 CET). Day buckets follow local midnights; hour buckets stay UTC.
func TestPlanDaylightSaving(t *testing.T) {
	paris := "Europe/Paris"
	loc := mustLoc(t, paris)
	local := func(x string) string { return bucketName(at(x), 1440, loc) }
	runPlanCases(t, []planCase{{
		name:    "spring forward: a 23-hour local day",
		pattern: "1d:4w",
		now:     "2026-04-05T00:00:00Z",
		loc:     paris,
		snaps: append(every("2026-03-27T00:00:00Z", "2026-04-01T00:00:00Z", time.Hour),
			snapsAt("2026-04-04T23:59:00Z")...),
		keep: []string{
			"2026-03-27T00:00:00Z", // 01:00 CET, the first of 27 March
			"2026-03-27T23:00:00Z", // 28 March 00:00 CET
			"2026-03-28T23:00:00Z", // 29 March 00:00 CET, a 23-hour day
			"2026-03-29T22:00:00Z", // 30 March 00:00 CEST
			"2026-03-30T22:00:00Z",
			"2026-03-31T22:00:00Z",
			"2026-04-04T23:59:00Z", // younger than 1d
		},
		reasons: map[string]string{
			"2026-03-28T23:00:00Z": "oldest of its " + local("2026-03-28T23:00:00Z"),
			"2026-03-29T21:00:00Z": "not the oldest of its " + local("2026-03-29T21:00:00Z"),
			"2026-03-29T22:00:00Z": "oldest of its " + local("2026-03-29T22:00:00Z"),
		},
	}, {
		name:    "fall back: a 25-hour local day",
		pattern: "1d:4w",
		now:     "2026-11-01T00:00:00Z",
		loc:     paris,
		snaps: append(every("2026-10-23T00:00:00Z", "2026-10-28T00:00:00Z", time.Hour),
			snapsAt("2026-10-31T23:59:00Z")...),
		keep: []string{
			"2026-10-23T00:00:00Z", // 02:00 CEST, the first of 23 October
			"2026-10-23T22:00:00Z", // 24 October 00:00 CEST
			"2026-10-24T22:00:00Z", // 25 October 00:00 CEST, a 25-hour day
			"2026-10-25T23:00:00Z", // 26 October 00:00 CET
			"2026-10-26T23:00:00Z",
			"2026-10-27T23:00:00Z",
			"2026-10-31T23:59:00Z",
		},
		reasons: map[string]string{
			"2026-10-25T22:00:00Z": "not the oldest of its " + local("2026-10-24T22:00:00Z"),
		},
	}, {
		name:    "fall back: the repeated local hour is two UTC hour buckets",
		pattern: "1h:1w",
		now:     "2026-10-26T00:00:00Z",
		loc:     paris,
		// 02:00, 02:20, 02:40 CEST, then 02:00, 02:20, 02:40 CET, then 03:00 CET
		snaps: every("2026-10-25T00:00:00Z", "2026-10-25T02:00:00Z", 20*time.Minute),
		keep:  []string{"2026-10-25T00:00:00Z", "2026-10-25T01:00:00Z", "2026-10-25T02:00:00Z"},
	}, {
		name:    "weeks in local time across both changes",
		pattern: "1d:1w:1y",
		now:     "2026-12-31T00:00:00Z",
		loc:     paris,
		snaps:   every("2026-03-01T00:00:00Z", "2026-11-30T00:00:00Z", 6*time.Hour),
		// weekly buckets start on Thursdays at local midnight (1970-01-01
		// was a Thursday): 23:00Z in winter, 22:00Z in summer
		keep: append(append([]string{"2026-03-01T00:00:00Z"},
			weekStarts("2026-03-04T23:00:00Z", "2026-11-30T00:00:00Z", loc)...),
			"2026-11-30T00:00:00Z"), // newest
		override: map[string]string{"2026-11-30T00:00:00Z": "not the oldest of its " + bucketName(at("2026-11-30T00:00:00Z"), 10080, loc)},
	}})
}

// weekStarts lists, as snapshot names, the first 6-hourly snapshot at or
// after each local Thursday midnight in loc from first up to last.
func weekStarts(first, last string, loc *time.Location) []string {
	var out []string
	for d := at(first).In(loc); !d.After(at(last)); d = d.AddDate(0, 0, 7) {
		if d.Weekday() != time.Thursday || d.Hour() != 0 {
			panic("not a local Thursday midnight: " + d.String())
		}
		// snapshots are at 00, 06, 12, 18Z: the first at or after d
		s := d.UTC().Truncate(6 * time.Hour)
		if s.Before(d) {
			s = s.Add(6 * time.Hour)
		}
		out = append(out, s.Format(time.RFC3339))
	}
	return out
}

// In 1867 Juneau's clocks went back a whole day (Alaska changed sides of
// the date line), so local day buckets repeat: the oldest of a bucket must
// be found even when the bucket comes back after a later one.
func TestPlanLocalMinutesGoBack(t *testing.T) {
	loc := mustLoc(t, "America/Juneau")
	p := mustPattern(t, "1d:1w") // [1d, 1w): local day buckets
	snaps := every("1867-10-17T00:00:00Z", "1867-10-21T00:00:00Z", 90*time.Minute)
	now := at("1867-10-22T00:00:00Z")
	back := false
	for i := 1; i < len(snaps); i++ {
		if refBucket(snaps[i].Time, 1440, loc) < refBucket(snaps[i-1].Time, 1440, loc) {
			back = true
		}
	}
	if !back {
		t.Fatal("the embedded tzdata has no backward day in Juneau 1867: this test checks nothing")
	}
	r := Plan(p, snaps, now, loc, nil)
	if msg := checkShape(snaps, r); msg != "" {
		t.Fatal(msg)
	}
	ref := refPlan(p, snaps, now, loc, nil)
	for _, e := range r.Keep {
		if !ref[e.Name] {
			t.Errorf("%s kept (%s), the reference model deletes it", e.Name, e.Reason)
		}
	}
	for _, e := range r.Delete {
		if ref[e.Name] {
			t.Errorf("%s deleted (%s), the reference model keeps it", e.Name, e.Reason)
		}
	}
}
