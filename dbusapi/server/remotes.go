package server

import (
	"context"
	"time"

	"github.com/godbus/dbus/v5"

	"butterd/dbusapi"
	"butterd/service"
)

// trustTimeout bounds TrustRemoteHost's connection to the host, within a
// caller's usual method call timeout (25 s).
const trustTimeout = 20 * time.Second

// SendSnapshot sends a snapshot to host (a peer's name or host[:port]) as a
// job; bandwidth_limit is in bytes per second on the wire (0: none).
func (m *Manager) SendSnapshot(sender dbus.Sender, host, snapshot string, bandwidthLimit, flags uint64) (uint32, dbus.ObjectPath, *dbus.Error) {
	o, derr := m.sendOptions(sender, "SendSnapshot", bandwidthLimit, flags)
	if derr != nil {
		return 0, "/", derr
	}
	return jobReply(m.store.SendSnapshot(host, snapshot, o))
}

// ReplicateVolume takes a fresh snapshot of volume and sends it to host,
// in one job, as SendSnapshot does.
func (m *Manager) ReplicateVolume(sender dbus.Sender, volume, host string, bandwidthLimit, flags uint64) (uint32, dbus.ObjectPath, *dbus.Error) {
	o, derr := m.sendOptions(sender, "ReplicateVolume", bandwidthLimit, flags)
	if derr != nil {
		return 0, "/", derr
	}
	return jobReply(m.store.ReplicateVolume(host, volume, o))
}

// sendOptions authorizes a send or replicate call and decodes its options.
func (m *Manager) sendOptions(sender dbus.Sender, method string, bandwidthLimit, flags uint64) (service.SendJobOptions, *dbus.Error) {
	if err := m.auth.allowChange(sender, method); err != nil {
		return service.SendJobOptions{}, err
	}
	if err := checkFlags(flags, dbusapi.SendCompress); err != nil {
		return service.SendJobOptions{}, err
	}
	if bandwidthLimit > 1<<62 {
		return service.SendJobOptions{}, invalidArg("bandwidth_limit is too large: give bytes per second, or 0 for no limit")
	}
	return service.SendJobOptions{Compress: flags&dbusapi.SendCompress != 0, BandwidthLimit: int64(bandwidthLimit)}, nil
}

func jobReply(j service.Job, err error) (uint32, dbus.ObjectPath, *dbus.Error) {
	if err != nil {
		return 0, "/", toDBus(err)
	}
	return j.ID, dbusapi.JobPath(j.ID), nil
}

// AddRemote adds a replication peer: its client key (an authorized_keys
// line), its rights here (flags push, pull; volumes, empty for all) and
// where its endpoint is (address, "" for its name).
func (m *Manager) AddRemote(sender dbus.Sender, name, address, publicKey string, volumes []string, flags uint64) *dbus.Error {
	if err := m.auth.allowChange(sender, "AddRemote"); err != nil {
		return err
	}
	if err := checkFlags(flags, dbusapi.RemotePush|dbusapi.RemotePull); err != nil {
		return err
	}
	return toDBus(m.store.AddRemote(service.Remote{Name: name, Address: address, PublicKey: publicKey, Volumes: volumes,
		Push: flags&dbusapi.RemotePush != 0, Pull: flags&dbusapi.RemotePull != 0}))
}

func (m *Manager) ListRemotes() ([]dbusapi.RemoteRow, *dbus.Error) {
	remotes, err := m.store.ListRemotes()
	if err != nil {
		return nil, toDBus(err)
	}
	rows := make([]dbusapi.RemoteRow, len(remotes))
	for i, r := range remotes {
		rows[i] = dbusapi.RemoteRow{Name: r.Name, Address: r.Address, PublicKey: r.PublicKey, Fingerprint: r.Fingerprint,
			Push: r.Push, Pull: r.Pull, Volumes: r.Volumes}
		if rows[i].Volumes == nil {
			rows[i].Volumes = []string{}
		}
	}
	return rows, nil
}

// RemoveRemote removes a peer and answers whether the replication endpoint
// stopped because no peer is left.
func (m *Manager) RemoveRemote(sender dbus.Sender, name string) (bool, *dbus.Error) {
	if err := m.auth.allowChange(sender, "RemoveRemote"); err != nil {
		return false, err
	}
	stopped, err := m.store.RemoveRemote(name)
	return stopped, toDBus(err)
}

// TrustRemoteHost fetches host's key, checks it has the fingerprint given
// and trusts it; it returns the key trusted.
func (m *Manager) TrustRemoteHost(sender dbus.Sender, host, fingerprint string, flags uint64) (string, *dbus.Error) {
	if err := m.auth.allowChange(sender, "TrustRemoteHost"); err != nil {
		return "", err
	}
	if err := checkFlags(flags, dbusapi.TrustReplace); err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), trustTimeout)
	defer cancel()
	key, err := m.store.TrustRemoteHost(ctx, host, fingerprint, flags&dbusapi.TrustReplace != 0)
	return key, toDBus(err)
}

// GetOwnKeys answers what another host needs to add this one: the client
// key line and the host key's fingerprint.
func (m *Manager) GetOwnKeys() (string, string, *dbus.Error) {
	client, host, err := m.store.OwnKeys()
	return client, host, toDBus(err)
}

func (m *Manager) ListReplicas(volume string) ([]dbusapi.ReplicaRow, *dbus.Error) {
	reps, err := m.store.ListReplicas(volume)
	if err != nil {
		return nil, toDBus(err)
	}
	rows := make([]dbusapi.ReplicaRow, len(reps))
	for i, r := range reps {
		rows[i] = dbusapi.ReplicaRow{Snapshot: r.Snapshot, Peer: r.Peer, Received: r.Received, Newest: r.Newest, Time: usec(r.Time)}
	}
	return rows, nil
}
