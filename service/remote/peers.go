package remote

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"
)

// Peer is a host allowed to connect, known by its client key, with its
// rights.
type Peer struct {
	Name      string
	PublicKey ssh.PublicKey // its client key (an authorized_keys line on disk)
	Push      bool          // may send snapshots here (butterd-receive)
	Pull      bool          // may fetch snapshots from here (butterd-send)
	Volumes   []string      // the volumes it may use; empty means all
	// Address is where its own endpoint is (host or host:port,
	// DefaultPort when none): where a send to the peer's name goes.
	// Empty: its name is its host name.
	Address string
}

// MayUse reports whether the peer's rights cover volume.
func (p Peer) MayUse(volume string) bool {
	return len(p.Volumes) == 0 || slices.Contains(p.Volumes, volume)
}

func (p Peer) validate() error {
	if err := validateName("peer", p.Name); err != nil {
		return err
	}
	if p.PublicKey == nil {
		return errorf(ErrBadRequest, "peer %q has no public key: give the line of its client key (ssh-ed25519 AAAA...)", p.Name)
	}
	if _, ok := p.PublicKey.(*ssh.Certificate); ok {
		return errorf(ErrBadRequest, "peer %q: the key is a certificate: give the plain public key", p.Name)
	}
	for _, v := range p.Volumes {
		if err := validateName("volume", v); err != nil {
			return fmt.Errorf("peer %q: %w", p.Name, err)
		}
	}
	if p.Address != "" {
		if err := ValidateAddress(p.Address); err != nil {
			return fmt.Errorf("peer %q: %w", p.Name, err)
		}
	}
	return nil
}

type peerJSON struct {
	Name      string   `json:"name"`
	PublicKey string   `json:"public_key"`
	Push      bool     `json:"push"`
	Pull      bool     `json:"pull"`
	Volumes   []string `json:"volumes,omitempty"`
	Address   string   `json:"address,omitempty"`
}

func (p Peer) MarshalJSON() ([]byte, error) {
	j := peerJSON{Name: p.Name, Push: p.Push, Pull: p.Pull, Volumes: p.Volumes, Address: p.Address}
	if p.PublicKey != nil {
		j.PublicKey = AuthorizedKey(p.PublicKey)
	}
	return json.Marshal(j)
}

func (p *Peer) UnmarshalJSON(data []byte) error {
	var j peerJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return err
	}
	*p = Peer{Name: j.Name, Push: j.Push, Pull: j.Pull, Volumes: j.Volumes, Address: j.Address}
	if j.PublicKey != "" {
		key, err := ParsePublicKey(j.PublicKey)
		if err != nil {
			return fmt.Errorf("peer %q: %w", j.Name, err)
		}
		p.PublicKey = key
	}
	return nil
}

// ParsePublicKey reads one authorized_keys line ("ssh-ed25519 AAAA...
// comment"; options are refused).
func ParsePublicKey(line string) (ssh.PublicKey, error) {
	key, _, options, rest, err := ssh.ParseAuthorizedKey([]byte(line))
	switch {
	case err != nil:
		return nil, errorf(ErrBadRequest, "%.40q is not a public key line (ssh-ed25519 AAAA... as in a .pub file): %v", line, err)
	case len(options) > 0:
		return nil, errorf(ErrBadRequest, "public key line has options %q: give the key alone", options)
	case len(bytes.TrimSpace(rest)) > 0:
		return nil, errorf(ErrBadRequest, "give one public key line, not several")
	}
	return key, nil
}

// Peers is the peers file: one JSON object {"peers":[...]} sorted by name,
// written atomically. Every call reads the file again, so a change is seen
// by the next connection. Only one butterd writes it (the data root's
// flock); the methods of one Peers are safe for concurrent use.
type Peers struct {
	path string
	mu   sync.Mutex
}

type peersFile struct {
	Peers []Peer `json:"peers"`
}

// OpenPeers returns the peers file at path; a missing file has no peers.
func OpenPeers(path string) *Peers { return &Peers{path: path} }

// Path is the file's path.
func (ps *Peers) Path() string { return ps.path }

