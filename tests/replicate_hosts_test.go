package tests

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"butterd/service/remote"
	"butterd/tests/testenv"
)

// Replication between real hosts (issue "Tests (real hosts, in CI)"): each
// host is a network namespace on a bridge with its own loop BTRFS, its own
// private system bus with the project's policy and its own butterd, whose
// SSH endpoint listens on the host's address. The test drives butterctl
// inside each host, as the operator of that host would.

// netHost is one of these hosts, with its butterctl and the name the other
// hosts give it as a peer.
type netHost struct {
	*testenv.HostDaemon
	ctl  *ctlEnv
	peer string // hosta, hostb, ...
}

// startNetHosts makes n hosts, each with a BTRFS of fsSize.
func startNetHosts(t *testing.T, n int, fsSize string) []*netHost {
	t.Helper()
	testenv.Command(t, "btrfs")
	out := make([]*netHost, n)
	for i, h := range testenv.Hosts(t, n) {
		hd := testenv.StartHost(t, h, testenv.HostOptions{FSSize: fsSize})
		out[i] = &netHost{HostDaemon: hd, ctl: &ctlEnv{t: t, bin: buildButterctl(t), env: hd.Env(), as: hd.Prefix()},
			peer: "host" + string(rune('a'+i))}
	}
	return out
}

// pairHosts makes x and y peers of each other, as their operators would:
// each adds the other (its address, its client key, push and pull on all
// volumes) and trusts the host key fingerprint the other's `remote key`
// prints.
func pairHosts(t *testing.T, x, y *netHost) {
	t.Helper()
	clientX, hostX := x.ctl.remoteKeys()
	clientY, hostY := y.ctl.remoteKeys()
	x.ctl.ok("remote", "add", y.peer, "--address", y.Addr, "--key", clientY, "--push", "--pull")
	y.ctl.ok("remote", "add", x.peer, "--address", x.Addr, "--key", clientX, "--push", "--pull")
	x.ctl.ok("remote", "trust", y.peer, hostY)
	y.ctl.ok("remote", "trust", x.peer, hostX)
}

func (h *netHost) snapPath(name string) string { return filepath.Join(h.DataRoot, "snapshots", name) }
func (h *netHost) volPath(name string) string  { return filepath.Join(h.DataRoot, "volumes", name) }

// snapshots lists the snapshots of volume, or all of them when volume is "".
func (h *netHost) snapshots(volume string) []string {
	if volume == "" {
		return ctlLines(h.ctl.ok("snapshots"))
	}
	return ctlLines(h.ctl.ok("snapshots", volume))
}

// sendResult is what `butterctl --json send` prints.
type sendResult struct {
	JobID     uint32 `json:"job_id"`
	Summary   string `json:"summary"`
	BytesDone uint64 `json:"bytes_done"`
	Result    string `json:"result"`
}

func (h *netHost) sendJSON(t *testing.T, args ...string) sendResult {
	t.Helper()
	var res sendResult
	r := h.ctl.run(append([]string{"--json", "send"}, args...)...)
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &res) != nil || res.Result != "done" {
		t.Fatalf("butterctl --json send %s: exit %d, stdout %q, stderr %q", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return res
}

// jobsSettled waits (a minute at most) until no job of h is queued or
// running: a receiving host cleans up after a cut link on its own time.
func (h *netHost) jobsSettled(t *testing.T) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		var jobs []struct {
			ID    uint32 `json:"id"`
			Kind  string `json:"kind"`
			State string `json:"state"`
		}
		h.ctl.okJSON(&jobs, "jobs")
		busy := false
		for _, j := range jobs {
			busy = busy || j.State == "queued" || j.State == "running"
		}
		if !busy {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("jobs of %s still running after a minute: %+v", h.peer, jobs)
		}
	}
}

// sums maps the path (relative to dir) of every regular file under dir
// to the SHA-256 of its content.
func sums(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	must(t, filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		rel, _ := filepath.Rel(dir, path)
		out[rel] = hex.EncodeToString(sum[:])
		return nil
	}))
	return out
}

