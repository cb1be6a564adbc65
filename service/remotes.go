package service

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"

	"golang.org/x/crypto/ssh"

	"butterd/service/remote"
)

// Replication state lives in state/ssh/ under the data root: butterd's host
// key and client key (made on first use), the peers it accepts with their
// rights (peers.json), the hosts it trusts (known_hosts) and what each peer
// holds (shared.json, see shared.go).
const (
	hostKeyFile     = "host_key"
	clientKeyFile   = "client_key"
	peersFile       = "peers.json"
	knownHostsFile  = "known_hosts"
	sharedStateFile = "shared.json"
)

// SSHUser is the user name butterd's client gives; the endpoint knows a
// client by its key alone.
const SSHUser = "butterd"

// sshFile tells the files butterd writes in state/ssh/.
func sshFile(name string) bool {
	switch name {
	case hostKeyFile, clientKeyFile, peersFile, knownHostsFile, sharedStateFile:
		return true
	}
	return false
}

func (s *Store) sshDir() string { return filepath.Join(s.stateDir, "ssh") }

// HostKey is the key the replication endpoint shows, made on first use.
func (s *Store) HostKey() (ssh.Signer, error) {
	return remote.LoadOrCreateKey(filepath.Join(s.sshDir(), hostKeyFile))
}

// ClientKey is the key butterd authenticates with on other hosts' endpoints,
// made on first use.
func (s *Store) ClientKey() (ssh.Signer, error) {
	return remote.LoadOrCreateKey(filepath.Join(s.sshDir(), clientKeyFile))
}

// KnownHosts is the known_hosts file butterd checks host keys against.
func (s *Store) KnownHosts() string { return filepath.Join(s.sshDir(), knownHostsFile) }

// Peers is the peers file: who may connect, with which rights.
func (s *Store) Peers() *remote.Peers { return s.peers }

// Remote is a peer as callers see it.
type Remote struct {
	Name        string
	Address     string // where its endpoint is; "" means its name
	PublicKey   string // its client key, one authorized_keys line
	Fingerprint string // of PublicKey, SHA256:...
	Push, Pull  bool
	Volumes     []string // empty: all
}

// AddRemote adds a peer: a host whose client key may connect to our
// endpoint with the rights given, and where a send to its name goes. When
// it is the first peer, Config.PeerAdded makes the endpoint listen.
func (s *Store) AddRemote(r Remote) error {
	key, err := remote.ParsePublicKey(r.PublicKey)
	if err != nil {
		return fromRemote(err)
	}
	p := remote.Peer{Name: r.Name, PublicKey: key, Push: r.Push, Pull: r.Pull, Volumes: r.Volumes, Address: r.Address}
	if err := s.peers.Add(p); err != nil {
		return fromRemote(err)
	}
	s.log.Info("peer added", "peer", p.Name, "address", p.Address, "key", remote.Fingerprint(key), "push", p.Push, "pull", p.Pull, "volumes", p.Volumes)
	if s.cfg.PeerAdded != nil {
		if err := s.cfg.PeerAdded(); err != nil {
			return fmt.Errorf("peer %q added, but the replication endpoint does not listen: %w", p.Name, err)
		}
	}
	return nil
}

// ListRemotes lists the peers by name.
func (s *Store) ListRemotes() ([]Remote, error) {
	peers, err := s.peers.List()
	if err != nil {
		return nil, err
	}
	out := make([]Remote, len(peers))
	for i, p := range peers {
		out[i] = Remote{Name: p.Name, Address: p.Address, PublicKey: remote.AuthorizedKey(p.PublicKey),
			Fingerprint: remote.Fingerprint(p.PublicKey), Push: p.Push, Pull: p.Pull, Volumes: slices.Clone(p.Volumes)}
	}
	return out, nil
}

