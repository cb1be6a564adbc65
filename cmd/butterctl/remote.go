package main

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"

	"butterd/dbusapi"
)

// The remote verbs manage replication peers: hosts whose butterd may
// connect to this one's endpoint (by their client key, with their rights)
// and to which this one sends.

const remoteAddHelp = `Adds peer PEER: the host whose butterd client key is KEY (the line that
'butterctl remote key' prints there, "ssh-ed25519 AAAA..."). --push lets
it send snapshots here, --pull lets it fetch snapshots from here; --volume
(repeatable) limits both to those volumes (all when none is given). A peer
without rights is still where 'butterctl send PEER SNAP' goes: to
--address (HOST or HOST:PORT, port 1122 when none), or to PEER as a host
name when no address is given.

The first peer turns on this host's replication endpoint (SSH on
SSH_ADDRESS:SSH_PORT; butterd-ssh.socket under systemd); removing the last
one turns it off. Prints nothing.`

const remoteRmHelp = `Its key may no longer connect, and purge no longer keeps what the records
say PEER holds. Prints nothing; when PEER was the last peer, this host's
replication endpoint stops listening (connections in flight finish) and a
line on stderr says so. With --json: {"name", "endpoint_stopped"}.`

const remoteTrustHelp = `Connects to HOST (a peer's name, meaning its address, or HOST[:PORT]),
checks that the host key it shows has fingerprint FINGERPRINT (SHA256:...,
as 'butterctl remote key' prints it on that host, or as a refused send
printed it) and adds it to butterd's known hosts. A host known with
another key is refused unless --replace is given: check the new key first,
a changed key may mean someone intercepts the connection. Prints the key
trusted.`

const remoteKeyHelp = `Prints what another host needs to add this one, on two lines: this
butterd's client key (for 'butterctl remote add PEER --key "..."' there)
and its host key's fingerprint (for 'butterctl remote trust HOST
FINGERPRINT' there). butterd makes both keys on first use.
With --json: {"client_key", "host_key_fingerprint"}.`

const remoteLsHelp = `Lists the peers: name, address (- when the name is the host), rights
(push, pull), the volumes they may use (all when none is given) and the
fingerprint of their client key. With --json: a list of {"name",
"address", "public_key", "fingerprint", "push", "pull", "volumes"}.`

// listFlag collects a repeated flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (*listFlag) repeatable() {}

func (l *listFlag) Set(s string) error {
	if s == "" {
		return fmt.Errorf("empty value")
	}
	*l = append(*l, s)
	return nil
}

type remoteAddCmd struct {
	*app
	address, key string
	push, pull   bool
	volumes      listFlag
}

func (c *remoteAddCmd) Flags(fs *flag.FlagSet) {
	fs.StringVar(&c.address, "address", "", "where the peer's endpoint is: `HOST[:PORT]` (default: PEER, port 1122)")
	fs.StringVar(&c.key, "key", "", "the peer's client key: one `LINE` 'ssh-ed25519 AAAA...' (required)")
	fs.BoolVar(&c.push, "push", false, "the peer may send snapshots here")
	fs.BoolVar(&c.pull, "pull", false, "the peer may fetch snapshots from here")
	fs.Var(&c.volumes, "volume", "limit the peer's rights to volume `V` (repeatable; default: all)")
}

func (c *remoteAddCmd) Run(ctx context.Context, args []string) error {
	if err := wantArgs(args, []string{"PEER"}); err != nil {
		return err
	}
	if c.key == "" {
		return usagef("--key is required: the line 'butterctl remote key' prints on the peer")
	}
	var flags uint64
	if c.push {
		flags |= dbusapi.RemotePush
	}
	if c.pull {
		flags |= dbusapi.RemotePull
	}
	m, err := c.bus()
	if err != nil {
		return err
	}
	return m.AddRemote(args[0], c.address, c.key, c.volumes, flags)
}

type remoteLsCmd struct{ *app }

func (c *remoteLsCmd) Flags(*flag.FlagSet) {}