// sameSums requires two trees to hold the same files with the same bytes.
func sameSums(t *testing.T, want, got string) {
	t.Helper()
	w, g := sums(t, want), sums(t, got)
	if !maps.Equal(w, g) {
		t.Errorf("%s holds %v, want the files of %s: %v", got, g, want, w)
	}
}

// fill writes a file of n random bytes.
func fill(t *testing.T, path string, n int) {
	t.Helper()
	b := make([]byte, n)
	rand.Read(b)
	must(t, os.WriteFile(path, b, 0o600))
}

// Full then incremental send, failback, sync from two hosts, export and
// import between hosts.
func TestReplicateHosts(t *testing.T) {
	t.Parallel() // with the faults test, which mostly waits for keepalives
	hosts := startNetHosts(t, 3, "")
	a, b, c := hosts[0], hosts[1], hosts[2]
	pairHosts(t, a, b)
	pairHosts(t, a, c)

	// 1. A full send A -> B, then a small incremental one, compressed.
	a.ctl.ok("volume", "create", "v1")
	va := a.volPath("v1")
	fill(t, filepath.Join(va, "big"), 3<<20)
	writeFile(t, filepath.Join(va, "small"), "hello\n")
	s1 := snapName(t, a.ctl.ok("snapshot", "v1"), "v1")
	full := a.sendJSON(t, "hostb", s1)
	if want := `full: hostb holds no snapshot of volume "v1"`; full.Summary != want || full.BytesDone < 3<<20 {
		t.Errorf("first send: %+v, want %q and the 3 MiB streamed", full, want)
	}
	sameSums(t, a.snapPath(s1), b.snapPath(s1))

	writeFile(t, filepath.Join(va, "new"), "second\n")
	s2 := snapName(t, a.ctl.ok("snapshot", "v1"), "v1")
	incr := a.sendJSON(t, "--compress", "hostb", s2)
	if want := fmt.Sprintf(`incremental against %q, the newest snapshot hostb also holds (as %q)`, s1, s1); incr.Summary != want {
		t.Errorf("second send: %q, want %q", incr.Summary, want)
	}
	var job struct {
		Kind      string `json:"kind"`
		State     string `json:"state"`
		BytesDone uint64 `json:"bytes_done"`
	}
	a.ctl.okJSON(&job, "jobs", strconv.Itoa(int(incr.JobID)))
	if job.Kind != "send" || job.State != "done" || job.BytesDone == 0 || job.BytesDone > 64<<10 || job.BytesDone != incr.BytesDone {
		t.Errorf("job %d of the incremental send: %+v (send said %d bytes); want a stream far below the full one's %d bytes",
			incr.JobID, job, incr.BytesDone, full.BytesDone)
	}
	sameSums(t, a.snapPath(s2), b.snapPath(s2))

	// Failback: B takes the volume over from s2, changes it and sends its
	// snapshot back; A receives it incrementally against s2.
	b.ctl.ok("restore", s2)
	vb := b.volPath("v1")
	writeFile(t, filepath.Join(vb, "small"), "changed on B\n")
	writeFile(t, filepath.Join(vb, "from-b"), "made on B\n")
	s3 := snapName(t, b.ctl.ok("snapshot", "v1"), "v1")
	back := b.sendJSON(t, "hosta", s3)
	if want := fmt.Sprintf(`incremental against %q, the newest snapshot hosta also holds (as %q)`, s2, s2); back.Summary != want || back.BytesDone > 64<<10 {
		t.Errorf("failback send: %+v, want %q and a small stream", back, want)
	}
	sameSums(t, b.snapPath(s3), a.snapPath(s3))
	if got := readFile(t, filepath.Join(a.snapPath(s3), "small")); got != "changed on B\n" {
		t.Errorf("A's copy of %s: small holds %q", s3, got)
	}
	if got := a.snapshots("v1"); !slices.Equal(got, []string{s1, s2, s3}) {
		t.Errorf("A's snapshots: %q, want %q", got, []string{s1, s2, s3})
	}
	long := a.ctl.ok("snapshots", "-l", "v1")
	for _, want := range []string{s2 + " ", "hostb\n", "hostb (from)\n"} {
		if !strings.Contains(long, want) {
			t.Errorf("A's snapshots -l lacks %q:\n%s", want, long)
		}
	}

	// replicate: a fresh snapshot of A's volume, sent to B in the same job,
	// incrementally against s3, which both hold.
	writeFile(t, filepath.Join(va, "replicated"), "taken by replicate\n")
	var rep struct {
		Result, Volume, Snapshot, Summary string
		JobID                             uint32 `json:"job_id"`
	}
	rr := a.ctl.run("--json", "replicate", "-q", "hostb", "v1")
	if err := json.Unmarshal([]byte(rr.stdout), &rep); rr.code != 0 || err != nil {
		t.Fatalf("butterctl --json replicate hostb v1: exit %d, %v, stderr %q", rr.code, err, rr.stderr)
	}
	if rep.Result != "done" || rep.Volume != "v1" || !strings.HasPrefix(rep.Snapshot, "v1@") ||
		!strings.Contains(rep.Summary, fmt.Sprintf(`incremental against %q`, s3)) {
		t.Errorf("butterctl replicate hostb v1: %+v, want a new snapshot sent incrementally against %s", rep, s3)
	}
	if got := readFile(t, filepath.Join(b.snapPath(rep.Snapshot), "replicated")); got != "taken by replicate\n" {
		t.Errorf("B's copy of %s: replicated holds %q", rep.Snapshot, got)
	}
	sameSums(t, a.snapPath(rep.Snapshot), b.snapPath(rep.Snapshot))

	// 2. Sync of A's volume from B and C, each with newer files of its own.
	now := time.Now()
	put(t, filepath.Join(va, "small"), "older on A\n", now.Add(-time.Hour))
	put(t, filepath.Join(vb, "only-b"), "newer file from B\n", now.Add(-10*time.Minute))
	c.ctl.ok("volume", "create", "v1")
	vc := c.volPath("v1")
	put(t, filepath.Join(vc, "small"), "newest small, from C\n", now)
	put(t, filepath.Join(vc, "dir/only-c"), "file from C\n", now.Add(-5*time.Minute))
	r := a.ctl.run("sync", "v1", "hostb", "hostc")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "safety snapshot v1@") ||
		!strings.Contains(r.stdout, "hostb: 2 created, 1 updated, 2 unchanged") || !strings.Contains(r.stdout, "hostc: 2 created, 1 updated, 0 unchanged") {
		t.Errorf("butterctl sync v1 hostb hostc: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	for name, want := range map[string]string{
		"small": "newest small, from C\n", "only-b": "newer file from B\n", "from-b": "made on B\n",
		"dir/only-c": "file from C\n", "new": "second\n",
	} {
		if got := readFile(t, filepath.Join(va, name)); got != want {
			t.Errorf("A's v1: %s holds %q after the sync, want %q", name, got, want)
		}
	}
	sameContent(t, a.snapPath(s1), va, "big")
	if got := a.snapshots("v1"); len(got) != 5 {
		t.Errorf("A's snapshots after the sync: %q, want s1, s2, s3, the replicated one and one safety snapshot", got)
	}

	// 3. Export on A, import on C: a full stream, then an incremental one;
	// the files travel from host to host as an operator copies them.
	out, in := t.TempDir(), t.TempDir()
	a.ctl.exportOK(s2, filepath.Join(out, "full"))
	a.ctl.exportOK("--parent", s2, s3, filepath.Join(out, "incr"))
	for _, f := range []string{"full", "incr"} {
		data, err := os.ReadFile(filepath.Join(out, f))
		must(t, err)
		must(t, os.WriteFile(filepath.Join(in, f), data, 0o600))
	}
	for _, imp := range [][2]string{{"full", s2}, {"incr", s3}} {
		f, want := imp[0], imp[1]
		if r := c.ctl.run("import", filepath.Join(in, f)); r.code != 0 || r.stdout != want+"\n" || !jobStarted.MatchString(r.stderr) {
			t.Fatalf("import of the %s stream on C: exit %d, stdout %q, stderr %q; want %s", f, r.code, r.stdout, r.stderr, want)
		}
	}
	sameSums(t, a.snapPath(s2), c.snapPath(s2))
	sameSums(t, a.snapPath(s3), c.snapPath(s3))
	noImportLeftovers(t, c.DataRoot)

	// Streams damaged on the way are refused, and change nothing.
	data, err := os.ReadFile(filepath.Join(in, "full"))
	must(t, err)
	s4 := snapName(t, a.ctl.ok("snapshot", "v1"), "v1")
	a.ctl.exportOK(s4, filepath.Join(out, "s4"))
	data4, err := os.ReadFile(filepath.Join(out, "s4"))
	must(t, err)
	corrupt := bytes.Clone(data4)
	corrupt[40] ^= 1
	before := c.snapshots("")
	beforeVols := c.ctl.ok("volume", "ls", "-q")
	for _, bad := range []struct {
		name string
		data []byte
		want string
	}{
		{"truncated", data4[:len(data4)/2], "btrfs receive"},
		{"cut-header", data[:20], "truncated in its stream header"},
		{"corrupt", corrupt, "CRC32C"},
	} {
		path := filepath.Join(in, bad.name)
		must(t, os.WriteFile(path, bad.data, 0o600))
		r := c.ctl.run("import", path)
		if r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, bad.want) {
			t.Errorf("import of a %s stream: exit %d, stdout %q, stderr %q; want it refused, saying %q", bad.name, r.code, r.stdout, r.stderr, bad.want)
		}
		noImportLeftovers(t, c.DataRoot)
	}
	if got := c.snapshots(""); !slices.Equal(got, before) {
		t.Errorf("C's snapshots after refused imports: %q, were %q", got, before)
	}
	if got := c.ctl.ok("volume", "ls", "-q"); got != beforeVols {
		t.Errorf("C's volumes after refused imports: %q, were %q", got, beforeVols)
	}
}

