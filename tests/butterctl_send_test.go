package tests

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"butterd/service/remote"
	"butterd/tests/testenv"
)

// Replication between two real butterd daemons on one machine, each with
// its own loop BTRFS and its own private bus with the real policy, driven
// by butterctl as an operator would: exchange keys, trust the host key,
// send in full, then incrementally, then nothing; purge keeps what the
// peers share; snapshots -l shows who holds what.

// sendHost is one butterd with its butterctl.
type sendHost struct {
	ctl  *ctlEnv
	d    *testenv.Daemon
	addr string // its replication endpoint, 127.0.0.1:PORT
}

func startSendHost(t *testing.T) *sendHost {
	t.Helper()
	testenv.Root(t)
	testenv.Command(t, "btrfs")
	buildButterctl(t)
	bus := testenv.StartBus(t)
	root := filepath.Join(testenv.Btrfs(t), "root")
	sock := filepath.Join(t.TempDir(), "btrfs.sock")
	port := freePort(t)
	d := testenv.StartButterdWith(t, root, sock, testenv.ButterdOptions{Bus: bus,
		Args: []string{"--ssh-address=127.0.0.1", "--ssh-port=" + port}})
	return &sendHost{ctl: newCtl(t, bus), d: d, addr: "127.0.0.1:" + port}
}

// freePort is a TCP port of 127.0.0.1 that nothing listens on now.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}

// keys returns the host's client key line and host key fingerprint.
func (h *sendHost) keys(t *testing.T) (client, hostFP string) {
	t.Helper()
	return h.ctl.remoteKeys()
}

// remoteKeys returns the client key line and host key fingerprint that
// `butterctl remote key` prints.
func (c *ctlEnv) remoteKeys() (client, hostFP string) {
	c.t.Helper()
	lines := strings.Split(strings.TrimSuffix(c.ok("remote", "key"), "\n"), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "ssh-ed25519 ") || !strings.HasPrefix(lines[1], "SHA256:") {
		c.t.Fatalf("remote key printed %q: want the client key line and the host key fingerprint", lines)
	}
	return lines[0], lines[1]
}

func (h *sendHost) snapPath(name string) string {
	return filepath.Join(h.d.DataRoot, "snapshots", name)
}

// listens reports whether something accepts connections at h.addr.
func (h *sendHost) listens() bool {
	c, err := net.DialTimeout("tcp", h.addr, time.Second)
	if err == nil {
		c.Close()
	}
	return err == nil
}

