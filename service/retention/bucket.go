package retention

import (
	"strconv"
	"time"
)

// bucketOf returns floor(t / width), t being the minutes since
// 1970-01-01T00:00: UTC minutes for widths under a day, and for a day or
// more the wall-clock minutes in loc (the UTC offset in force at t added),
// so that day, week and year buckets start at local midnight.
func bucketOf(t time.Time, width int64, loc *time.Location) int64 {
	sec := t.Unix()
	if width >= day && loc != time.UTC {
		_, off := t.In(loc).Zone()
		sec += int64(off)
	}
	return floorDiv(floorDiv(sec, 60), width)
}

// floorDiv divides rounding towards minus infinity (times before 1970).
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// buckets follows the buckets met in one window, snapshots coming in
// ascending time order: the first snapshot met in a bucket is its oldest.
// Bucket numbers mostly ascend; they go back only where local time does
// across a bucket edge, and then a bucket is looked up among those met.
type buckets struct {
	window int // the window these buckets belong to (0: none yet)
	seen   []bucket
	top    int // index in seen of the largest bucket number, -1 if none
}

type bucket struct {
	n           int64
	keep, other string // reasons for its oldest snapshot and for the rest
}

func (bs *buckets) reset(window int) {
	bs.window, bs.seen, bs.top = window, bs.seen[:0], -1
}

// add places a snapshot in bucket n of the given width and returns the
// reason and whether it is the oldest of that bucket. Reasons are made once
// per bucket, not per snapshot.
func (bs *buckets) add(n int64, width string) (string, bool) {
	if bs.top >= 0 {
		switch top := bs.seen[bs.top].n; {
		case n == top:
			return bs.other(bs.top, width), false
		case n < top:
			for k := len(bs.seen) - 1; k >= 0; k-- {
				if bs.seen[k].n == n {
					return bs.other(k, width), false
				}
			}
		}
	}
	keep := "oldest of its " + width + " bucket " + strconv.FormatInt(n, 10)
	bs.seen = append(bs.seen, bucket{n: n, keep: keep})
	if bs.top < 0 || n > bs.seen[bs.top].n {
		bs.top = len(bs.seen) - 1
	}
	return keep, true
}

// other returns the reason for a snapshot of seen bucket k that is not its
// oldest.
func (bs *buckets) other(k int, width string) string {
	b := &bs.seen[k]
	if b.other == "" {
		b.other = "not the oldest of its " + width + " bucket " + strconv.FormatInt(b.n, 10)
	}
	return b.other
}
