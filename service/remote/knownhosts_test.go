package remote

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAddKnownHost(t *testing.T) {
	path := filepath.Join(t.TempDir(), "known_hosts")
	ka, kb := testKey(t, "a"), testKey(t, "b")
	os.WriteFile(path, []byte("# comment\nother.example "+AuthorizedKey(kb)+"\n"), 0o600)
	if err := AddKnownHost(path, "hosta", ka, false); err != nil {
		t.Fatal(err)
	}
	if err := AddKnownHost(path, "hosta:1122", ka, false); err != nil {
		t.Errorf("adding the same key again = %v: want nothing done", err)
	}
	if err := AddKnownHost(path, "hosta", kb, false); !errors.Is(err, ErrExists) {
		t.Errorf("another key for a known host = %v: want ErrExists", err)
	}
	data, _ := os.ReadFile(path)
	if got := strings.Count(string(data), "[hosta]:1122 "); got != 1 || !strings.HasPrefix(string(data), "# comment\nother.example ") {
		t.Errorf("known_hosts:\n%s", data)
	}

	check, err := HostKeyCallback(path)
	if err != nil {
		t.Fatal(err)
	}
	remote := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 1122}
	if err := check("hosta:1122", remote, ka); err != nil {
		t.Errorf("known key refused: %v", err)
	}
	var hk *HostKeyError
	if err := check("hosta:1122", remote, kb); !errors.As(err, &hk) || len(hk.Known) != 1 || !strings.Contains(err.Error(), TrustCommand+" --replace hosta "+Fingerprint(kb)) {
		t.Errorf("changed key = %v", err)
	}
	if err := check("hostc:2222", remote, kb); !errors.As(err, &hk) || len(hk.Known) != 0 || !strings.Contains(err.Error(), TrustCommand+" hostc:2222 "+Fingerprint(kb)) {
		t.Errorf("unknown host = %v", err)
	}

	if err := AddKnownHost(path, "hosta", kb, true); err != nil {
		t.Fatal(err)
	}
	check, _ = HostKeyCallback(path)
	if err := check("hosta:1122", remote, ka); err == nil {
		t.Error("the replaced key is still trusted")
	}
	if err := check("hosta:1122", remote, kb); err != nil {
		t.Errorf("the new key is refused: %v", err)
	}
}

func TestHostKeyCallbackMissingFile(t *testing.T) {
	check, err := HostKeyCallback(filepath.Join(t.TempDir(), "none"))
	if err != nil {
		t.Fatal(err)
	}
	if err := check("hosta:1122", &net.TCPAddr{}, testKey(t, "a")); !errors.Is(err, ErrHostKey) {
		t.Errorf("no known hosts file: %v: want ErrHostKey", err)
	}
}
