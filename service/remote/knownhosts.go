package remote

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"slices"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// DefaultPort is the port of butterd's replication endpoint (SSH_PORT).
const DefaultPort = "1122"

// TrustCommand is the butterctl command that trusts a host's key: it
// connects, checks that the host shows the key of that fingerprint and
// adds it to butterd's known hosts (TrustHost); --replace drops the key
// known before.
const TrustCommand = "butterctl remote trust"

// hostPort is addr with DefaultPort when it names no port.
func hostPort(addr string) string {
	if _, _, err := net.SplitHostPort(addr); err == nil {
		return addr
	}
	return net.JoinHostPort(strings.TrimSuffix(strings.TrimPrefix(addr, "["), "]"), DefaultPort)
}

// displayHost is addr as an operator writes it: without the default port.
func displayHost(addr string) string {
	if host, port, err := net.SplitHostPort(addr); err == nil && port == DefaultPort {
		return host
	}
	return addr
}

// HostKeyError is a server's host key that the known hosts do not trust.
type HostKeyError struct {
	Addr    string                // the address dialed (host:port)
	Key     ssh.PublicKey         // the key the server showed
	Known   []knownhosts.KnownKey // the keys known for the host: non-empty when its key changed
	Revoked *knownhosts.KnownKey  // set when the key is marked @revoked
}

func (e *HostKeyError) Is(target error) bool { return target == ErrHostKey }

func (e *HostKeyError) Error() string {
	host := displayHost(e.Addr)
	fp := Fingerprint(e.Key)
	switch {
	case e.Revoked != nil:
		return fmt.Sprintf("host key of %s (%s %s) is revoked in %s:%d: refused", host, e.Key.Type(), fp, e.Revoked.Filename, e.Revoked.Line)
	case len(e.Known) == 0:
		return fmt.Sprintf("host key of %s is unknown: it is %s %s. If that is the key of the butterd on %s, trust it with: %s %s %s",
			host, e.Key.Type(), fp, host, TrustCommand, host, fp)
	}
	known := make([]string, len(e.Known))
	for i, k := range e.Known {
		known[i] = fmt.Sprintf("%s %s (%s:%d)", k.Key.Type(), Fingerprint(k.Key), k.Filename, k.Line)
	}
	return fmt.Sprintf("host key of %s has CHANGED: it is now %s %s, the known one is %s. Someone may be intercepting the connection; if %s was reinstalled, check its new key and replace the old one with: %s --replace %s %s",
		host, e.Key.Type(), fp, strings.Join(known, ", "), host, TrustCommand, host, fp)
}

// HostKeyCallback checks host keys against the OpenSSH known_hosts file at
// path (a missing file trusts no host). Its errors are *HostKeyError.
func HostKeyCallback(path string) (ssh.HostKeyCallback, error) {
	var files []string
	if _, err := os.Stat(path); err == nil {
		files = append(files, path)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	check, err := knownhosts.New(files...)
	if err != nil {
		return nil, err
	}
	return func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		err := check(hostname, remote, key)
		var keyErr *knownhosts.KeyError
		var revErr *knownhosts.RevokedError
		switch {
		case errors.As(err, &keyErr):
			return &HostKeyError{Addr: hostname, Key: key, Known: keyErr.Want}
		case errors.As(err, &revErr):
			return &HostKeyError{Addr: hostname, Key: key, Revoked: &revErr.Revoked}
		}
		return err
	}, nil
}

// AddKnownHost adds addr's key to the known_hosts file at path (created
// when missing, rewritten atomically). A host already known with another
// key is refused (ErrExists) unless replace, which drops the old key;
// adding a key already known does nothing. Only plain host names are
// matched for that, as butterd writes them (not hashed ones).
func AddKnownHost(path, addr string, key ssh.PublicKey, replace bool) error {
	addr = hostPort(addr)
	name := knownhosts.Normalize(addr)
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	var out bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) < 3 || strings.HasPrefix(fields[0], "#") || strings.HasPrefix(fields[0], "@") {
			out.WriteString(line + "\n")
			continue
		}
		hosts := strings.Split(fields[0], ",")
		i := slices.Index(hosts, name)
		if i < 0 {
			out.WriteString(line + "\n")
			continue
		}
		known, _, _, _, err := ssh.ParseAuthorizedKey([]byte(strings.Join(fields[1:], " ")))
		if err == nil && bytes.Equal(known.Marshal(), key.Marshal()) {
			return nil // already trusted
		}
		if !replace {
			return errorf(ErrExists, "%s:%d already has another key for %s: pass --replace to drop it", path, n, displayHost(addr))
		}
		hosts = append(hosts[:i], hosts[i+1:]...)
		if len(hosts) > 0 {
			out.WriteString(strings.Join(hosts, ",") + " " + strings.Join(fields[1:], " ") + "\n")
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read %q: %w", path, err)
	}
	out.WriteString(knownhosts.Line([]string{addr}, key) + "\n")
	return writeFileAtomic(path, out.Bytes(), false)
}

var errGotHostKey = errors.New("host key fetched")

// FetchHostKey connects to addr and returns the host key it shows, without
// authenticating (as ssh-keyscan does).
func FetchHostKey(ctx context.Context, addr string, opts Options) (ssh.PublicKey, error) {
	opts = opts.withDefaults()
	addr = hostPort(addr)
	conn, err := opts.dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	var got ssh.PublicKey
	cfg := &ssh.ClientConfig{
		User: "butterd",
		HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error {
			got = key
			return errGotHostKey
		},
	}
	conn.SetDeadline(deadline(ctx, opts.DialTimeout))
	_, _, _, err = ssh.NewClientConn(conn, addr, cfg)
	if got != nil {
		return got, nil
	}
	return nil, connError(err, "%s: no host key: %v", displayHost(addr), err)
}

// TrustHost fetches addr's host key, checks that its fingerprint is
// fingerprint (SHA256:..., as the refusal printed it) and adds it to the
// known_hosts file at path (AddKnownHost). It is what TrustCommand runs.
func TrustHost(ctx context.Context, path, addr, fingerprint string, replace bool, opts Options) (ssh.PublicKey, error) {
	if !strings.HasPrefix(fingerprint, "SHA256:") {
		return nil, errorf(ErrBadRequest, "fingerprint %q is not of the form SHA256:... (as the refusal printed it)", fingerprint)
	}
	key, err := FetchHostKey(ctx, addr, opts)
	if err != nil {
		return nil, err
	}
	if fp := Fingerprint(key); fp != fingerprint {
		return nil, errorf(ErrHostKey, "host key of %s is %s %s, not %s: refused", displayHost(hostPort(addr)), key.Type(), fp, fingerprint)
	}
	return key, AddKnownHost(path, addr, key, replace)
}
