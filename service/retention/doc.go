// Package retention decides which snapshots a purge pattern keeps.
//
// It is pure logic in the manner of zrepl's pruning package: a pattern, a
// list of snapshots and one function, Plan. It touches no filesystem and
// reads no clock: the caller passes the moment to evaluate at and the time
// zone that local buckets use.
//
// A pattern is buttervolume's purge grammar T1[:T2...] (see ParsePattern).
// With age = now - snapshot time, Plan keeps every snapshot younger than T1;
// within each window Ti <= age < Ti+1 it keeps only the oldest snapshot of
// each bucket floor(t / Ti), t being minutes since 1970-01-01T00:00 (UTC
// minutes for widths under a day, local wall-clock minutes for a day or
// more); it deletes every snapshot with age >= Tn. A single item T1 deletes
// age >= T1 and keeps the rest. Some snapshots then leave the delete list
// without changing anything else: the newest one, those the caller protects
// (pinned, used by a job, shared with a peer...), names that do not parse
// and snapshots in the future.
package retention
