package service

import (
	"cmp"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// What other hosts hold (DESIGN.md "Replication" and "Retention") is kept
// in state/ssh/shared.json, written atomically:
//
//   - sent: per (peer, volume) we send to, the newest snapshot both hosts
//     held when the peer last acknowledged a send (or a no-op), and every
//     snapshot of ours it held then;
//   - received: per (source peer, volume), the newest snapshot received
//     from it.
//
// Purge keeps the snapshot of each record, so that the next incremental
// send has its parent even while the peer is offline. "peer" is a peer's
// name, or host:port for a host that is no peer.

// sharedRecord is one (peer, volume) record.
type sharedRecord struct {
	Peer     string    `json:"peer"`
	Volume   string    `json:"volume"`
	Snapshot string    `json:"snapshot"`       // the newest snapshot both hold
	UUID     string    `json:"uuid"`           // its UUID as send streams name it
	Held     []string  `json:"held,omitempty"` // sent: our snapshots the peer held
	Time     time.Time `json:"time"`           // when it was acknowledged
}

type sharedData struct {
	Sent     []sharedRecord `json:"sent,omitempty"`
	Received []sharedRecord `json:"received,omitempty"`
}

type sharedFile struct {
	mu   sync.Mutex
	path string
	data sharedData
}

func (s *Store) loadShared() error {
	s.shared.path = filepath.Join(s.sshDir(), sharedStateFile)
	_, err := readJSON(s.shared.path, &s.shared.data)
	return err
}

// update changes the records with fn and writes them; on a write error the
// change is undone in memory too.
func (f *sharedFile) update(fn func(d *sharedData)) error {
	return f.updateIf(func(d *sharedData) bool { fn(d); return true })
}

// updateIf is update for a change that fn may decide, under the lock, not
// to make (it returns false): nothing is written then.
func (f *sharedFile) updateIf(fn func(d *sharedData) bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	old := sharedData{Sent: slices.Clone(f.data.Sent), Received: slices.Clone(f.data.Received)}
	if !fn(&f.data) {
		return nil
	}
	if err := writeJSON(f.path, f.data); err != nil {
		f.data = old
		return err
	}
	return nil
}

// find returns the record of (peer, volume) in recs.
func find(recs []sharedRecord, peer, volume string) (sharedRecord, int) {
	for i, r := range recs {
		if r.Peer == peer && r.Volume == volume {
			return r, i
		}
	}
	return sharedRecord{}, -1
}

// put replaces the record of the same (peer, volume) in recs, or adds it.
func put(recs []sharedRecord, rec sharedRecord) []sharedRecord {
	if _, i := find(recs, rec.Peer, rec.Volume); i >= 0 {
		recs[i] = rec
		return recs
	}
	return append(recs, rec)
}

// sent returns what the records say peer holds of volume.
func (f *sharedFile) sent(peer, volume string) (sharedRecord, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, i := find(f.data.Sent, peer, volume)
	return r, i >= 0
}

// dropPeer forgets every record of peer.
func (f *sharedFile) dropPeer(peer string) error {
	f.mu.Lock()
	found := slices.ContainsFunc(append(slices.Clone(f.data.Sent), f.data.Received...), func(r sharedRecord) bool { return r.Peer == peer })
	f.mu.Unlock()
	if !found {
		return nil
	}
	return f.update(func(d *sharedData) {
		other := func(r sharedRecord) bool { return r.Peer == peer }
		d.Sent = slices.DeleteFunc(d.Sent, other)
		d.Received = slices.DeleteFunc(d.Received, other)
	})
}

// recordSent records, after a send or a no-op, the snapshots of ours that
// peer holds (held, by name) and the newest of them, last, with its UUID
// as streams name it.
func (s *Store) recordSent(peer, volume, last, uuid string, held []string) error {
	rec := sharedRecord{Peer: peer, Volume: volume, Snapshot: last, UUID: uuid, Held: held, Time: s.cfg.Now()}
	return s.shared.update(func(d *sharedData) { d.Sent = put(d.Sent, rec) })
}

// recordReceived records a snapshot received from peer, unless a newer
// one received from it is still here. The records are compared and changed
// under one lock, so that of two receives from the same peer ending
// together the newer snapshot stays recorded.
func (s *Store) recordReceived(peer, volume, name, uuid string) error {
	rec := sharedRecord{Peer: peer, Volume: volume, Snapshot: name, UUID: uuid, Time: s.cfg.Now()}
	return s.shared.updateIf(func(d *sharedData) bool {
		if old, i := find(d.Received, peer, volume); i >= 0 && old.Snapshot != name && s.newerThan(old.Snapshot, name) {
			return false
		}
		d.Received = put(d.Received, rec)
		return true
	})
}

// newerThan reports whether snapshot a is here and newer than b (or b is
// gone).
func (s *Store) newerThan(a, b string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	ea, okA := s.snapshots[a]
	eb, okB := s.snapshots[b]
	switch {
	case !okA:
		return false
	case !okB:
		return true
	}
	return ea.time().After(eb.time())
}

// sharedProtections maps each snapshot of volume that the records keep to
// the reason purge shows.
func (s *Store) sharedProtections(volume string) map[string]string {
	s.shared.mu.Lock()
	defer s.shared.mu.Unlock()
	out := map[string]string{}
	add := func(name, why string) {
		if prev, ok := out[name]; ok {
			why = prev + "; " + why
		}
		out[name] = why
	}
	for _, r := range s.shared.data.Sent {
		if r.Volume == volume {
			add(r.Snapshot, "newest snapshot shared with "+r.Peer+" (its next incremental parent)")
		}
	}
	for _, r := range s.shared.data.Received {
		if r.Volume == volume {
			add(r.Snapshot, "newest snapshot received from "+r.Peer)
		}
	}
	return out
}

// Replica says that a peer holds one of our snapshots, as the records say.
type Replica struct {
	Snapshot string
	Peer     string
	// Received: we received the snapshot from the peer; otherwise the
	// peer held it when it last acknowledged a send.
	Received bool
	// Newest: the newest snapshot of its volume shared with the peer,
	// which purge keeps.
	Newest bool
	Time   time.Time // when the records last said so
}

// ListReplicas lists, for the snapshots of volume (all when ""), which
// peers hold them, by snapshot name then peer.
func (s *Store) ListReplicas(volume string) ([]Replica, error) {
	if volume != "" {
		if err := ValidateName(volume); err != nil {
			return nil, err
		}
	}
	s.shared.mu.Lock()
	var out []Replica
	for _, r := range s.shared.data.Sent {
		if volume == "" || r.Volume == volume {
			for _, name := range r.Held {
				out = append(out, Replica{Snapshot: name, Peer: r.Peer, Newest: name == r.Snapshot, Time: r.Time})
			}
		}
	}
	for _, r := range s.shared.data.Received {
		if volume == "" || r.Volume == volume {
			out = append(out, Replica{Snapshot: r.Snapshot, Peer: r.Peer, Received: true, Newest: true, Time: r.Time})
		}
	}
	s.shared.mu.Unlock()
	out = slices.DeleteFunc(out, func(r Replica) bool { return !s.hasSnapshot(r.Snapshot) })
	slices.SortStableFunc(out, func(a, b Replica) int {
		if a.Snapshot != b.Snapshot {
			return cmp.Compare(a.Snapshot, b.Snapshot)
		}
		return cmp.Compare(a.Peer, b.Peer)
	})
	return out, nil
}
