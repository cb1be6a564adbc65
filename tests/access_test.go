package tests

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"butterd/dbusapi"
	"butterd/tests/testenv"
)

// policyReads lists the Manager methods the project's bus policy lets
// everyone call (allow rules of its default context naming a member).
func policyReads(t *testing.T) map[string]bool {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testenv.ModuleRoot(t), "packaging/dbus/io.butterd.volumes1.conf"))
	if err != nil {
		t.Fatal(err)
	}
	var conf struct {
		Policies []struct {
			Context string `xml:"context,attr"`
			Allow   []struct {
				Interface string `xml:"send_interface,attr"`
				Member    string `xml:"send_member,attr"`
			} `xml:"allow"`
		} `xml:"policy"`
	}
	if err := xml.Unmarshal(data, &conf); err != nil {
		t.Fatalf("the bus policy: %v", err)
	}
	reads := map[string]bool{}
	for _, p := range conf.Policies {
		for _, a := range p.Allow {
			if p.Context == "default" && a.Interface == managerIface && a.Member != "" {
				reads[a.Member] = true
			}
		}
	}
	if len(reads) == 0 {
		t.Fatal("the bus policy lets nobody read anything")
	}
	return reads
}

// managerMethods lists the Manager's methods and their input signatures,
// as butterd introspects them (from its own method table).
func (e *dbusEnv) managerMethods() map[string]string {
	e.t.Helper()
	out := e.busctlOK(asRoot, "introspect", "--xml-interface", busName, rootPath)
	var node struct {
		Interfaces []struct {
			Name    string `xml:"name,attr"`
			Methods []struct {
				Name string `xml:"name,attr"`
				Args []struct {
					Type      string `xml:"type,attr"`
					Direction string `xml:"direction,attr"`
				} `xml:"arg"`
			} `xml:"method"`
		} `xml:"interface"`
	}
	if err := xml.Unmarshal([]byte(out), &node); err != nil {
		e.t.Fatalf("introspection: %v\n%s", err, out)
	}
	methods := map[string]string{}
	for _, i := range node.Interfaces {
		if i.Name != managerIface {
			continue
		}
		for _, m := range i.Methods {
			sig := ""
			for _, a := range m.Args {
				if a.Direction != "out" {
					sig += a.Type
				}
			}
			methods[m.Name] = sig
		}
	}
	if len(methods) == 0 {
		e.t.Fatalf("no %s in the introspection:\n%s", managerIface, out)
	}
	return methods
}

// accessState is everything a changing call could change, read as root.
func (e *dbusEnv) accessState(snap string) string {
	e.t.Helper()
	var b strings.Builder
	for _, c := range [][]string{
		{"ListVolumes"}, {"ListSnapshots", "s", ""}, {"ListJobs"},
	} {
		b.WriteString(e.busctlOK(asRoot, append([]string{"--json=short", "call", busName, rootPath, managerIface}, c...)...))
	}
	b.WriteString(e.busctlOK(asRoot, "--json=short", "get-property", busName, e.snapshotPath(snap), snapIface, "Pinned"))
	for _, dir := range []string{"volumes", "snapshots", "received", "state/journal", "state/ssh"} {
		entries, err := os.ReadDir(filepath.Join(e.root, dir))
		if err != nil {
			e.t.Fatal(err)
		}
		for _, de := range entries {
			b.WriteString(dir + "/" + de.Name() + "\n")
		}
	}
	return b.String()
}

