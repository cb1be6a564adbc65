package remote

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidateAddress(t *testing.T) {
	for _, ok := range []string{"b", "backup-1.example.org", "10.0.0.2", "10.0.0.2:22", "host_b:1122", "::1", "[::1]", "[fe80::1]:65535", "h:1"} {
		if err := ValidateAddress(ok); err != nil {
			t.Errorf("ValidateAddress(%q) = %v, want nil", ok, err)
		}
	}
	for addr, msg := range map[string]string{
		"":                       "address is empty",
		"host:":                  `port "" must be a number`,
		"host:0":                 `port "0" must be a number`,
		"host:65536":             `port "65536" must be a number`,
		"host:022":               `port "022" must be a number`,
		"host:+22":               `port "+22" must be a number`,
		"user@host":              "is not a host name or IP address",
		"-host":                  "is not a host name or IP address",
		"a..b":                   "is not a host name or IP address",
		"host/../x":              "is not a host name or IP address",
		"fe80::1:22:x":           "is not a host name or IP address",
		"host name":              "is not a host name or IP address",
		"[host]:22":              "is not a host name or IP address",
		"x\n":                    "is not a host name or IP address",
		strings.Repeat("a", 301): "characters long",
	} {
		err := ValidateAddress(addr)
		if !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), msg) {
			t.Errorf("ValidateAddress(%q) = %v, want a bad request saying %q", addr, err, msg)
		}
	}
	if got := HostPort("b"); got != "b:1122" {
		t.Errorf("HostPort(b) = %q", got)
	}
}

// A peer's address is kept in the peers file, and a bad one is refused.
func TestPeerAddress(t *testing.T) {
	ps := OpenPeers(filepath.Join(t.TempDir(), "peers.json"))
	if err := ps.Add(Peer{Name: "host-b", PublicKey: testKey(t, "b"), Address: "10.0.0.2:2222"}); err != nil {
		t.Fatal(err)
	}
	if p, err := ps.Get("host-b"); err != nil || p.Address != "10.0.0.2:2222" {
		t.Errorf("Get = %+v, %v: want the address back", p, err)
	}
	err := ps.Add(Peer{Name: "host-c", PublicKey: testKey(t, "c"), Address: "c:x"})
	if !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), `peer "host-c"`) {
		t.Errorf("Add with a bad address = %v", err)
	}
}