// RemoveRemote removes a peer: its key may no longer connect, and what the
// records say it holds no longer keeps snapshots from purge. When it was
// the last peer, Config.PeerRemoved stops the endpoint; endpointStopped
// says whether it did.
func (s *Store) RemoveRemote(name string) (endpointStopped bool, err error) {
	peers, err := s.peers.List()
	if err != nil {
		return false, err
	}
	addr := ""
	for _, p := range peers {
		if p.Name == name {
			addr = remote.HostPort(cmp.Or(p.Address, p.Name))
		}
	}
	if err := s.peers.Remove(name); err != nil {
		return false, fromRemote(err)
	}
	// Sends made to its address before it was a peer (or by address) are
	// recorded under the address, unless another peer has it.
	names := []string{name}
	if _, other, err := s.resolveHost(addr); addr != "" && err == nil && other == addr {
		names = append(names, addr)
	}
	for _, n := range names {
		if err := s.shared.dropPeer(n); err != nil {
			return false, fmt.Errorf("peer %q removed, but its records were not: %w", name, err)
		}
	}
	s.log.Info("peer removed", "peer", name)
	if s.cfg.PeerRemoved == nil {
		return false, nil
	}
	stopped, err := s.cfg.PeerRemoved()
	if err != nil {
		return false, fmt.Errorf("peer %q removed, but the replication endpoint still listens with no peer left: %w", name, err)
	}
	return stopped, nil
}

// TrustRemoteHost connects to host (a peer's name, meaning its address, or
// host[:port]), checks that its host key has the fingerprint given
// (SHA256:..., as a refusal printed it) and adds it to the known hosts;
// replace drops a key known before for that host. It returns the key
// trusted, as a known_hosts key ("ssh-ed25519 AAAA...").
func (s *Store) TrustRemoteHost(ctx context.Context, host, fingerprint string, replace bool) (string, error) {
	addr, _, err := s.resolveHost(host)
	if err != nil {
		return "", err
	}
	key, err := remote.TrustHost(ctx, s.KnownHosts(), addr, fingerprint, replace, remote.Options{Log: s.cfg.Logger})
	if err != nil {
		return "", fromRemote(err)
	}
	s.log.Info("host key trusted", "host", addr, "key", remote.Fingerprint(key))
	return remote.AuthorizedKey(key), nil
}

// OwnKeys returns what another host needs to add this one: its client key
// (an authorized_keys line, for `butterctl remote add --key` there) and the
// fingerprint of its host key (for `butterctl remote trust` there).
func (s *Store) OwnKeys() (clientKey, hostFingerprint string, err error) {
	ck, err := s.ClientKey()
	if err != nil {
		return "", "", err
	}
	hk, err := s.HostKey()
	if err != nil {
		return "", "", err
	}
	return remote.AuthorizedKey(ck.PublicKey()), remote.Fingerprint(hk.PublicKey()), nil
}

// DialHost connects to the replication endpoint of host (a peer's name or
// host[:port]) with this butterd's client key, checking its host key
// against the known hosts.
func (s *Store) DialHost(ctx context.Context, host string) (*remote.Client, error) {
	addr, _, err := s.resolveHost(host)
	if err != nil {
		return nil, err
	}
	key, err := s.ClientKey()
	if err != nil {
		return nil, err
	}
	c, err := remote.Dial(ctx, addr, SSHUser, key, s.KnownHosts(), remote.Options{Log: s.cfg.Logger})
	if err != nil {
		return nil, fromRemote(err)
	}
	return c, nil
}

// resolveHost finds where host is: a peer's name means its address (or its
// name when it has none), anything else must be host[:port]. It returns
// the address to dial (host:port) and the name the records give it: the
// peer's whose address (or name, when it has none) is there, or the
// address when no peer's is.
func (s *Store) resolveHost(host string) (addr, peer string, err error) {
	peers, err := s.peers.List()
	if err != nil {
		return "", "", err
	}
	for _, p := range peers {
		if p.Name == host {
			return remote.HostPort(cmp.Or(p.Address, p.Name)), p.Name, nil
		}
	}
	if err := remote.ValidateAddress(host); err != nil {
		return "", "", errorf(ErrInvalidArg, "%q is neither a peer (butterctl remote ls lists them) nor a host: %v", host, err)
	}
	addr = remote.HostPort(host)
	for _, p := range peers {
		if remote.HostPort(cmp.Or(p.Address, p.Name)) == addr {
			return addr, p.Name, nil
		}
	}
	return addr, addr, nil
}

// fromRemote gives an error of the transport the service's kind.
func fromRemote(err error) error {
	var kind error
	switch {
	case err == nil:
		return nil
	case errors.Is(err, remote.ErrInvalidName):
		kind = ErrInvalidName
	case errors.Is(err, remote.ErrBadRequest), errors.Is(err, remote.ErrHostKey):
		kind = ErrInvalidArg
	case errors.Is(err, remote.ErrNotFound):
		kind = ErrNotFound
	case errors.Is(err, remote.ErrExists):
		kind = ErrExists
	default:
		return err
	}
	return &kindError{kinds: []error{kind}, msg: err.Error()}
}
