package retention

import (
	"strings"
	"testing"
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
