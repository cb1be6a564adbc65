package service

import "sync/atomic"

// EventKind says what changed.
type EventKind int

const (
	VolumeNew EventKind = iota + 1
	VolumeRemoved
	SnapshotNew
	SnapshotRemoved
	JobNew     // Job is set
	JobRemoved // Job is set, with its result
)

// Event tells the edges (D-Bus signals) that a volume or snapshot appeared or
// went, whoever asked for it (Docker, D-Bus, a schedule).
type Event struct {
	Kind EventKind
	Name string
	Job  Job
}

type notifier struct{ fn atomic.Pointer[func(Event)] }

// SetNotify installs the function called after each change; it must not
// block. nil turns notifications off.
func (s *Store) SetNotify(fn func(Event)) {
	if fn == nil {
		s.notify.fn.Store(nil)
		return
	}
	s.notify.fn.Store(&fn)
}

func (s *Store) emit(kind EventKind, name string) {
	s.emitEvent(Event{Kind: kind, Name: name})
}

func (s *Store) emitEvent(ev Event) {
	if fn := s.notify.fn.Load(); fn != nil {
		(*fn)(ev)
	}
}
