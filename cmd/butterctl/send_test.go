package main

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"butterd/dbusapi"
)

// send HOST SNAP starts the job with the flags given, waits for it and
// prints its summary; a failed job exits 1 with its error.
func TestSend(t *testing.T) {
	summary := `incremental against "` + snapA + `", the newest snapshot b also holds (as "` + snapA + `")`
	f := &fake{sendID: 5, ended: dbusapi.JobInfo{ID: 5, Kind: "send", Target: snapB, State: "done", Result: "done", BytesDone: 2048, Summary: summary}}
	r := runWith(t, f, "send", "b", snapB, "--compress", "--bwlimit", "10M")
	if r.code != 0 || r.stdout != summary+"\n" || !strings.HasPrefix(r.stderr, "job 5 started\n") || !strings.Contains(r.stderr, "job 5 done: 2.0 KiB in ") {
		t.Fatalf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if got, want := f.callList(), []string{`SendSnapshot("b", "` + snapB + `", 10485760, true)`, "WaitJob(5)"}; !slices.Equal(got, want) {
		t.Errorf("calls %q, want %q", got, want)
	}

	f = &fake{sendID: 5, ended: f.ended}
	r = runWith(t, f, "--json", "send", "10.0.0.2:2222", snapB)
	var got map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &got); r.code != 0 || err != nil {
		t.Fatalf("--json: exit %d, stdout %q: %v", r.code, r.stdout, err)
	}
	if got["summary"] != summary || got["host"] != "10.0.0.2:2222" || got["snapshot"] != snapB || got["job_id"] != 5.0 || got["bytes_done"] != 2048.0 || got["result"] != "done" {
		t.Errorf("--json: %v", got)
	}
	if calls := f.callList(); calls[0] != `SendSnapshot("10.0.0.2:2222", "`+snapB+`", 0, false)` {
		t.Errorf("calls %q", calls)
	}

	msg := `send of "` + snapB + `" to b (10.0.0.2:1122) failed: connect to 10.0.0.2: connection refused; nothing half-received is kept there: send again once b is reachable`
	f = &fake{sendID: 6, ended: dbusapi.JobInfo{ID: 6, Kind: "send", State: "failed", Result: "failed", Error: msg}}
	r = runWith(t, f, "send", "b", snapB)
	if r.code != 1 || r.stdout != "" || !strings.HasSuffix(r.stderr, "butterctl: send job 6 failed: "+msg+"\n") {
		t.Errorf("failed job: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

func TestParseRate(t *testing.T) {
	for s, want := range map[string]uint64{
		"0": 0, "1048576": 1 << 20, "512K": 512 << 10, "512k": 512 << 10, "10M": 10 << 20, "10MB": 10 << 20,
		"10MiB": 10 << 20, "10MiB/s": 10 << 20, "1.5G": 3 << 29, "2T": 2 << 40, "100B": 100, "100B/s": 100, "0.1": 1,
	} {
		if got, err := parseRate(s); err != nil || got != want {
			t.Errorf("parseRate(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	for _, s := range []string{"", "fast", "-1", "1e6", "0x10", "10 M", "10iB", "10Mi", "M", "1.", ".5M", "10P", "99999999T"} {
		if _, err := parseRate(s); err == nil {
			t.Errorf("parseRate(%q) accepted", s)
		}
	}
}

func TestRemoteVerbs(t *testing.T) {
	const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK1 butterd@a"
	for _, tc := range []struct {
		args   []string
		setup  func(*fake)
		calls  []string
		stdout string
	}{
		{args: []string{"remote", "add", "b", "--key", key},
			calls: []string{`AddRemote("b", "", "` + key + `", [], 0)`}},
		{args: []string{"remote", "add", "--address", "10.0.0.2:2222", "--push", "--pull", "--volume", "v1", "--volume=v2", "b", "--key=" + key},
			calls: []string{`AddRemote("b", "10.0.0.2:2222", "` + key + `", ["v1" "v2"], 3)`}},
		{args: []string{"remote", "add", "b", "--pull", "--key", key},
			calls: []string{`AddRemote("b", "", "` + key + `", [], 2)`}},
		{args: []string{"remote", "rm", "b"}, calls: []string{`RemoveRemote("b")`}},
		{args: []string{"remote", "remove", "b"}, calls: []string{`RemoveRemote("b")`}},
		{args: []string{"remote", "trust", "--replace", "b", "SHA256:abc"}, setup: func(f *fake) { f.trusted = "ssh-ed25519 AAAAhost" },
			calls: []string{`TrustRemoteHost("b", "SHA256:abc", true)`}, stdout: "ssh-ed25519 AAAAhost\n"},
		{args: []string{"remote", "key"}, setup: func(f *fake) { f.ownKeys = [2]string{key, "SHA256:host"} },
			calls: []string{`GetOwnKeys()`}, stdout: key + "\nSHA256:host\n"},
		{args: []string{"remote", "ls"}, setup: func(f *fake) {
			f.remotes = []dbusapi.RemoteRow{
				{Name: "a", PublicKey: key, Fingerprint: "SHA256:aaa"},
				{Name: "b", Address: "10.0.0.2", Fingerprint: "SHA256:bbb", Push: true, Pull: true, Volumes: []string{"v1", "v2"}},
			}
		}, calls: []string{`ListRemotes()`}, stdout: "NAME   ADDRESS    RIGHTS      VOLUMES   KEY\n" +
			"a      -          -           all       SHA256:aaa\n" +
			"b      10.0.0.2   push,pull   v1,v2     SHA256:bbb\n"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			f := &fake{}
			if tc.setup != nil {
				tc.setup(f)
			}
			r := runWith(t, f, tc.args...)
			if r.code != 0 || r.stderr != "" {
				t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
			}
			if !slices.Equal(f.calls, tc.calls) {
				t.Errorf("calls %q, want %q", f.calls, tc.calls)
			}
			if r.stdout != tc.stdout {
				t.Errorf("stdout %q, want %q", r.stdout, tc.stdout)
			}
		})
	}

	f := &fake{remotes: []dbusapi.RemoteRow{{Name: "a", PublicKey: key, Fingerprint: "SHA256:aaa", Push: true}}}
	r := runWith(t, f, "remote", "ls", "--json")
	var rows []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil || len(rows) != 1 || rows[0]["public_key"] != key ||
		rows[0]["push"] != true || rows[0]["address"] != "" || rows[0]["volumes"] == nil {
		t.Errorf("remote ls --json: %q (%v)", r.stdout, err)
	}
	// Removing the last peer stops the endpoint: remote rm says so.
	f = &fake{endpointStopped: true}
	r = runWith(t, f, "remote", "rm", "b")
	if r.code != 0 || r.stdout != "" || r.stderr != "replication endpoint stopped: no peer is left ('butterctl remote add' starts it again)\n" {
		t.Errorf("remote rm of the last peer: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	for stopped, want := range map[bool]string{true: "true", false: "false"} {
		f = &fake{endpointStopped: stopped}
		r = runWith(t, f, "remote", "rm", "--json", "b")
		if r.stdout != "{\n  \"name\": \"b\",\n  \"endpoint_stopped\": "+want+"\n}\n" || r.stderr != "" {
			t.Errorf("remote rm --json (endpoint stopped: %v): stdout %q, stderr %q", stopped, r.stdout, r.stderr)
		}
	}
	f = &fake{ownKeys: [2]string{key, "SHA256:host"}}
	r = runWith(t, f, "remote", "key", "--json")
	if r.stdout != "{\n  \"client_key\": \""+key+"\",\n  \"host_key_fingerprint\": \"SHA256:host\"\n}\n" {
		t.Errorf("remote key --json: %q", r.stdout)
	}
}

// snapshots -l adds the peers that hold each snapshot.
func TestSnapshotsLong(t *testing.T) {
	f := &fake{
		snapshots: []dbusapi.SnapshotRow{{Name: snapA, Volume: "v1"}, {Name: snapB, Volume: "v1"}},
		replicas: []dbusapi.ReplicaRow{{Snapshot: snapA, Peer: "b"}, {Snapshot: snapA, Peer: "c", Received: true, Newest: true},
			{Snapshot: snapB, Peer: "b", Newest: true}},
	}
	r := runWith(t, f, "snapshots", "-l", "v1")
	want := "NAME                            TIME   PEERS\n" +
		snapA + "   -      b, c (from)\n" +
		snapB + "   -      b\n"
	if r.code != 0 || r.stdout != want {
		t.Errorf("exit %d, stdout\n%s\nwant\n%s", r.code, r.stdout, want)
	}
	if got := f.callList(); !slices.Equal(got, []string{`ListSnapshots("v1")`, `ListReplicas("v1")`}) {
		t.Errorf("calls %q", got)
	}
	r = runWith(t, f, "snapshots", "-l", "--json")
	var rows []struct {
		Name  string `json:"name"`
		Peers []struct {
			Peer     string `json:"peer"`
			Received bool   `json:"received"`
			Newest   bool   `json:"newest"`
		} `json:"peers"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil || len(rows) != 2 || len(rows[0].Peers) != 2 ||
		!rows[0].Peers[1].Received || rows[1].Peers[0].Peer != "b" || !rows[1].Peers[0].Newest {
		t.Errorf("snapshots -l --json: %s (%v)", r.stdout, err)
	}
}

// replicate HOST VOL starts one job that snapshots and sends; it prints
// the job's summary, and --json names the new snapshot (the job's target).
func TestReplicate(t *testing.T) {
	summary := `snapshot "` + snapB + `" to b: full: b holds no snapshot of volume "v1"`
	f := &fake{sendID: 7, ended: dbusapi.JobInfo{ID: 7, Kind: "replicate", Target: snapB, State: "done", Result: "done", BytesDone: 4096, Summary: summary}}
	r := runWith(t, f, "replicate", "--compress", "--bwlimit", "1M", "b", "v1")
	if r.code != 0 || r.stdout != summary+"\n" || !strings.HasPrefix(r.stderr, "job 7 started\n") {
		t.Fatalf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if got, want := f.callList(), []string{`ReplicateVolume("v1", "b", 1048576, true)`, "WaitJob(7)"}; !slices.Equal(got, want) {
		t.Errorf("calls %q, want %q", got, want)
	}
	f = &fake{sendID: 7, ended: f.ended}
	r = runWith(t, f, "--json", "replicate", "b", "v1")
	var got map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &got); r.code != 0 || err != nil {
		t.Fatalf("--json: exit %d, stdout %q: %v", r.code, r.stdout, err)
	}
	if got["volume"] != "v1" || got["snapshot"] != snapB || got["host"] != "b" || got["summary"] != summary {
		t.Errorf("--json: %v", got)
	}
	msg := `replicate "v1": snapshot "` + snapB + `" taken and kept, but send of "` + snapB + `" to b (10.0.0.2:1122) failed: connection refused`
	f = &fake{sendID: 8, ended: dbusapi.JobInfo{ID: 8, Kind: "replicate", State: "failed", Result: "failed", Error: msg}}
	r = runWith(t, f, "replicate", "b", "v1")
	if r.code != 1 || r.stdout != "" || !strings.HasSuffix(r.stderr, "butterctl: replicate job 8 failed: "+msg+"\n") {
		t.Errorf("failed job: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if r := runWith(t, &fake{}, "replicate", "b"); r.code != 2 || !strings.Contains(r.stderr, "missing VOL") {
		t.Errorf("missing VOL: exit %d, stderr %q", r.code, r.stderr)
	}
}