// send runs butterctl send and requires it to succeed, returning the
// summary it printed.
func (c *ctlEnv) send(args ...string) string {
	t := c.t
	t.Helper()
	r := c.run(append([]string{"send"}, args...)...)
	m := jobStarted.FindStringSubmatch(r.stderr)
	if r.code != 0 || m == nil || !strings.Contains(r.stderr, "job "+m[1]+" done: ") {
		t.Fatalf("butterctl send %s: exit %d, stdout %q, stderr %q", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return strings.TrimSuffix(r.stdout, "\n")
}

// sendFails runs butterctl send and requires the job to fail with want in
// its one error line.
func (c *ctlEnv) sendFails(want string, args ...string) string {
	t := c.t
	t.Helper()
	r := c.run(append([]string{"send"}, args...)...)
	lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
	last := lines[len(lines)-1]
	if r.code != 1 || r.stdout != "" || !jobStarted.MatchString(r.stderr) || !strings.HasPrefix(last, "butterctl: send job ") ||
		!strings.Contains(last, " failed: ") || !strings.Contains(last, want) {
		t.Fatalf("butterctl send %s: exit %d, stdout %q, stderr %q; want the job failed, saying %q", strings.Join(args, " "), r.code, r.stdout, r.stderr, want)
	}
	return last
}

func TestButterctlSendBetweenDaemons(t *testing.T) {
	a, b := startSendHost(t), startSendHost(t)
	clientA, hostA := a.keys(t)
	clientB, hostB := b.keys(t)
	if clientA == clientB || hostA == hostB {
		t.Fatalf("both daemons have the same keys: %q %q", clientA, hostA)
	}
	if again, _ := a.keys(t); again != clientA {
		t.Errorf("remote key changed between calls: %q then %q", clientA, again)
	}

	// No peer yet: no endpoint. The first peer turns it on.
	if b.listens() {
		t.Fatalf("B listens on %s before it has a peer", b.addr)
	}
	stranger, err := remote.LoadOrCreateKey(filepath.Join(t.TempDir(), "key"))
	must(t, err)
	b.ctl.ok("remote", "add", "other", "--key", remote.AuthorizedKey(stranger.PublicKey()), "--pull")
	if !b.listens() {
		t.Fatalf("B does not listen on %s after its first peer was added", b.addr)
	}

	// A knows B by name at its address, with no rights of its own here.
	a.ctl.ok("remote", "add", "hostb", "--address", b.addr, "--key", clientB)
	var remotes []struct {
		Name, Address, Fingerprint string
		Push, Pull                 bool
		Volumes                    []string
	}
	a.ctl.okJSON(&remotes, "remote", "ls")
	if len(remotes) != 1 || remotes[0].Name != "hostb" || remotes[0].Address != b.addr || remotes[0].Push || remotes[0].Pull ||
		!strings.HasPrefix(remotes[0].Fingerprint, "SHA256:") {
		t.Fatalf("A's remote ls: %+v", remotes)
	}

	ctlA := a.ctl
	ctlA.ok("volume", "create", "v1")
	var info map[string]any
	ctlA.okJSON(&info, "volume", "inspect", "v1")
	vol := info["mountpoint"].(string)
	big := make([]byte, 2<<20)
	rand.Read(big)
	must(t, os.WriteFile(filepath.Join(vol, "big"), big, 0o600))
	writeFile(t, filepath.Join(vol, "small"), "hello\n")
	s1 := snapName(t, ctlA.ok("snapshot", "v1"), "v1")

	// B's host key is unknown to A: refused, with the fingerprint and the
	// command that trusts it.
	msg := a.ctl.sendFails("host key of 127.0.0.1:", "hostb", s1)
	if !strings.Contains(msg, hostB) || !strings.Contains(msg, "butterctl remote trust "+b.addr+" "+hostB) {
		t.Errorf("refusal of the unknown host key: %q, want the fingerprint %s and the trust command", msg, hostB)
	}
	b.ctl.fails(2, "is not of the form", "remote", "trust", "hostb", "SHA256")
	a.ctl.fails(2, "not "+hostA, "remote", "trust", "hostb", hostA) // the wrong fingerprint
	if key := strings.TrimSpace(a.ctl.ok("remote", "trust", "hostb", hostB)); !strings.HasPrefix(key, "ssh-ed25519 ") {
		t.Errorf("remote trust printed %q", key)
	}

	// B does not know A's client key: refused, saying how to add it.
	msg = a.ctl.sendFails("refused our client key", "hostb", s1)
	if !strings.Contains(msg, clientA) || !strings.Contains(msg, "butterctl remote add") {
		t.Errorf("refusal of the unknown client key: %q, want A's key and the command", msg)
	}
	b.ctl.ok("remote", "add", "hosta", "--key", clientA, "--push", "--volume", "v1")

	// 1. Full.
	if got, want := a.ctl.send("hostb", s1), `full: hostb holds no snapshot of volume "v1"`; got != want {
		t.Errorf("first send: %q, want %q", got, want)
	}
	sameFiles(t, a.snapPath(s1), b.snapPath(s1), "big", "small")

	// 2. Incremental, compressed: small, and the receiver has the change.
	writeFile(t, filepath.Join(vol, "new"), "second\n")
	s2 := snapName(t, ctlA.ok("snapshot", "v1"), "v1")
	var res struct {
		Summary   string `json:"summary"`
		BytesDone uint64 `json:"bytes_done"`
		Result    string `json:"result"`
	}
	r := ctlA.run("--json", "send", "--compress", "--bwlimit", "100M", "hostb", s2)
	if r.code != 0 {
		t.Fatalf("incremental send: exit %d, stderr %q", r.code, r.stderr)
	}
	must(t, json.Unmarshal([]byte(r.stdout), &res))
	if want := fmt.Sprintf(`incremental against %q, the newest snapshot hostb also holds (as %q)`, s1, s1); res.Summary != want || res.Result != "done" {
		t.Errorf("second send: %+v, want %q", res, want)
	}
	if res.BytesDone == 0 || res.BytesDone > 64<<10 {
		t.Errorf("incremental stream of %d bytes after a 7-byte change (full: over 2 MiB)", res.BytesDone)
	}
	sameFiles(t, a.snapPath(s2), b.snapPath(s2), "big", "new", "small")

	// 3. Nothing to do.
	if got := a.ctl.send("hostb", s2); !strings.HasPrefix(got, "no-op: hostb already holds "+fmt.Sprintf("%q", s2)) {
		t.Errorf("third send: %q, want a no-op", got)
	}
	if got := ctlLines(b.ctl.ok("snapshots", "v1")); len(got) != 2 || got[0] != s1 || got[1] != s2 {
		t.Errorf("B's snapshots: %q, want %s and %s", got, s1, s2)
	}

	// Purge, evaluated a day later, keeps on each side the snapshot the
	// two share, and says why; s3 on A is newer and not sent.
	s3 := snapName(t, ctlA.ok("snapshot", "v1"), "v1")
	at := time.Now().Add(24 * time.Hour).Format("2006-01-02T15:04:05")
	plan := ctlA.ok("purge", "--dry-run", "--at", at, "1h", "v1")
	for _, want := range []string{
		"delete " + s1 + "  (older than 1h)",
		"keep " + s2 + "  (newest snapshot shared with hostb (its next incremental parent) (the pattern alone: older than 1h))",
		"keep " + s3 + "  (newest snapshot",
	} {
		if !strings.Contains(plan, want) {
			t.Errorf("A's purge plan lacks %q:\n%s", want, plan)
		}
	}
	plan = b.ctl.ok("purge", "--dry-run", "--at", at, "1h", "v1")
	for _, want := range []string{
		"delete " + s1 + "  (older than 1h)",
		"keep " + s2 + "  (newest snapshot received from hosta (the pattern alone: older than 1h))",
	} {
		if !strings.Contains(plan, want) {
			t.Errorf("B's purge plan lacks %q:\n%s", want, plan)
		}
	}
	// A real purge now deletes nothing young, on either side.
	ctlA.ok("purge", "1h", "v1")
	b.ctl.ok("purge", "1h", "v1")
	if got := ctlLines(b.ctl.ok("snapshots", "v1")); len(got) != 2 {
		t.Errorf("B's snapshots after purge: %q", got)
	}

	// snapshots -l shows the peer on both sides.
	long := ctlA.ok("snapshots", "-l", "v1")
	if !regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(s2)+`\s+\S+ \S+\s+hostb$`).MatchString(long) ||
		!regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(s3)+`\s+\S+ \S+\s+-$`).MatchString(long) {
		t.Errorf("A's snapshots -l:\n%s", long)
	}
	long = b.ctl.ok("snapshots", "-l", "v1")
	if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(s2) + `\s+\S+ \S+\s+hosta \(from\)$`).MatchString(long) {
		t.Errorf("B's snapshots -l:\n%s", long)
	}

	// Peers and keys are open to read; changing them needs root or group butterd.
	nobody := a.ctl.nobody()
	nobody.ok("remote", "ls")
	nobody.ok("remote", "key")
	nobody.fails(4, "", "remote", "rm", "hostb")
	nobody.fails(4, "", "send", "hostb", s3)
	b.ctl.fails(3, `no such peer "nope"`, "remote", "rm", "nope")
	b.ctl.fails(1, `peer "hosta" already exists`, "remote", "add", "hosta", "--key", clientA)
	b.ctl.fails(2, "is not a public key line", "remote", "add", "hostc", "--key", "ssh-ed25519 nonsense")
	b.ctl.fails(2, `port "x" must be a number`, "remote", "add", "hostc", "--key", remote.AuthorizedKey(stranger.PublicKey()), "--address", "c:x")
	a.ctl.fails(2, "is neither a peer", "send", "no/such", s3)
	a.ctl.fails(1, "no such snapshot", "send", "hostb", "v1@2020-01-01T00:00:00.000000")
}
