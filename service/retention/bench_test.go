package retention

import (
	"testing"
	"time"
)

// BenchmarkPlan100k plans 100,000 snapshots taken every 5 minutes (almost
// a year) with 1h:1d:1w:4w:1y in Europe/Paris. The limit is 1 s.
func BenchmarkPlan100k(b *testing.B) {
	loc := mustLoc(b, "Europe/Paris")
	p := mustPattern(b, "1h:1d:1w:4w:1y")
	start := at("2025-12-01T00:00:00Z")
	snaps := make([]Snapshot, 100_000)
	for i := range snaps {
		t := start.Add(time.Duration(i) * 5 * time.Minute)
		snaps[i] = Snapshot{Name: "vol@" + t.In(loc).Format("2006-01-02T15:04:05.000000"), Time: t}
	}
	now := snaps[len(snaps)-1].Time.Add(time.Minute)
	protect := map[string]string{snaps[10].Name: "pinned", snaps[5000].Name: "shared with peer b"}
	b.ReportAllocs()
	var r Result
	for b.Loop() {
		r = Plan(p, snaps, now, loc, protect)
	}
	b.ReportMetric(float64(len(r.Keep)), "kept")
	if len(r.Keep)+len(r.Delete) != len(snaps) {
		b.Fatalf("listed %d of %d", len(r.Keep)+len(r.Delete), len(snaps))
	}
}
