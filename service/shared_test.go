package service

import (
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Receives from the same peer and volume that end together must leave the
// newest snapshot recorded, whatever order their records come in.
func TestRecordReceivedConcurrentKeepsNewest(t *testing.T) {
	s := &Store{cfg: Config{Now: time.Now}, snapshots: map[string]*snapshotEntry{}}
	s.shared.path = filepath.Join(t.TempDir(), sharedStateFile)
	base := time.Date(2024, 5, 1, 10, 0, 0, 0, time.Local)
	var names []string
	for i := range 8 {
		name := SnapshotName("v1", base.Add(time.Duration(i)*time.Minute))
		s.snapshots[name] = newSnapshotEntry(name, time.Time{})
		names = append(names, name)
	}
	newest := names[len(names)-1]
	for round := range 30 {
		s.shared.data = sharedData{}
		var wg sync.WaitGroup
		for _, name := range names {
			wg.Go(func() {
				if err := s.recordReceived("peer", "v1", name, "uuid of "+name); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if rec, i := find(s.shared.data.Received, "peer", "v1"); i < 0 || rec.Snapshot != newest {
			t.Fatalf("round %d: recorded %q, want the newest %q", round, rec.Snapshot, newest)
		}
	}
	var disk sharedData
	if _, err := readJSON(s.shared.path, &disk); err != nil {
		t.Fatal(err)
	}
	if rec, _ := find(disk.Received, "peer", "v1"); rec.Snapshot != newest {
		t.Errorf("shared.json records %q, want %q", rec.Snapshot, newest)
	}
}
