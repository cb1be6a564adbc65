// Package service is butterd's domain: volumes and snapshots on a BTRFS data
// root, their names, locks, index and crash-safe multi-step operations.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"butterd/btrfs"
	"butterd/internal/atomicfile"
	"butterd/service/remote"
	"butterd/units"
)

// Config describes a store. Root is required; the rest has defaults.
type Config struct {
	Root   string
	Logger *slog.Logger
	// Now returns the current time (tests freeze it).
	Now func() time.Time
	// BootID identifies the running boot; mount references of another boot
	// are dropped at start. Defaults to the kernel's boot id.
	BootID string
	// BusyWait is how long calls made for a waiting client (the Docker
	// plugin's Create, Remove and Mount) wait for a volume that another
	// operation holds before they answer busy; DefaultBusyWait when 0.
	BusyWait time.Duration
	// AfterStep, when set, is called after each step of a multi-step
	// operation with the operation and step name. It exists for fault
	// injection in tests: returning an error fails the operation there.
	AfterStep func(op, step string) error

	// Schedules (DESIGN.md "Schedules are systemd timers"). UnitDir is
	// where schedule units are written (default /etc/systemd/system; it
	// must be in systemd's unit search path); Systemd is the service
	// manager, nil when none is reachable (schedule calls and options then
	// fail before anything is created); Butterctl is the program the
	// generated services run (default units.DefaultButterctl).
	UnitDir   string
	Systemd   units.Manager
	Butterctl string
	// Dial connects to other hosts' butterd for a sync (SyncVolume);
	// nil means DialHost: this store's peers, keys and known hosts.
	Dial Dialer
	// Policies are named defaults of create options (the config file's
	// [policy NAME] sections), applied by the option policy=NAME; options
	// given explicitly win.
	Policies map[string]map[string]string
	// PeerAdded, when set, is called after a replication peer is added:
	// it makes sure the replication endpoint listens (DESIGN.md: it is
	// disabled until the first peer is added).
	PeerAdded func() error
	// PeerRemoved, when set, is called after a replication peer is
	// removed: when no peer is left it stops the replication endpoint
	// (connections in flight go on) and reports whether it did.
	PeerRemoved func() (stopped bool, err error)
	// JobFailed, when set, is called with each job that failed, once it is
	// in the history (the webhook adapter posts it). It must not block.
	JobFailed func(Job)
	// Containers is the container engine whose containers are quiesced
	// around snapshots of the volumes they use (consistent.go); nil when
	// there is none.
	Containers Containers
}

// Store holds the volumes and snapshots of one data root.
type Store struct {
	cfg  Config
	log  *slog.Logger
	lock *os.File // flock on the data root

	volumesDir, snapshotsDir, receivedDir, stateDir string

	locks  keyedMutex // per volume name, held by changing operations
	notify notifier

	mountWrite sync.Mutex // orders writes of the mount table
	quiesceMu  sync.Mutex // one consistent snapshot at a time
	resuming   bool       // held containers are being resumed; guarded by quiesceMu

	closed    chan struct{} // closed by Close: background work ends
	closeOnce sync.Once

	mu        sync.RWMutex // guards the index and mounts below
	volumes   map[string]*volumeEntry
	snapshots map[string]*snapshotEntry
	mounts    mountTable
	meta      metaFile
	jobs      *jobTable
	groups    groupFile

	sched    schedules
	policies map[string]CreateOptions

	peers  *remote.Peers // state/ssh/peers.json
	shared sharedFile    // state/ssh/shared.json
}

// Open locks the data root, finishes or rolls back what its journal says
// was interrupted, and builds the index from what is on disk.
func Open(cfg Config) (*Store, error) {
	if cfg.Root == "" {
		return nil, errorf(ErrInvalidArg, "no data root given")
	}
	root, err := filepath.Abs(cfg.Root)
	if err != nil {
		return nil, err
	}
	cfg.Root = root
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.BootID == "" {
		cfg.BootID = bootID()
	}
	policies, err := parsePolicies(cfg.Policies)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, err
	}
	ok, err := btrfs.IsBtrfs(root)
	if err != nil {
		return nil, fmt.Errorf("data root %q: %w", root, err)
	}
	if !ok {
		return nil, errorf(ErrInvalidArg, "data root %q is not on a BTRFS filesystem", root)
	}
	s := &Store{
		cfg:          cfg,
		log:          cfg.Logger.With("subsystem", "service"),
		volumesDir:   filepath.Join(root, "volumes"),
		snapshotsDir: filepath.Join(root, "snapshots"),
		receivedDir:  filepath.Join(root, "received"),
		stateDir:     filepath.Join(root, "state"),
		policies:     policies,
		closed:       make(chan struct{}),
	}
	s.peers = remote.OpenPeers(filepath.Join(s.sshDir(), peersFile))
	if s.cfg.Dial == nil {
		s.cfg.Dial = s.DialHost
	}
	if err := s.initSchedules(); err != nil {
		return nil, err
	}
	for _, d := range []string{s.volumesDir, s.snapshotsDir, s.receivedDir, s.stateDir, s.journalDir(), s.sshDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	if err := s.flock(); err != nil {
		return nil, err
	}
	if err := s.open(); err != nil {
		s.lock.Close()
		return nil, err
	}
	return s, nil
}