// sendInBackground starts `butterctl send --bwlimit RATE HOST SNAP` in h
// and returns its result once it ends (a channel), the command's output
// collected.
func (h *netHost) sendInBackground(t *testing.T, rate, to, snap string) <-chan ctlResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	cmd := h.Butterctl(ctx, t, "send", "--bwlimit", rate, to, snap)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	must(t, cmd.Start())
	done := make(chan ctlResult, 1)
	go func() {
		defer cancel()
		err := cmd.Wait()
		r := ctlResult{stdout: stdout.String(), stderr: stderr.String()}
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			r.code = ee.ExitCode()
		} else if err != nil {
			r.code = -1
		}
		done <- r
	}()
	return done
}

// receiving waits until h has begun to receive: something in received/.
func (h *netHost) receiving(t *testing.T) {
	t.Helper()
	receivingIn(t, h.DataRoot)
}

// receivingIn waits until the butterd of dataRoot has begun to receive:
// something in received/.
func receivingIn(t *testing.T, dataRoot string) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		if entries, _ := os.ReadDir(filepath.Join(dataRoot, "received")); len(entries) > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s received nothing within a minute", dataRoot)
		}
	}
}

// sendFailed waits for a background send and requires it to have failed,
// as a job, with one error line that holds want; it returns that line.
func sendFailed(t *testing.T, done <-chan ctlResult, want string) string {
	t.Helper()
	var r ctlResult
	select {
	case r = <-done:
	case <-time.After(2 * time.Minute):
		t.Fatalf("the send did not end within 2 minutes of the fault")
	}
	lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
	last := lines[len(lines)-1]
	if r.code != 1 || r.stdout != "" || !strings.HasPrefix(last, "butterctl: send job ") || !strings.Contains(last, " failed: ") ||
		!strings.Contains(last, want) {
		t.Fatalf("send after the fault: exit %d, stdout %q, stderr %q; want the job failed, saying %q", r.code, r.stdout, r.stderr, want)
	}
	t.Logf("the send failed as it should: %s", last)
	return last
}

