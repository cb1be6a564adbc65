package retention

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Minutes in each unit of a pattern item (a year is 365 days).
const (
	minute = 1
	hour   = 60 * minute
	day    = 24 * hour
	week   = 7 * day
	year   = 365 * day
)

// maxItem bounds an item so that ages and buckets stay far from overflow.
const maxItem = 100 * year

// units lists the item units from the largest down, as String writes them.
var units = []struct {
	suffix  byte
	minutes int64
}{{'y', year}, {'w', week}, {'d', day}, {'h', hour}, {'m', minute}}

// Pattern is a parsed purge pattern: one or more spans, strictly ascending.
// The zero Pattern has no items; Plan keeps everything with it.
type Pattern struct {
	items []int64 // minutes, strictly ascending
}

// ParsePattern reads a purge pattern T1[:T2...]: each item a positive
// integer with a unit m, h, d, w or y (1, 60, 1440, 10080 and 525600
// minutes), strictly ascending once converted. buttervolume's old spelling
// A:A (two or more equal items) is read as A and reported in the warnings.
func ParsePattern(s string) (Pattern, []string, error) {
	if s == "" {
		return Pattern{}, nil, fmt.Errorf("purge pattern %q: no items: write T1[:T2...] such as 1d:4w:1y (units m, h, d, w, y)", s)
	}
	raw := strings.Split(s, ":")
	items := make([]int64, len(raw))
	for i, it := range raw {
		m, err := parseItem(it, i+1)
		if err != nil {
			return Pattern{}, nil, fmt.Errorf("purge pattern %q: %w", s, err)
		}
		items[i] = m
	}
	if len(items) > 1 && allEqual(items) {
		p := Pattern{items: items[:1]}
		w := fmt.Sprintf("purge pattern %q: read as %q (buttervolume's old spelling of one item: delete snapshots %s old or older); write %q",
			s, p.String(), p.String(), p.String())
		return p, []string{w}, nil
	}
	for i := 1; i < len(items); i++ {
		if items[i] <= items[i-1] {
			return Pattern{}, nil, fmt.Errorf("purge pattern %q: items must be strictly increasing: %s (%s) is not longer than %s (%s)",
				s, raw[i], plural(items[i]), raw[i-1], plural(items[i-1]))
		}
	}
	return Pattern{items: items}, nil, nil
}

// parseItem converts one item to minutes; n is its position from 1.
func parseItem(it string, n int) (int64, error) {
	if it == "" {
		return 0, fmt.Errorf("item %d is empty: use a positive number with a unit m, h, d, w or y", n)
	}
	bad := fmt.Errorf("item %q: use a positive number with a unit m, h, d, w or y (a bare number means minutes)", it)
	num, unit := it[:len(it)-1], it[len(it)-1]
	if allDigits(it) { // a bare number means minutes, as everywhere in butterd
		num, unit = it, 'm'
	}
	if !allDigits(num) {
		return 0, bad
	}
	var per int64
	for _, u := range units {
		if u.suffix == unit {
			per = u.minutes
		}
	}
	if per == 0 {
		return 0, bad
	}
	v, err := strconv.ParseUint(num, 10, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return 0, bad
	}
	if v == 0 {
		return 0, bad
	}
	if err != nil || v > uint64(maxItem/per) {
		return 0, fmt.Errorf("item %q: at most 100y (%d minutes)", it, int64(maxItem))
	}
	return int64(v) * per, nil
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func allEqual(v []int64) bool {
	for _, x := range v[1:] {
		if x != v[0] {
			return false
		}
	}
	return true
}

func plural(m int64) string {
	if m == 1 {
		return "1 minute"
	}
	return strconv.FormatInt(m, 10) + " minutes"
}

// String gives the canonical form: each item in the largest unit that
// divides it, e.g. "60m:48h" is "1h:2d". Equal patterns give equal strings.
func (p Pattern) String() string {
	var b strings.Builder
	for i, m := range p.items {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(formatItem(m))
	}
	return b.String()
}

func formatItem(m int64) string {
	for _, u := range units {
		if m%u.minutes == 0 {
			return strconv.FormatInt(m/u.minutes, 10) + string(u.suffix)
		}
	}
	return strconv.FormatInt(m, 10) + "m" // not reached: every m divides by 1
}

// Items returns the pattern's spans T1..Tn in ascending order.
func (p Pattern) Items() []time.Duration {
	d := make([]time.Duration, len(p.items))
	for i, m := range p.items {
		d[i] = time.Duration(m) * time.Minute
	}
	return d
}

// IsZero reports whether p has no items (it was not made by ParsePattern).
func (p Pattern) IsZero() bool { return len(p.items) == 0 }