func (s *Store) open() error {
	if err := s.removeStaleTemps(); err != nil {
		return err
	}
	if err := s.loadMeta(); err != nil {
		return err
	}
	if err := s.loadShared(); err != nil {
		return err
	}
	if err := s.loadGroups(); err != nil {
		return err
	}
	if err := s.reconcile(); err != nil {
		return err
	}
	if err := s.loadIndex(); err != nil {
		return err
	}
	s.dropStaleSettings()
	if err := s.loadJobs(); err != nil {
		return err
	}
	if err := s.loadMounts(); err != nil {
		return err
	}
	s.regenerateSchedules()
	s.resumeHeld()
	return nil
}

func (s *Store) flock() error {
	f, err := os.Open(s.cfg.Root)
	if err != nil {
		return err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return errorf(ErrBusy, "data root %q is in use by another butterd", s.cfg.Root)
		}
		return fmt.Errorf("lock data root %q: %w", s.cfg.Root, err)
	}
	s.lock = f
	return nil
}

// removeStaleTemps deletes what writes of butterd's own files left when it
// died during them: temporaries of the state files, of journal entries, of
// the replication keys and files and, with systemd reachable, of schedule
// units.
func (s *Store) removeStaleTemps() error {
	stateFile := func(name string) bool { return name == "jobs.json" || name == "meta.json" || name == "mounts.json" }
	dirs := map[string]func(string) bool{
		s.stateDir:     stateFile,
		s.journalDir(): func(name string) bool { return strings.HasSuffix(name, ".json") },
		s.sshDir():     sshFile,
	}
	if s.sched.sd != nil {
		dirs[s.sched.dir] = func(name string) bool {
			return name == units.TargetName || strings.HasPrefix(name, units.Prefix) &&
				(strings.HasSuffix(name, ".timer") || strings.HasSuffix(name, ".service"))
		}
	}
	for dir, owned := range dirs {
		removed, err := atomicfile.RemoveStale(dir, owned)
		for _, path := range removed {
			s.log.Info("temporary file of an interrupted write removed", "path", path)
		}
		if err != nil {
			return fmt.Errorf("remove temporary files in %q: %w", dir, err)
		}
	}
	return nil
}

// Close releases the data root and ends background work. Everything the
// store wrote is already on disk.
func (s *Store) Close() error {
	s.closeOnce.Do(func() { close(s.closed) })
	return s.lock.Close()
}

// Root is the data root.
func (s *Store) Root() string { return s.cfg.Root }

// Names are validated, so plain concatenation is a clean path.
func (s *Store) volumePath(name string) string   { return s.volumesDir + "/" + name }
func (s *Store) snapshotPath(name string) string { return s.snapshotsDir + "/" + name }

// step reports a finished step to the fault-injection hook.
func (s *Store) step(op, name string) error {
	if s.cfg.AfterStep == nil {
		return nil
	}
	return s.cfg.AfterStep(op, name)
}

func bootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return "unknown"
	}
	return string(trimSpace(b))
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}

// keyedMutex is one mutex per key, held in the map only while in use.
type keyedMutex struct {
	mu sync.Mutex
	m  map[string]*keyedEntry
}

type keyedEntry struct {
	held  chan struct{} // holds a value while the key is locked
	refs  int
	taken uint64 // times the key was locked, while the entry is in the map
}

func (k *keyedMutex) lock(key string) func() {
	unlock, _ := k.lockCtx(context.Background(), key)
	return unlock
}

// lockCtx is lock, giving up when ctx ends first: it then returns ctx's
// error and holds nothing. A ctx that has ended never takes the lock.
func (k *keyedMutex) lockCtx(ctx context.Context, key string) (func(), error) {
	e := k.ref(key)
	if err := ctx.Err(); err != nil {
		k.unref(key, e)
		return nil, err
	}
	select {
	case e.held <- struct{}{}:
	case <-ctx.Done():
		k.unref(key, e)
		return nil, ctx.Err()
	}
	if err := ctx.Err(); err != nil { // it ended as the lock came free
		<-e.held
		k.unref(key, e)
		return nil, err
	}
	return k.took(key, e), nil
}

// tryLock takes key's lock when it is free, without waiting.
func (k *keyedMutex) tryLock(key string) (func(), bool) {
	e := k.ref(key)
	select {
	case e.held <- struct{}{}:
	default:
		k.unref(key, e)
		return nil, false
	}
	return k.took(key, e), true
}

// took counts a taking of key's lock, held now, and returns its unlock.
func (k *keyedMutex) took(key string, e *keyedEntry) func() {
	k.mu.Lock()
	e.taken++
	k.mu.Unlock()
	return func() {
		<-e.held
		k.unref(key, e)
	}
}

// ref returns key's entry, kept in the map until unref.
func (k *keyedMutex) ref(key string) *keyedEntry {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.m == nil {
		k.m = map[string]*keyedEntry{}
	}
	e, ok := k.m[key]
	if !ok {
		e = &keyedEntry{held: make(chan struct{}, 1)}
		k.m[key] = e
	}
	e.refs++
	return e
}

func (k *keyedMutex) unref(key string, e *keyedEntry) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if e.refs--; e.refs == 0 {
		delete(k.m, key)
	}
}

// watch is called with key's lock held, before letting it go for a
// while. takenSince, called with the lock held again, says whether anyone
// else took it in between; done ends the watch.
func (k *keyedMutex) watch(key string) (takenSince func() bool, done func()) {
	e := k.ref(key)
	k.mu.Lock()
	at := e.taken
	k.mu.Unlock()
	takenSince = func() bool {
		k.mu.Lock()
		defer k.mu.Unlock()
		return e.taken > at+1 // the caller's own taking again counts once
	}
	return takenSince, func() { k.unref(key, e) }
}