// Faults: a link cut and a receiver killed in the middle of a transfer, a
// re-keyed host, a stranger's key, requests that are not replication
// operations.
func TestReplicateHostsFaults(t *testing.T) {
	t.Parallel()
	hosts := startNetHosts(t, 2, "512M")
	a, b := hosts[0], hosts[1]
	pairHosts(t, a, b)
	a.ctl.ok("volume", "create", "v1")
	va := a.volPath("v1")
	writeFile(t, filepath.Join(va, "small"), "hello\n")
	p1 := snapName(t, a.ctl.ok("snapshot", "v1"), "v1")
	a.ctl.send("hostb", p1)

	// noHalfReceived requires B to hold nothing of the broken transfer.
	noHalfReceived := func(want ...string) {
		t.Helper()
		b.jobsSettled(t)
		noImportLeftovers(t, b.DataRoot)
		if got := b.snapshots("v1"); !slices.Equal(got, want) {
			t.Errorf("B's snapshots: %q, want %q", got, want)
		}
	}

	// The link of B goes down in the middle of a transfer: the job fails
	// (keepalives), B keeps nothing of it, and once the link is back a
	// retry sends incrementally against the parent both still hold.
	fill(t, filepath.Join(va, "big"), 24<<20)
	p2 := snapName(t, a.ctl.ok("snapshot", "v1"), "v1")
	done := a.sendInBackground(t, "2M", "hostb", p2)
	b.receiving(t)
	time.Sleep(time.Second)
	b.LinkDown()
	sendFailed(t, done, "the link is down; nothing half-received is kept there")
	b.LinkUp()
	noHalfReceived(p1)
	if got := a.snapshots("v1"); !slices.Equal(got, []string{p1, p2}) {
		t.Errorf("A's snapshots: %q", got)
	}
	want := fmt.Sprintf("incremental against %q", p1)
	if got := a.ctl.send("hostb", p2); !strings.HasPrefix(got, want) {
		t.Errorf("retry after the link came back: %q, want %s...", got, want)
	}
	sameSums(t, a.snapPath(p2), b.snapPath(p2))

	// B's butterd is killed in the middle of a transfer: the job fails at
	// once; B, started again, has cleaned up what it was receiving.
	fill(t, filepath.Join(va, "big2"), 16<<20)
	p3 := snapName(t, a.ctl.ok("snapshot", "v1"), "v1")
	done = a.sendInBackground(t, "2M", "hostb", p3)
	b.receiving(t)
	time.Sleep(time.Second)
	b.Butterd.Kill()
	sendFailed(t, done, "the connection ended before it finished")
	b.Restart(t)
	noHalfReceived(p1, p2)
	want = fmt.Sprintf("incremental against %q", p2)
	if got := a.ctl.send("hostb", p3); !strings.HasPrefix(got, want) {
		t.Errorf("retry after B came back: %q, want %s...", got, want)
	}
	sameSums(t, a.snapPath(p3), b.snapPath(p3))

	// B is reinstalled with a new host key: A refuses it, shows its
	// fingerprint and the command that replaces the old one.
	must(t, b.Butterd.Stop())
	must(t, os.Remove(filepath.Join(b.DataRoot, "state", "ssh", "host_key")))
	b.Restart(t)
	_, newFP := b.ctl.remoteKeys()
	p4 := snapName(t, a.ctl.ok("snapshot", "v1"), "v1")
	msg := a.ctl.sendFails("has CHANGED", "hostb", p4)
	if !strings.Contains(msg, newFP) || !strings.Contains(msg, "butterctl remote trust --replace "+b.Addr+" "+newFP) {
		t.Errorf("refusal of B's new host key: %q, want its fingerprint %s and the trust --replace command", msg, newFP)
	}
	noHalfReceived(p1, p2, p3)
	a.ctl.fails(1, "", "remote", "trust", "hostb", newFP) // known with another key: --replace needed
	a.ctl.ok("remote", "trust", "--replace", "hostb", newFP)
	want = fmt.Sprintf("incremental against %q", p3)
	if got := a.ctl.send("hostb", p4); !strings.HasPrefix(got, want) {
		t.Errorf("send after trusting B's new key: %q, want %s...", got, want)
	}

	// Straight SSH to B's endpoint from A.
	hostKey, err := remote.LoadOrCreateKey(filepath.Join(b.DataRoot, "state", "ssh", "host_key"))
	must(t, err)
	dial := func(key ssh.Signer) (*ssh.Client, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		addr := net.JoinHostPort(b.Addr, strconv.Itoa(testenv.SSHPort))
		conn, err := a.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		cc, chans, reqs, err := ssh.NewClientConn(conn, addr, &ssh.ClientConfig{User: "butterd", Auth: []ssh.AuthMethod{ssh.PublicKeys(key)},
			HostKeyCallback: ssh.FixedHostKey(hostKey.PublicKey()), Timeout: 10 * time.Second})
		if err != nil {
			conn.Close()
			return nil, err
		}
		c := ssh.NewClient(cc, chans, reqs)
		t.Cleanup(func() { c.Close() })
		return c, nil
	}
	// A key that is no peer's is refused.
	stranger, err := remote.LoadOrCreateKey(filepath.Join(t.TempDir(), "key"))
	must(t, err)
	if _, err := dial(stranger); err == nil || !strings.Contains(err.Error(), "unable to authenticate") {
		t.Errorf("SSH with a key that is no peer's: %v, want authentication refused", err)
	}
	// A peer's key opens a connection, but nothing except the operations.
	clientA, err := remote.LoadOrCreateKey(filepath.Join(a.DataRoot, "state", "ssh", "client_key"))
	must(t, err)
	client, err := dial(clientA)
	if err != nil {
		t.Fatalf("SSH with A's client key: %v", err)
	}
	for _, req := range []struct {
		name, kind string
		payload    any
		want       string
	}{
		{"shell", "shell", nil, "shell refused"},
		{"exec ls", "exec", struct{ Command string }{"ls"}, `"ls" is not a butterd operation`},
		{"subsystem sftp", "subsystem", struct{ Name string }{"sftp"}, "subsystem refused"},
	} {
		status, stdout, stderr := sessionRequest(t, client, req.kind, req.payload)
		if status != 2 || stdout != "" || !strings.Contains(stderr, req.want) {
			t.Errorf("%s on B's endpoint: exit status %d, stdout %q, stderr %q; want exit status 2 and %q", req.name, status, stdout, stderr, req.want)
		}
		t.Logf("%s refused: %s", req.name, strings.TrimSpace(stderr))
	}
	if _, err := client.Dial("tcp", b.Addr+":22"); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("port forwarding through B's endpoint: %v, want it refused", err)
	}
	noHalfReceived(p1, p2, p3, p4)
}

