package service

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"

	"butterd/btrfs"
)

// An intent records a multi-step operation before its first step, so that
// the next start can finish or roll back what a crash interrupted. It lives
// in state/journal/ID.json until the operation is resolved.
type intent struct {
	ID     string `json:"id"`
	Op     string `json:"op"`
	Volume string `json:"volume"` // the volume being made or replaced
	Source string `json:"source,omitempty"`
	// Existed says the volume existed before (a restore over it).
	Existed bool `json:"existed,omitempty"`
	// TmpUUID is the UUID of the temporary subvolume once it exists: the
	// volume carries it exactly when the switch has happened.
	TmpUUID string `json:"tmp_uuid,omitempty"`
	// Safety is the snapshot that keeps the replaced data.
	Safety string `json:"safety,omitempty"`
	// Items are the volumes of a group restore (Volume then names the
	// group), each switched as one restore is.
	Items []groupItem `json:"items,omitempty"`
	// Committed says a group restore switched every volume: from then on
	// it is finished, never rolled back.
	Committed bool `json:"committed,omitempty"`
	// Unit is the timer of a schedule being set or removed (see
	// schedintent.go); Remove says it is being removed and TargetNew that
	// the setting made butterd-schedules.target.
	Unit      string `json:"unit,omitempty"`
	Remove    bool   `json:"remove,omitempty"`
	TargetNew bool   `json:"target_new,omitempty"`
}

// groupItem is one volume of a group restore.
type groupItem struct {
	Volume  string `json:"volume"`
	Source  string `json:"source"`
	Existed bool   `json:"existed,omitempty"`
	TmpUUID string `json:"tmp_uuid,omitempty"`
	Safety  string `json:"safety,omitempty"`
}

const (
	opCreate  = "create"
	opRestore = "restore"
	opImport  = "import"   // see import.go
	opSched   = "schedule" // see schedintent.go
	opSync    = "sync"     // see sync.go
	// A pull for another host's sync: the temporary read-only snapshot of
	// the volume is tmpPath, deleted at the end (see sync_serve.go).
	opServeSync = "serve-sync"

	opRestoreGroup = "restore-group" // see grouprestore.go
)

func (s *Store) journalDir() string { return filepath.Join(s.stateDir, "journal") }

func (in *intent) file(s *Store) string { return filepath.Join(s.journalDir(), in.ID+".json") }

// tmpPath is the temporary subvolume of the operation, in volumes/ so that
// it can be renamed or exchanged into place.
func (in *intent) tmpPath(s *Store) string {
	return filepath.Join(s.volumesDir, "."+in.Volume+"."+in.Op+"-"+in.ID)
}

func (s *Store) beginIntent(in *intent) error {
	b := make([]byte, 6)
	rand.Read(b)
	in.ID = hex.EncodeToString(b)
	return writeJSON(in.file(s), in)
}

func (s *Store) saveIntent(in *intent) error { return writeJSON(in.file(s), in) }

func (s *Store) endIntent(in *intent) error { return removeSynced(in.file(s)) }

// recordTmpUUID notes the temporary subvolume's UUID in the journal.
func (s *Store) recordTmpUUID(in *intent) error {
	info, err := btrfs.GetInfo(in.tmpPath(s))
	if err != nil {
		return err
	}
	in.TmpUUID = info.UUID
	return s.saveIntent(in)
}

// loadIntents reads the journal.
func (s *Store) loadIntents() ([]*intent, error) {
	entries, err := os.ReadDir(s.journalDir())
	if err != nil {
		return nil, err
	}
	var out []*intent
	for _, de := range entries {
		if !strings.HasSuffix(de.Name(), ".json") || strings.HasPrefix(de.Name(), ".") {
			continue
		}
		in := &intent{}
		if _, err := readJSON(filepath.Join(s.journalDir(), de.Name()), in); err != nil {
			return nil, err
		}
		if in.ID+".json" != de.Name() || ValidateName(in.Volume) != nil {
			s.log.Warn("journal entry not understood; left alone", "file", de.Name())
			continue
		}
		out = append(out, in)
	}
	return out, nil
}