func (c *remoteLsCmd) Run(ctx context.Context, args []string) error {
	if err := wantArgs(args, nil); err != nil {
		return err
	}
	m, err := c.bus()
	if err != nil {
		return err
	}
	rows, err := m.ListRemotes()
	if err != nil {
		return err
	}
	if c.json {
		type remoteJSON struct {
			Name        string   `json:"name"`
			Address     string   `json:"address"`
			PublicKey   string   `json:"public_key"`
			Fingerprint string   `json:"fingerprint"`
			Push        bool     `json:"push"`
			Pull        bool     `json:"pull"`
			Volumes     []string `json:"volumes"`
		}
		out := make([]remoteJSON, len(rows))
		for i, r := range rows {
			out[i] = remoteJSON{r.Name, r.Address, r.PublicKey, r.Fingerprint, r.Push, r.Pull, r.Volumes}
			if out[i].Volumes == nil {
				out[i].Volumes = []string{}
			}
		}
		return c.printJSON(out)
	}
	tw := tabwriter.NewWriter(c.out, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "NAME\tADDRESS\tRIGHTS\tVOLUMES\tKEY")
	for _, r := range rows {
		var rights []string
		if r.Push {
			rights = append(rights, "push")
		}
		if r.Pull {
			rights = append(rights, "pull")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Name, orDash(r.Address), orDash(strings.Join(rights, ",")), orAll(r.Volumes), r.Fingerprint)
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func orAll(volumes []string) string {
	if len(volumes) == 0 {
		return "all"
	}
	return strings.Join(volumes, ",")
}

type remoteRmCmd struct{ *app }

func (c *remoteRmCmd) Flags(*flag.FlagSet) {}

func (c *remoteRmCmd) Run(ctx context.Context, args []string) error {
	if err := wantArgs(args, []string{"PEER"}); err != nil {
		return err
	}
	m, err := c.bus()
	if err != nil {
		return err
	}
	stopped, err := m.RemoveRemote(args[0])
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(struct {
			Name            string `json:"name"`
			EndpointStopped bool   `json:"endpoint_stopped"`
		}{args[0], stopped})
	}
	if stopped {
		fmt.Fprintln(c.stderr, endpointStoppedNote)
	}
	return nil
}

// endpointStoppedNote is what remote rm says when the peer removed was the
// last one.
const endpointStoppedNote = "replication endpoint stopped: no peer is left ('butterctl remote add' starts it again)"

type remoteTrustCmd struct {
	*app
	replace bool
}

func (c *remoteTrustCmd) Flags(fs *flag.FlagSet) {
	fs.BoolVar(&c.replace, "replace", false, "drop the key known before for HOST")
}

func (c *remoteTrustCmd) Run(ctx context.Context, args []string) error {
	if err := wantArgs(args, []string{"HOST", "FINGERPRINT"}); err != nil {
		return err
	}
	if !strings.HasPrefix(args[1], "SHA256:") {
		return usagef("FINGERPRINT %q is not of the form SHA256:... (as 'butterctl remote key' prints it on the host)", args[1])
	}
	m, err := c.bus()
	if err != nil {
		return err
	}
	key, err := m.TrustRemoteHost(args[0], args[1], c.replace)
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(struct {
			Host        string `json:"host"`
			Key         string `json:"key"`
			Fingerprint string `json:"fingerprint"`
		}{args[0], key, args[1]})
	}
	return c.println(key)
}

type remoteKeyCmd struct{ *app }

func (c *remoteKeyCmd) Flags(*flag.FlagSet) {}

func (c *remoteKeyCmd) Run(ctx context.Context, args []string) error {
	if err := wantArgs(args, nil); err != nil {
		return err
	}
	m, err := c.bus()
	if err != nil {
		return err
	}
	client, host, err := m.GetOwnKeys()
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(struct {
			ClientKey          string `json:"client_key"`
			HostKeyFingerprint string `json:"host_key_fingerprint"`
		}{client, host})
	}
	if err := c.println(client); err != nil {
		return err
	}
	return c.println(host)
}