// sessionRequest opens a session channel on c, sends one request of kind
// with payload (ssh.Marshal'ed, none when nil), and returns the exit
// status (-1 when none came), the channel's output and its stderr.
func sessionRequest(t *testing.T, c *ssh.Client, kind string, payload any) (int, string, string) {
	t.Helper()
	ch, reqs, err := c.OpenChannel("session", nil)
	if err != nil {
		t.Fatalf("open a session: %v", err)
	}
	defer ch.Close()
	var data []byte
	if payload != nil {
		data = ssh.Marshal(payload)
	}
	status := make(chan int, 1)
	go func() {
		code := -1
		for r := range reqs {
			var msg struct{ Status uint32 }
			if r.Type == "exit-status" && ssh.Unmarshal(r.Payload, &msg) == nil {
				code = int(msg.Status)
			}
			if r.WantReply {
				r.Reply(false, nil)
			}
		}
		status <- code
	}()
	if _, err := ch.SendRequest(kind, true, data); err != nil {
		t.Fatalf("%s request: %v", kind, err)
	}
	var stdout, stderr bytes.Buffer
	done := make(chan struct{})
	go func() { stderr.ReadFrom(ch.Stderr()); close(done) }()
	stdout.ReadFrom(ch)
	<-done
	select {
	case code := <-status:
		return code, stdout.String(), stderr.String()
	case <-time.After(10 * time.Second):
		t.Fatalf("%s request: the channel did not close", kind)
		return 0, "", ""
	}
}