// List returns the peers, sorted by name.
func (ps *Peers) List() ([]Peer, error) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return ps.load()
}

// Get returns the peer called name.
func (ps *Peers) Get(name string) (Peer, error) {
	peers, err := ps.List()
	if err != nil {
		return Peer{}, err
	}
	if i := index(peers, name); i >= 0 {
		return peers[i], nil
	}
	return Peer{}, noSuchPeer(name)
}

// Add adds a peer. It refuses a bad name or key, a name that is taken, and
// a key that another peer has (a key names one peer).
func (ps *Peers) Add(p Peer) error {
	return ps.change(p.Name, func(peers []Peer) ([]Peer, error) {
		if err := p.validate(); err != nil {
			return nil, err
		}
		if index(peers, p.Name) >= 0 {
			return nil, errorf(ErrExists, "peer %q already exists: remove it first, or change its rights", p.Name)
		}
		if err := keyFree(peers, p); err != nil {
			return nil, err
		}
		return append(peers, p), nil
	})
}

// Update replaces the peer of the same name (its key and rights).
func (ps *Peers) Update(p Peer) error {
	return ps.change(p.Name, func(peers []Peer) ([]Peer, error) {
		if err := p.validate(); err != nil {
			return nil, err
		}
		i := index(peers, p.Name)
		if i < 0 {
			return nil, noSuchPeer(p.Name)
		}
		if err := keyFree(peers, p); err != nil {
			return nil, err
		}
		peers[i] = p
		return peers, nil
	})
}

// Remove removes the peer called name.
func (ps *Peers) Remove(name string) error {
	return ps.change(name, func(peers []Peer) ([]Peer, error) {
		i := index(peers, name)
		if i < 0 {
			return nil, noSuchPeer(name)
		}
		return slices.Delete(peers, i, i+1), nil
	})
}

// byKey returns the peer whose client key is key.
func (ps *Peers) byKey(key ssh.PublicKey) (Peer, bool, error) {
	peers, err := ps.List()
	if err != nil {
		return Peer{}, false, err
	}
	blob := key.Marshal()
	for _, p := range peers {
		if bytes.Equal(p.PublicKey.Marshal(), blob) {
			return p, true, nil
		}
	}
	return Peer{}, false, nil
}

func (ps *Peers) change(name string, fn func([]Peer) ([]Peer, error)) error {
	if err := validateName("peer", name); err != nil {
		return err
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	peers, err := ps.load()
	if err != nil {
		return err
	}
	if peers, err = fn(peers); err != nil {
		return err
	}
	slices.SortFunc(peers, func(a, b Peer) int { return strings.Compare(a.Name, b.Name) })
	data, err := json.MarshalIndent(peersFile{Peers: peers}, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(ps.path, append(data, '\n'), false)
}

// load reads the file and checks every peer: a bad file refuses everyone.
func (ps *Peers) load() ([]Peer, error) {
	data, err := os.ReadFile(ps.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var f peersFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("peers file %q: %w", ps.path, err)
	}
	for i, p := range f.Peers {
		if err := p.validate(); err != nil {
			return nil, fmt.Errorf("peers file %q: %w", ps.path, err)
		}
		if index(f.Peers[:i], p.Name) >= 0 {
			return nil, fmt.Errorf("peers file %q: peer %q appears twice", ps.path, p.Name)
		}
	}
	return f.Peers, nil
}

func index(peers []Peer, name string) int {
	return slices.IndexFunc(peers, func(p Peer) bool { return p.Name == name })
}

func keyFree(peers []Peer, p Peer) error {
	blob := p.PublicKey.Marshal()
	for _, o := range peers {
		if o.Name != p.Name && bytes.Equal(o.PublicKey.Marshal(), blob) {
			return errorf(ErrExists, "key %s is already peer %q's: a key names one peer", Fingerprint(p.PublicKey), o.Name)
		}
	}
	return nil
}

func noSuchPeer(name string) error {
	return errorf(ErrNotFound, "no such peer %q (butterctl remote ls lists them)", name)
}