// As uid 65534, every Manager method that changes something is refused:
// by the bus under the real policy, by butterd itself under a policy that
// lets everyone through; every other method (the policy's reads) answers.
// The list of methods comes from butterd's introspection, so a new
// changing method is covered as soon as it exists (and fails this test
// until it is given arguments below). Job.Cancel and Properties.Set on
// objects are refused too, and nothing changes.
func TestAccessNobodyChangesNothing(t *testing.T) {
	for _, policy := range []struct {
		name  string
		extra []string
	}{{"real policy", nil}, {"permissive policy", []string{permissivePolicy}}} {
		t.Run(policy.name, func(t *testing.T) {
			e := startDBus(t, policy.extra...)
			e.ok(asRoot, "CreateVolume", "sa{ss}", "v1", "0")
			snap := jsonString(t, e.ok(asRoot, "CreateSnapshot", "s", "v1")[0])
			e.mount("v1", "m")
			job := jsonUint(t, e.ok(asRoot, "Purge", "sstt", "v1", "1h", "0", "0")[0])
			conn, err := dbus.Connect(e.bus.Address)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if j, err := dbusapi.NewClient(conn).WaitJob(uint32(job), time.Second, nil); err != nil || j.Result != "done" {
				t.Fatalf("purge job %d: %+v, %v", job, j, err)
			}
			jobStr := strconv.FormatUint(job, 10)
			args := map[string][]string{
				"CreateVolume":        {"evil", "0"},
				"RemoveVolume":        {"v1", "1"},
				"CloneVolume":         {"v1", "evil"},
				"ForgetMounts":        {"v1"},
				"CreateSnapshot":      {"v1"},
				"RemoveSnapshot":      {snap},
				"RestoreSnapshot":     {snap, "", "1"},
				"Purge":               {"v1", "1m", "0", "0"},
				"PinSnapshot":         {snap},
				"UnpinSnapshot":       {snap},
				"ImportSnapshot":      {"0", "0"},
				"ExportSnapshot":      {snap, "", "1", "0"},
				"CancelJob":           {jobStr},
				"SetSchedule":         {"snapshot", "v1", "", "3600000000", "", "0"},
				"RemoveSchedule":      {"snapshot", "v1", ""},
				"PauseSchedule":       {"snapshot", "v1", ""},
				"ResumeSchedule":      {"snapshot", "v1", ""},
				"PauseAllSchedules":   {},
				"ResumeAllSchedules":  {},
				"SendSnapshot":        {"127.0.0.1", snap, "0", "0"},
				"SyncVolume":          {"v1", "1", "127.0.0.1", "1"},
				"AddRemote":           {"evil", "", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEvil", "0", "3"},
				"RemoveRemote":        {"evil"},
				"TrustRemoteHost":     {"127.0.0.1", "SHA256:evil", "0"},
				"ReplicateVolume":     {"v1", "127.0.0.1", "0", "0"},
				"CreateGroupSnapshot": {"g1", "", "1", "v1", "0"},
				"RestoreGroup":        {"g1", "", "", "0"},
				"RemoveGroup":         {"g1"},
				// reads
				"ListRemotes": {}, "ListReplicas": {"v1"}, "GetOwnKeys": {}, "ListGroups": {},
				"GetVolume": {"v1"}, "ListVolumes": {}, "GetSnapshot": {snap}, "ListSnapshots": {"v1"},
				"GetJob": {jobStr}, "ListJobs": {}, "ListSchedules": {},
			}
			reads := policyReads(t)
			// butterd makes its keys on first use, which a read may be.
			e.ok(asRoot, "GetOwnKeys", "")
			before := e.accessState(snap)
			methods := e.managerMethods()
			names := make([]string, 0, len(methods))
			for m := range methods {
				names = append(names, m)
			}
			slices.Sort(names)
			bin := ""
			for _, m := range names {
				sig := methods[m]
				a, ok := args[m]
				if !ok {
					t.Errorf("Manager method %s(%s) is not tried: give it arguments in this test", m, sig)
					continue
				}
				if reads[m] {
					if r := e.call(asNobody, m, sig, a...); strings.Contains(r.ErrName, "AccessDenied") {
						t.Errorf("read %s as nobody: %s: %s", m, r.ErrName, r.ErrMsg)
					}
					continue
				}
				if strings.Contains(sig, "h") {
					// busctl passes no file descriptors: a Go client does.
					if bin == "" {
						bin = childBinary(t)
					}
					res := asUser(t, bin, childRequest{Address: e.bus.Address, Method: m, Sig: sig, Args: a})
					want := busDenied
					if policy.extra != nil {
						want = errPrefix + "AccessDenied"
					}
					if res.ErrName != want {
						t.Errorf("%s as nobody: %+v, want %s", m, res, want)
					}
					continue
				}
				if policy.extra == nil {
					e.deniedByBus(asNobody, m, sig, a...)
				} else {
					e.fails(asNobody, "AccessDenied", m+` changes `, m, sig, a...)
				}
			}
			// The methods of objects.
			for _, c := range []struct{ path, iface, member, sig string }{
				{rootPath + "/job/" + jobStr, busName + ".Job", "Cancel", ""},
				{e.snapshotPath(snap), "org.freedesktop.DBus.Properties", "Set", "ssv"},
			} {
				var a []string
				if c.sig == "ssv" {
					a = []string{snapIface, "Pinned", "b", "true"}
				}
				r := e.callAt(asNobody, c.path, c.iface, c.member, c.sig, a...)
				switch {
				case policy.extra == nil && (r.ErrName != busDenied || r.ErrFrom != "org.freedesktop.DBus"):
					t.Errorf("%s.%s as nobody: %s from %s (%s), want %s from the bus", c.iface, c.member, r.ErrName, r.ErrFrom, r.ErrMsg, busDenied)
				case policy.extra != nil && r.ErrName == "":
					t.Errorf("%s.%s as nobody succeeded", c.iface, c.member)
				}
			}
			if after := e.accessState(snap); after != before {
				t.Errorf("calls as nobody changed something:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
}

// childRequest is what the test binary, re-executed as another user, does:
// dial the plugin socket (Socket) or call a Manager method on the bus at
// Address with Args read by the Method's signature Sig as busctl reads
// them (an 'h' argument is /dev/null, opened by the child).
type childRequest struct {
	Socket  string   `json:"socket,omitempty"`
	Address string   `json:"address,omitempty"`
	Method  string   `json:"method,omitempty"`
	Sig     string   `json:"sig,omitempty"`
	Args    []string `json:"args,omitempty"`
}

// childResult is what the child saw: the error (with its D-Bus name) or
// the answer.
type childResult struct {
	ErrName string `json:"err_name,omitempty"`
	Err     string `json:"err,omitempty"`
	Answer  string `json:"answer,omitempty"`
}

// accessChild serves one childRequest and prints its childResult.
func accessChild(req string) int {
	var r childRequest
	var res childResult
	if err := json.Unmarshal([]byte(req), &r); err != nil {
		res.Err = err.Error()
	} else if r.Socket != "" {
		res = dialPlugin(r.Socket)
	} else {
		res = callManager(r)
	}
	json.NewEncoder(os.Stdout).Encode(res)
	return 0
}

func dialPlugin(socket string) childResult {
	c, err := net.Dial("unix", socket)
	if err != nil {
		return childResult{Err: err.Error()}
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /Plugin.Activate HTTP/1.0\r\nContent-Length: 0\r\n\r\n")
	data, err := io.ReadAll(c)
	if err != nil {
		return childResult{Err: err.Error()}
	}
	return childResult{Answer: string(data)}
}

func callManager(r childRequest) childResult {
	conn, err := dbus.Connect(r.Address)
	if err != nil {
		return childResult{Err: err.Error()}
	}
	defer conn.Close()
	var args []any
	a := r.Args
	for _, c := range r.Sig {
		if len(a) == 0 {
			return childResult{Err: "too few arguments for " + r.Sig}
		}
		switch c {
		case 's':
			args = append(args, a[0])
		case 't':
			n, _ := strconv.ParseUint(a[0], 10, 64)
			args = append(args, n)
		case 'u':
			n, _ := strconv.ParseUint(a[0], 10, 32)
			args = append(args, uint32(n))
		case 'h':
			f, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
			if err != nil {
				return childResult{Err: err.Error()}
			}
			defer f.Close()
			args = append(args, dbus.UnixFD(f.Fd()))
		default:
			return childResult{Err: fmt.Sprintf("type %q of %s is not handled here", c, r.Sig)}
		}
		a = a[1:]
	}
	call := conn.Object(busName, rootPath).Call(managerIface+"."+r.Method, 0, args...)
	if call.Err != nil {
		return childResult{ErrName: dbusapi.ErrorName(call.Err), Err: dbusapi.Message(call.Err)}
	}
	return childResult{Answer: fmt.Sprint(call.Body...)}
}

// childBinary copies the test binary where uid 65534 may run it.
func childBinary(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "butterd-access-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	bin := filepath.Join(dir, "tests.test")
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

// asUser runs the test binary bin (from childBinary) as uid and gid
// 65534, without supplementary groups, serving req.
func asUser(t *testing.T, bin string, req childRequest) childResult {
	t.Helper()
	data, _ := json.Marshal(req)
	cmd := exec.Command(bin)
	cmd.Dir = "/"
	cmd.Env = append(testenv.ButterdEnv(nil), "BUTTERD_ACCESS_CHILD="+string(data))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}}}
	out, err := cmd.Output()
	var res childResult
	if err != nil || json.Unmarshal(out, &res) != nil {
		t.Fatalf("child as uid 65534: %v: %q", err, out)
	}
	return res
}

// The plugin socket that butterd binds is its owner's alone (mode 0600,
// as butterd.socket makes it), even in a directory everyone may enter:
// uid 65534 cannot connect; root can.
func TestAccessPluginSocket(t *testing.T) {
	testenv.Root(t)
	dir, err := os.MkdirTemp("", "butterd-sock-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "btrfs.sock")
	d := testenv.StartButterd(t, filepath.Join(testenv.Btrfs(t), "root"), sock)
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode()&os.ModePerm != 0o600 || st.Uid != 0 {
		t.Errorf("plugin socket mode %v, owner %d: want 0600, root", fi.Mode()&os.ModePerm, st.Uid)
	}
	res := asUser(t, childBinary(t), childRequest{Socket: sock})
	if !strings.Contains(res.Err, "permission denied") {
		t.Errorf("uid 65534 dialing the plugin socket: %+v, want permission denied", res)
	}
	if st, m := d.Call("/Plugin.Activate", nil); st != 200 || m["Implements"] == nil {
		t.Errorf("root: Plugin.Activate: %d %v", st, m)
	}
}
