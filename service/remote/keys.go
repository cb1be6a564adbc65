package remote

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"golang.org/x/crypto/ssh"
)

// LoadOrCreateKey returns the private key at path (OpenSSH format, as
// ssh-keygen writes it), creating an ed25519 key there first when there is
// none: mode 0600, written atomically, never replacing a key that another
// process wrote meanwhile. butterd keeps its host key and its client key
// this way under its state directory. A key file that others may read is
// refused, as OpenSSH does.
func LoadOrCreateKey(path string) (ssh.Signer, error) {
	signer, err := loadKey(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return signer, err
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	block, err := ssh.MarshalPrivateKey(priv, "butterd@"+host)
	if err != nil {
		return nil, err
	}
	err = writeFileAtomic(path, pem.EncodeToMemory(block), true)
	if err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("create key %q: %w", path, err)
	}
	return loadKey(path)
}

func loadKey(path string) (ssh.Signer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("key %q is not a regular file", path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("key %q has mode %04o: others may read it; make it private with: chmod 600 %s", path, perm, path)
	}
	data := make([]byte, min(st.Size(), 64<<10))
	if _, err := f.ReadAt(data, 0); err != nil {
		return nil, fmt.Errorf("read key %q: %w", path, err)
	}
	signer, err := ssh.ParsePrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("key %q: %w", path, err)
	}
	return signer, nil
}

// AuthorizedKey is key as one line of an authorized_keys file, without the
// newline: what `butterctl remote add` takes for a peer's key.
func AuthorizedKey(key ssh.PublicKey) string {
	return strings.TrimSuffix(string(ssh.MarshalAuthorizedKey(key)), "\n")
}

// Fingerprint is key's SHA256 fingerprint as OpenSSH shows it
// ("SHA256:..." in unpadded base64).
func Fingerprint(key ssh.PublicKey) string { return ssh.FingerprintSHA256(key) }
