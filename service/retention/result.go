package retention

import "time"

// Snapshot is one snapshot of a volume as Plan sees it.
type Snapshot struct {
	Name string
	// Time is the snapshot's time (see DESIGN.md "On disk"); the zero Time
	// means its name did not parse, and Plan always keeps it.
	Time time.Time
}

// Entry is Plan's decision about one snapshot.
type Entry struct {
	Name string
	Time time.Time
	// Reason says why, in a few stable words fit for a dry run:
	// "younger than 1h", "oldest of its 1d bucket 20512", "not the oldest
	// of its 1d bucket 20512", "older than 1y", "newest snapshot", "name
	// does not parse", "in the future", or the caller's protection reason.
	Reason string
	// Overridden is set when a protection (the caller's, or being the
	// newest) kept a snapshot the pattern deletes: it holds the pattern's
	// reason to delete it. It is empty otherwise.
	Overridden string
}

// Result lists every snapshot given to Plan once, in Keep or in Delete,
// each list sorted by time (then name; unparsed names first).
type Result struct {
	Keep   []Entry
	Delete []Entry
}
