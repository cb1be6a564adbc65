package tests

import (
	"bufio"
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"butterd/tests/testenv"
)

// The names of DESIGN.md, spelled out here rather than taken from dbusapi:
// these tests see butterd from the outside, as busctl does.
const (
	busName      = "io.butterd.volumes1"
	rootPath     = "/io/butterd/volumes1"
	managerIface = busName + ".Manager"
	volumeIface  = busName + ".Volume"
	snapIface    = busName + ".Snapshot"
	errPrefix    = busName + ".Error."
	busDenied    = "org.freedesktop.DBus.Error.AccessDenied"
)

// asNobody runs a command as uid and gid 65534 without supplementary
// groups; asRoot (nil) runs it as the test.
var (
	asRoot   []string
	asNobody = []string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"}
)

// permissivePolicy lets everyone call every method of butterd: the bus no
// longer protects it, butterd must.
const permissivePolicy = `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <policy context="default">
    <allow send_destination="io.butterd.volumes1"/>
  </policy>
</busconfig>
`

// dbusEnv is one test's private system bus with the real policy, a butterd
// on a fresh BTRFS serving on it, and a `busctl monitor` that records
// every message on the bus (errors with their names, signals).
type dbusEnv struct {
	t     *testing.T
	bus   *testenv.Bus
	d     *testenv.Daemon
	root  string // butterd's data root
	mon   *busMonitor
	owner string // butterd's unique name on the bus
}

func startDBus(t *testing.T, extraPolicies ...string) *dbusEnv {
	t.Helper()
	testenv.Root(t)
	return startDBusAt(t, filepath.Join(testenv.Btrfs(t), "root"), extraPolicies)
}

// startDBusAt is startDBus on a given data root, with more butterd flags.
func startDBusAt(t *testing.T, root string, extraPolicies []string, args ...string) *dbusEnv {
	t.Helper()
	testenv.Root(t)
	testenv.Command(t, "busctl")
	testenv.Command(t, "setpriv")
	bus := testenv.StartBus(t, extraPolicies...)
	sock := filepath.Join(t.TempDir(), "btrfs.sock")
	d := testenv.StartButterdWith(t, root, sock, testenv.ButterdOptions{Bus: bus, Args: args})
	e := &dbusEnv{t: t, bus: bus, d: d, root: root}
	e.mon = startMonitor(t, bus)
	e.owner = jsonString(t, e.busctlJSON(asRoot, "call", "org.freedesktop.DBus", "/org/freedesktop/DBus",
		"org.freedesktop.DBus", "GetNameOwner", "s", busName)[0])
	pid := jsonUint(t, e.busctlJSON(asRoot, "call", "org.freedesktop.DBus", "/org/freedesktop/DBus",
		"org.freedesktop.DBus", "GetConnectionUnixProcessID", "s", busName)[0])
	if int(pid) != d.Pid {
		t.Fatalf("%s is owned by pid %d, not by our butterd (pid %d)", busName, pid, d.Pid)
	}
	return e
}

// busctl runs busctl on the test's bus, as the user as says.
func (e *dbusEnv) busctl(as []string, args ...string) (stdout, stderr string, err error) {
	return runBusctl(e.bus, as, args...)
}

func runBusctl(bus *testenv.Bus, as []string, args ...string) (stdout, stderr string, err error) {
	argv := append(append([]string{}, as...), "busctl", "--address="+bus.Address, "--no-pager")
	argv = append(argv, args...)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = testenv.ButterdEnv(bus)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	return out.String(), strings.TrimSpace(errb.String()), err
}

// busctlOK is busctl that must succeed; it returns standard output.
func (e *dbusEnv) busctlOK(as []string, args ...string) string {
	e.t.Helper()
	out, stderr, err := e.busctl(as, args...)
	if err != nil {
		e.t.Fatalf("busctl %s: %v: %s", strings.Join(args, " "), err, stderr)
	}
	return out
}

// busctlJSON runs busctl --json=short that must succeed and returns the
// "data" of its answer: the values of a method return, or the value of a
// property.
func (e *dbusEnv) busctlJSON(as []string, args ...string) []json.RawMessage {
	e.t.Helper()
	out := e.busctlOK(as, append([]string{"--json=short"}, args...)...)
	var v struct {
		Type string          `json:"type"`
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		e.t.Fatalf("busctl %s printed %q: %v", strings.Join(args, " "), out, err)
	}
	if strings.HasPrefix(string(v.Data), "[") && args[0] == "call" {
		var vals []json.RawMessage
		if err := json.Unmarshal(v.Data, &vals); err != nil {
			e.t.Fatal(err)
		}
		return vals
	}
	return []json.RawMessage{v.Data}
}

// reply is what a method call through busctl got.
type reply struct {
	Values  []json.RawMessage // the values returned
	Stderr  string            // busctl's message on failure
	ErrName string            // the D-Bus error name, "" for a method return
	ErrMsg  string            // the error's message
	ErrFrom string            // who sent the error: butterd's unique name or the bus
}

// call calls a Manager method with busctl and reads the answer's name and
// message from the bus monitor (busctl prints only the message).
func (e *dbusEnv) call(as []string, method, sig string, args ...string) reply {
	e.t.Helper()
	return e.callAt(as, rootPath, managerIface, method, sig, args...)
}

// callAt is call for a method of any interface of any of butterd's objects.
func (e *dbusEnv) callAt(as []string, path, iface, method, sig string, args ...string) reply {
	e.t.Helper()
	from := e.mon.mark()
	argv := []string{"--json=short", "call", busName, path, iface, method}
	if sig != "" {
		argv = append(append(argv, sig), args...)
	}
	out, stderr, err := e.busctl(as, argv...)
	callMsg, ans := e.mon.answerTo(from, busName, iface, method)
	var r reply
	r.Stderr = stderr
	switch ans.Type {
	case "method_return":
		if err != nil {
			e.t.Fatalf("%s: the bus carried a method return but busctl failed: %v: %s", method, err, stderr)
		}
		var v struct {
			Data []json.RawMessage `json:"data"`
		}
		if out != "" {
			if jerr := json.Unmarshal([]byte(out), &v); jerr != nil {
				e.t.Fatalf("%s: busctl printed %q: %v", method, out, jerr)
			}
		}
		r.Values = v.Data
	case "error":
		if err == nil {
			e.t.Fatalf("%s: the bus carried error %s but busctl succeeded", method, ans.ErrorName)
		}
		r.ErrName, r.ErrFrom = ans.ErrorName, ans.Sender
		if args := ans.args(e.t); len(args) > 0 {
			json.Unmarshal(args[0], &r.ErrMsg)
		}
	default:
		e.t.Fatalf("%s: answer of type %q to call %+v", method, ans.Type, callMsg)
	}
	return r
}

// ok calls a method that must succeed and returns its values.
func (e *dbusEnv) ok(as []string, method, sig string, args ...string) []json.RawMessage {
	e.t.Helper()
	r := e.call(as, method, sig, args...)
	if r.ErrName != "" {
		e.t.Fatalf("%s %s %q: %s: %s", method, sig, args, r.ErrName, r.ErrMsg)
	}
	return r.Values
}

// fails calls a method that butterd must refuse with error errPrefix+name
// whose message contains want; busctl must print butterd's message.
func (e *dbusEnv) fails(as []string, name, want, method, sig string, args ...string) reply {
	e.t.Helper()
	r := e.call(as, method, sig, args...)
	switch {
	case r.ErrName == "":
		e.t.Errorf("%s %q succeeded (%s), want %s", method, args, r.Values, errPrefix+name)
	case r.ErrName != errPrefix+name:
		e.t.Errorf("%s %q: error %s (%s), want %s", method, args, r.ErrName, r.ErrMsg, errPrefix+name)
	case r.ErrFrom != e.owner:
		e.t.Errorf("%s %q: error %s sent by %s, not by butterd (%s)", method, args, r.ErrName, r.ErrFrom, e.owner)
	case !strings.Contains(r.ErrMsg, want):
		e.t.Errorf("%s %q: message %q does not say %q", method, args, r.ErrMsg, want)
	case r.Stderr != "Call failed: "+r.ErrMsg:
		e.t.Errorf("%s %q: busctl printed %q, want butterd's message %q", method, args, r.Stderr, r.ErrMsg)
	}
	return r
}

// deniedByBus calls a method that the bus policy must refuse before it
// reaches butterd.
func (e *dbusEnv) deniedByBus(as []string, method, sig string, args ...string) {
	e.t.Helper()
	r := e.call(as, method, sig, args...)
	if r.ErrName != busDenied || r.ErrFrom != "org.freedesktop.DBus" {
		e.t.Errorf("%s %q as %q: %q from %q (%s), want %s from the bus", method, args, as, r.ErrName, r.ErrFrom, r.ErrMsg, busDenied)
	}
	if !strings.Contains(r.ErrMsg, `member="`+method+`"`) || !strings.Contains(r.ErrMsg, "uid=65534") {
		e.t.Errorf("%s: the bus's refusal does not name the call and the caller: %q", method, r.ErrMsg)
	}
}

// prop reads one property with busctl get-property.
func (e *dbusEnv) prop(as []string, path, iface, name string) json.RawMessage {
	e.t.Helper()
	return e.busctlJSON(as, "get-property", busName, path, iface, name)[0]
}

// signal waits for a Manager signal member(name, path) from butterd seen
// after mark from.
func (e *dbusEnv) signal(from int, member, name, path string) {
	e.t.Helper()
	_, ok := e.mon.waitFor(from, 10*time.Second, func(m busMsg) bool {
		if m.Type != "signal" || m.Sender != e.owner || m.Path != rootPath || m.Interface != managerIface || m.Member != member {
			return false
		}
		a := m.args(e.t)
		return len(a) == 2 && jsonString(e.t, a[0]) == name && jsonString(e.t, a[1]) == path
	})
	if !ok {
		e.t.Errorf("no signal %s(%q, %q) from butterd (%s) within 10 s; seen:\n%s", member, name, path, e.owner, e.mon.signals(from))
	}
}

// noSignal checks that no Manager signal member with first argument name
// was seen after mark from.
func (e *dbusEnv) noSignal(from int, member, name string) {
	e.t.Helper()
	for _, m := range e.mon.since(from) {
		if m.Type == "signal" && m.Member == member {
			if a := m.args(e.t); len(a) > 0 && jsonString(e.t, a[0]) == name {
				e.t.Errorf("unexpected signal %s(%s)", member, a)
			}
		}
	}
}

func (e *dbusEnv) volumePath(name string) string { return rootPath + "/volume/" + escapeLabel(name) }
func (e *dbusEnv) snapshotPath(name string) string {
	return rootPath + "/snapshot/" + escapeLabel(name)
}

// escapeLabel is systemd's bus_label_escape: every byte but [A-Za-z0-9]
// becomes _xx.
func escapeLabel(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "_%02x", c)
		}
	}
	return b.String()
}

// mount mounts a volume through the Docker plugin socket.
func (e *dbusEnv) mount(name, id string) {
	e.t.Helper()
	if st, m := e.d.Call("/VolumeDriver.Mount", map[string]any{"Name": name, "ID": id}); st != 200 || m["Err"] != nil {
		e.t.Fatalf("plugin Mount %s %s: %d %v", name, id, st, m)
	}
}

func jsonString(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatalf("%s is not a string: %v", raw, err)
	}
	return s
}

func jsonUint(t *testing.T, raw json.RawMessage) uint64 {
	t.Helper()
	var n uint64
	if err := json.Unmarshal(raw, &n); err != nil {
		t.Fatalf("%s is not an unsigned number: %v", raw, err)
	}
	return n
}

func jsonBool(t *testing.T, raw json.RawMessage) bool {
	t.Helper()
	var b bool
	if err := json.Unmarshal(raw, &b); err != nil {
		t.Fatalf("%s is not a boolean: %v", raw, err)
	}
	return b
}

// rows decodes an array of structs (busctl prints each as an array).
func rows(t *testing.T, raw json.RawMessage) [][]json.RawMessage {
	t.Helper()
	var r [][]json.RawMessage
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("%s is not an array of structs: %v", raw, err)
	}
	return r
}

// busMsg is one message as `busctl monitor --json=short` prints it.
type busMsg struct {
	Type        string `json:"type"`
	Cookie      uint64 `json:"cookie"`
	ReplyCookie uint64 `json:"reply_cookie"`
	Sender      string `json:"sender"`
	Destination string `json:"destination"`
	Path        string `json:"path"`
	Interface   string `json:"interface"`
	Member      string `json:"member"`
	ErrorName   string `json:"error_name"`
	Payload     struct {
		Type string          `json:"type"`
		Data json.RawMessage `json:"data"`
	} `json:"payload"`
}

func (m busMsg) args(t *testing.T) []json.RawMessage {
	t.Helper()
	var a []json.RawMessage
	if len(m.Payload.Data) > 0 {
		if err := json.Unmarshal(m.Payload.Data, &a); err != nil {
			t.Fatalf("payload %s: %v", m.Payload.Data, err)
		}
	}
	return a
}

// busMonitor is a `busctl monitor` on the test's bus (root may monitor
// the system bus under the stock policy).
type busMonitor struct {
	t    *testing.T
	cmd  *exec.Cmd
	done chan struct{}
	log  strings.Builder // busctl's standard error

	mu      sync.Mutex
	msgs    []busMsg
	changed chan struct{} // closed on each new message
}

func startMonitor(t *testing.T, bus *testenv.Bus) *busMonitor {
	t.Helper()
	m := &busMonitor{t: t, done: make(chan struct{}), changed: make(chan struct{})}
	cmd := exec.Command("busctl", "--address="+bus.Address, "--no-pager", "--json=short", "monitor")
	cmd.Env = testenv.ButterdEnv(bus)
	cmd.Stderr = &m.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("busctl monitor: %v", err)
	}
	m.cmd = cmd
	go func() {
		defer close(m.done)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() {
			var msg busMsg
			if json.Unmarshal(sc.Bytes(), &msg) != nil {
				continue
			}
			m.mu.Lock()
			m.msgs = append(m.msgs, msg)
			close(m.changed)
			m.changed = make(chan struct{})
			m.mu.Unlock()
		}
		cmd.Wait()
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-m.done:
		case <-time.After(10 * time.Second):
			t.Errorf("busctl monitor (pid %d) ignored SIGTERM: killed", cmd.Process.Pid)
			cmd.Process.Kill()
			<-m.done
		}
	})
	// The monitor is live once it sees a call made after it started.
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; ; i++ {
		marker := fmt.Sprintf("butterd.test.monitor%d", i)
		from := m.mark()
		if _, stderr, err := runBusctl(bus, asRoot, "call", "org.freedesktop.DBus", "/org/freedesktop/DBus",
			"org.freedesktop.DBus", "NameHasOwner", "s", marker); err != nil {
			t.Fatalf("busctl call NameHasOwner: %v: %s", err, stderr)
		}
		if _, ok := m.waitFor(from, 500*time.Millisecond, func(msg busMsg) bool {
			return msg.Type == "method_call" && msg.Member == "NameHasOwner" && strings.Contains(string(msg.Payload.Data), marker)
		}); ok {
			return m
		}
		select {
		case <-m.done:
			t.Fatalf("busctl monitor exited: %s", m.log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("busctl monitor saw nothing within 20 s: %s", m.log.String())
		}
	}
}

// mark is the number of messages seen so far: later waits look past it.
func (m *busMonitor) mark() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.msgs)
}

func (m *busMonitor) since(from int) []busMsg {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]busMsg(nil), m.msgs[from:]...)
}

// waitFor returns the first message after mark from that matches.
func (m *busMonitor) waitFor(from int, limit time.Duration, match func(busMsg) bool) (busMsg, bool) {
	timer := time.NewTimer(limit)
	defer timer.Stop()
	for {
		m.mu.Lock()
		for _, msg := range m.msgs[from:] {
			if match(msg) {
				m.mu.Unlock()
				return msg, true
			}
		}
		from = len(m.msgs)
		changed := m.changed
		m.mu.Unlock()
		select {
		case <-changed:
		case <-timer.C:
			return busMsg{}, false
		}
	}
}

// answerTo finds the first call of iface.member to dest after mark from
// and the method return or error that answered it.
func (m *busMonitor) answerTo(from int, dest, iface, member string) (busMsg, busMsg) {
	m.t.Helper()
	call, ok := m.waitFor(from, 10*time.Second, func(msg busMsg) bool {
		return msg.Type == "method_call" && msg.Destination == dest && msg.Interface == iface && msg.Member == member
	})
	if !ok {
		m.t.Fatalf("the monitor saw no call of %s.%s", iface, member)
	}
	ans, ok := m.waitFor(from, 10*time.Second, func(msg busMsg) bool {
		return (msg.Type == "method_return" || msg.Type == "error") && msg.ReplyCookie == call.Cookie && msg.Destination == call.Sender
	})
	if !ok {
		m.t.Fatalf("the monitor saw no answer to %s.%s from %s (cookie %d)", iface, member, call.Sender, call.Cookie)
	}
	return call, ans
}

// signals lists the signals after mark from, for failure messages.
func (m *busMonitor) signals(from int) string {
	var b strings.Builder
	for _, msg := range m.since(from) {
		if msg.Type == "signal" {
			fmt.Fprintf(&b, "  %s %s.%s %s\n", msg.Sender, msg.Interface, msg.Member, msg.Payload.Data)
		}
	}
	return b.String()
}

// introspection data as busctl --xml-interface prints it.
type introNode struct {
	Interfaces []struct {
		Name    string        `xml:"name,attr"`
		Methods []introMember `xml:"method"`
		Signals []introMember `xml:"signal"`
	} `xml:"interface"`
	Nodes []struct {
		Name string `xml:"name,attr"`
	} `xml:"node"`
}

type introMember struct {
	Name string `xml:"name,attr"`
	Args []struct {
		Name      string `xml:"name,attr"`
		Type      string `xml:"type,attr"`
		Direction string `xml:"direction,attr"`
	} `xml:"arg"`
}

// The Manager's methods and signals, in and out signatures ("-" for none)
// as busctl introspect shows them.
var managerMembers = []struct{ kind, name, in, out string }{
	{"method", "CreateVolume", "sa{ss}", "o"},
	{"method", "RemoveVolume", "st", "sas"},
	{"method", "GetVolume", "s", "o"},
	{"method", "ListVolumes", "-", "a(sostu)"},
	{"method", "CloneVolume", "ss", "o"},
	{"method", "ForgetMounts", "s", "u"},
	{"method", "CreateSnapshot", "s", "so"},
	{"method", "CreateGroupSnapshot", "ssast", "uo"},
	{"method", "RestoreGroup", "ssst", "sa(sss)"},
	{"method", "ListGroups", "-", "a(sas)"},
	{"method", "RemoveGroup", "s", "as"},
	{"method", "GetSnapshot", "s", "o"},
	{"method", "ListSnapshots", "s", "a(sostb)"},
	{"method", "RemoveSnapshot", "s", "-"},
	{"method", "RestoreSnapshot", "sst", "sss"},
	{"method", "Purge", "sstt", "uoa(sts)a(sts)as"},
	{"method", "PinSnapshot", "s", "-"},
	{"method", "UnpinSnapshot", "s", "-"},
	{"method", "ImportSnapshot", "ht", "uo"},
	{"method", "ExportSnapshot", "ssht", "uo"},
	{"method", "SyncVolume", "sast", "uo"},
	{"method", "SendSnapshot", "sstt", "uo"},
	{"method", "ReplicateVolume", "sstt", "uo"},
	{"method", "AddRemote", "sssast", "-"},
	{"method", "ListRemotes", "-", "a(ssssbbas)"},
	{"method", "RemoveRemote", "s", "b"},
	{"method", "TrustRemoteHost", "sst", "s"},
	{"method", "GetOwnKeys", "-", "ss"},
	{"method", "ListReplicas", "s", "a(ssbbt)"},
	{"method", "GetJob", "u", "o"},
	{"method", "ListJobs", "-", "a(uosssd)"},
	{"method", "CancelJob", "u", "-"},
	{"method", "ListSchedules", "-", "a(ssstsbstst)b"},
	{"method", "SetSchedule", "ssstst", "s"},
	{"method", "RemoveSchedule", "sss", "-"},
	{"method", "PauseSchedule", "sss", "-"},
	{"method", "ResumeSchedule", "sss", "-"},
	{"method", "PauseAllSchedules", "-", "-"},
	{"method", "ResumeAllSchedules", "-", "-"},
	{"signal", "VolumeNew", "so", "-"},
	{"signal", "VolumeRemoved", "so", "-"},
	{"signal", "SnapshotNew", "so", "-"},
	{"signal", "SnapshotRemoved", "so", "-"},
	{"signal", "JobNew", "uo", "-"},
	{"signal", "JobRemoved", "uos", "-"},
	{"signal", "JobFailed", "uosss", "-"},
}

var snakeCase = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)

// busctl introspect shows every Manager method and signal with its
// signatures; the XML names every argument in snake_case; busctl tree
// lists the volume and snapshot objects; their properties read back.
func TestDBusIntrospectTreeProperties(t *testing.T) {
	e := startDBus(t)
	e.ok(asRoot, "CreateVolume", "sa{ss}", "web-data.1", "0")
	snap := jsonString(t, e.ok(asRoot, "CreateSnapshot", "s", "web-data.1")[0])

	for _, as := range [][]string{asRoot, asNobody} {
		out := e.busctlOK(as, "introspect", busName, rootPath)
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(managerIface) + `\s+interface\s`).MatchString(out) {
			t.Errorf("introspect %s as %q does not show interface %s:\n%s", rootPath, as, managerIface, out)
		}
		for _, m := range managerMembers {
			re := `(?m)^\.` + m.name + `\s+` + m.kind + `\s+` + regexp.QuoteMeta(m.in) + `\s+` + regexp.QuoteMeta(m.out) + `\s`
			if !regexp.MustCompile(re).MatchString(out) {
				t.Errorf("introspect as %q does not show %s %s (%s) -> (%s):\n%s", as, m.kind, m.name, m.in, m.out, out)
			}
		}
	}

	var node introNode
	raw := e.busctlOK(asRoot, "introspect", "--xml-interface", busName, rootPath)
	if err := xml.Unmarshal([]byte(raw), &node); err != nil {
		t.Fatalf("introspection XML: %v\n%s", err, raw)
	}
	found := false
	for _, iface := range node.Interfaces {
		if iface.Name != managerIface {
			continue
		}
		found = true
		for _, m := range append(iface.Methods, iface.Signals...) {
			for _, a := range m.Args {
				if !snakeCase.MatchString(a.Name) {
					t.Errorf("%s: argument %q (%s) is not named in snake_case", m.Name, a.Name, a.Type)
				}
			}
		}
		for _, m := range iface.Methods {
			if m.Name != "CloneVolume" {
				continue
			}
			var got []string
			for _, a := range m.Args {
				got = append(got, a.Direction+":"+a.Name+":"+a.Type)
			}
			if want := "in:name:s in:new_name:s out:path:o"; strings.Join(got, " ") != want {
				t.Errorf("CloneVolume args %q, want %q", got, want)
			}
		}
	}
	if !found {
		t.Errorf("no interface %s in the XML:\n%s", managerIface, raw)
	}
	var kids []string
	for _, n := range node.Nodes {
		kids = append(kids, n.Name)
	}
	if k := strings.Join(kids, " "); !strings.Contains(" "+k+" ", " volume ") || !strings.Contains(" "+k+" ", " snapshot ") {
		t.Errorf("the root's child nodes are %q, want volume and snapshot among them", kids)
	}

	vpath, spath := e.volumePath("web-data.1"), e.snapshotPath(snap)
	if vpath != rootPath+"/volume/web_2ddata_2e1" {
		t.Fatalf("escaping: %s", vpath)
	}
	for _, as := range [][]string{asRoot, asNobody} {
		tree := e.busctlOK(as, "tree", "--list", busName)
		for _, p := range []string{"/", rootPath, rootPath + "/volume", rootPath + "/snapshot", vpath, spath} {
			if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(p) + `$`).MatchString(tree) {
				t.Errorf("busctl tree as %q does not list %s:\n%s", as, p, tree)
			}
		}
		if out := e.busctlOK(as, "introspect", busName, vpath); !strings.Contains(out, volumeIface) || !strings.Contains(out, ".Mountpoint") {
			t.Errorf("introspect %s as %q:\n%s", vpath, as, out)
		}

		if got := jsonString(t, e.prop(as, vpath, volumeIface, "Name")); got != "web-data.1" {
			t.Errorf("Name = %q", got)
		}
		if got, want := jsonString(t, e.prop(as, vpath, volumeIface, "Mountpoint")), filepath.Join(e.root, "volumes", "web-data.1"); got != want {
			t.Errorf("Mountpoint = %q, want %q", got, want)
		}
		if got := jsonUint(t, e.prop(as, vpath, volumeIface, "Mounts")); got != 0 {
			t.Errorf("Mounts = %d, want 0", got)
		}
		if got := jsonString(t, e.prop(as, vpath, volumeIface, "UUID")); len(got) != 36 {
			t.Errorf("volume UUID = %q", got)
		}
		if jsonBool(t, e.prop(as, vpath, volumeIface, "ReadOnly")) {
			t.Error("the volume is ReadOnly")
		}
		if jsonUint(t, e.prop(as, vpath, volumeIface, "Created")) == 0 {
			t.Error("the volume has no Created time")
		}

		if !jsonBool(t, e.prop(as, spath, snapIface, "ReadOnly")) {
			t.Error("the snapshot is not ReadOnly")
		}
		if got := jsonString(t, e.prop(as, spath, snapIface, "Volume")); got != "web-data.1" {
			t.Errorf("snapshot Volume = %q", got)
		}
		if got := jsonString(t, e.prop(as, spath, snapIface, "Name")); got != snap {
			t.Errorf("snapshot Name = %q, want %q", got, snap)
		}
		if got, want := jsonString(t, e.prop(as, spath, snapIface, "ParentUUID")), jsonString(t, e.prop(as, vpath, volumeIface, "UUID")); got != want {
			t.Errorf("snapshot ParentUUID = %q, want the volume's UUID %q", got, want)
		}
	}
	e.mount("web-data.1", "c1")
	if got := jsonUint(t, e.prop(asRoot, vpath, volumeIface, "Mounts")); got != 1 {
		t.Errorf("Mounts after a plugin mount = %d, want 1", got)
	}
	// Properties are read-only; an object that does not exist says so.
	if _, stderr, err := e.busctl(asRoot, "set-property", busName, vpath, volumeIface, "Name", "s", "x"); err == nil {
		t.Error("set-property Name succeeded")
	} else if !strings.Contains(stderr, "read-only") {
		t.Errorf("set-property: %s", stderr)
	}
	if _, stderr, err := e.busctl(asRoot, "get-property", busName, e.volumePath("gone"), volumeIface, "Name"); err == nil {
		t.Error("get-property on a volume that does not exist succeeded")
	} else if !strings.Contains(stderr, `no such volume "gone"`) {
		t.Errorf("get-property on a volume that does not exist: %s", stderr)
	}
}

// Every volume method of the Manager through busctl call, with its
// signals and its errors.
func TestDBusVolumeMethods(t *testing.T) {
	e := startDBus(t)

	from := e.mon.mark()
	p := jsonString(t, e.ok(asRoot, "CreateVolume", "sa{ss}", "v1", "0")[0])
	if p != e.volumePath("v1") {
		t.Errorf("CreateVolume v1 returned %s", p)
	}
	e.signal(from, "VolumeNew", "v1", p)
	if fi, err := os.Stat(filepath.Join(e.root, "volumes", "v1")); err != nil || !fi.IsDir() {
		t.Fatalf("volumes/v1 after CreateVolume: %v", err)
	}
	writeFile(t, filepath.Join(e.root, "volumes", "v1", "f"), "v1 data")
	// Create is idempotent, as for Docker.
	if again := jsonString(t, e.ok(asRoot, "CreateVolume", "sa{ss}", "v1", "0")[0]); again != p {
		t.Errorf("second CreateVolume v1 returned %s", again)
	}
	// Options as Docker's -o.
	e.ok(asRoot, "CreateVolume", "sa{ss}", "nocow", "1", "copyonwrite", "false")
	// Repeated with the options the volume has: the same volume; with
	// options it does not have: refused (Docker's Create stays
	// idempotent), the volume untouched.
	e.ok(asRoot, "CreateVolume", "sa{ss}", "nocow", "1", "copyonwrite", "false")
	e.fails(asRoot, "Exists", `volume "v1" exists: options copyonwrite=false, from=nocow were not applied; remove it first or use restore`,
		"CreateVolume", "sa{ss}", "v1", "2", "copyonwrite", "false", "from", "nocow")
	e.fails(asRoot, "Exists", `volume "nocow" exists: option copyonwrite=true was not applied`,
		"CreateVolume", "sa{ss}", "nocow", "1", "copyonwrite", "true")
	if got := readFile(t, filepath.Join(e.root, "volumes", "v1", "f")); got != "v1 data" {
		t.Errorf("v1 holds %q after a refused create", got)
	}
	e.fails(asRoot, "InvalidArgument", "allowed options are", "CreateVolume", "sa{ss}", "sized", "1", "size", "1G")
	e.fails(asRoot, "InvalidName", `invalid character '/'`, "CreateVolume", "sa{ss}", "a/b", "0")
	e.fails(asRoot, "InvalidName", "too short", "CreateVolume", "sa{ss}", "x", "0")
	if _, err := os.Stat(filepath.Join(e.root, "volumes", "sized")); err == nil {
		t.Error("a refused CreateVolume created its volume")
	}

	if got := jsonString(t, e.ok(asRoot, "GetVolume", "s", "v1")[0]); got != p {
		t.Errorf("GetVolume v1 = %s", got)
	}
	e.fails(asRoot, "NoSuchVolume", `no such volume "nope"`, "GetVolume", "s", "nope")
	e.fails(asRoot, "InvalidName", "must not contain '..'", "GetVolume", "s", "a..b")

	list := rows(t, e.ok(asRoot, "ListVolumes", "")[0])
	names := map[string][]json.RawMessage{}
	for _, r := range list {
		names[jsonString(t, r[0])] = r
	}
	if len(list) != 2 || names["v1"] == nil || names["nocow"] == nil {
		t.Fatalf("ListVolumes = %s", list)
	}
	if r := names["v1"]; jsonString(t, r[1]) != p || jsonString(t, r[2]) != filepath.Join(e.root, "volumes", "v1") ||
		jsonUint(t, r[3]) == 0 || jsonUint(t, r[4]) != 0 {
		t.Errorf("ListVolumes row of v1 = %s", r)
	}

	// Clone.
	from = e.mon.mark()
	cp := jsonString(t, e.ok(asRoot, "CloneVolume", "ss", "v1", "c1")[0])
	if cp != e.volumePath("c1") {
		t.Errorf("CloneVolume returned %s", cp)
	}
	e.signal(from, "VolumeNew", "c1", cp)
	requireFile(t, filepath.Join(e.root, "volumes", "c1", "f"), "v1 data")
	e.fails(asRoot, "Exists", `volume "c1" already exists`, "CloneVolume", "ss", "v1", "c1")
	e.fails(asRoot, "NoSuchVolume", `no such volume "nope"`, "CloneVolume", "ss", "nope", "c2")
	e.fails(asRoot, "InvalidArgument", "onto itself", "CloneVolume", "ss", "v1", "v1")
	e.fails(asRoot, "InvalidName", "invalid character '@'", "CloneVolume", "ss", "v1", "c@2")

	// Mounts: counted per mount id; ForgetMounts drops them all.
	e.mount("v1", "a")
	e.mount("v1", "b")
	if got := jsonUint(t, e.prop(asRoot, p, volumeIface, "Mounts")); got != 2 {
		t.Errorf("Mounts = %d, want 2", got)
	}
	e.fails(asRoot, "InUse", `volume "v1" is in use`, "RemoveVolume", "st", "v1", "0")
	if got := jsonUint(t, e.ok(asRoot, "ForgetMounts", "s", "v1")[0]); got != 2 {
		t.Errorf("ForgetMounts v1 = %d, want 2", got)
	}
	if got := jsonUint(t, e.prop(asRoot, p, volumeIface, "Mounts")); got != 0 {
		t.Errorf("Mounts after ForgetMounts = %d", got)
	}
	if got := jsonUint(t, e.ok(asRoot, "ForgetMounts", "s", "v1")[0]); got != 0 {
		t.Errorf("second ForgetMounts v1 = %d, want 0", got)
	}
	e.fails(asRoot, "NoSuchVolume", `no such volume "nope"`, "ForgetMounts", "s", "nope")

	// RemoveVolume takes a final snapshot by default, none with flag 1;
	// unknown flag bits are refused before anything happens.
	e.fails(asRoot, "InvalidArgument", "unknown flag bits 0x2", "RemoveVolume", "st", "v1", "2")
	e.fails(asRoot, "InvalidArgument", "unknown flag bits 0x8000000000000000", "RemoveVolume", "st", "v1", strconv.FormatUint(1<<63, 10))
	from = e.mon.mark()
	final := jsonString(t, e.ok(asRoot, "RemoveVolume", "st", "v1", "0")[0])
	if !strings.HasPrefix(final, "v1@") {
		t.Fatalf("RemoveVolume v1 returned final snapshot %q", final)
	}
	e.signal(from, "SnapshotNew", final, e.snapshotPath(final))
	e.signal(from, "VolumeRemoved", "v1", p)
	if _, err := os.Stat(filepath.Join(e.root, "volumes", "v1")); err == nil {
		t.Error("volumes/v1 is still there")
	}
	requireFile(t, filepath.Join(e.root, "snapshots", final, "f"), "v1 data")
	if got := jsonString(t, e.ok(asRoot, "GetSnapshot", "s", final)[0]); got != e.snapshotPath(final) {
		t.Errorf("GetSnapshot of the final snapshot = %s", got)
	}
	e.fails(asRoot, "NoSuchVolume", `no such volume "v1"`, "GetVolume", "s", "v1")
	e.fails(asRoot, "NoSuchVolume", `no such volume "v1"`, "RemoveVolume", "st", "v1", "0")

	from = e.mon.mark()
	if got := jsonString(t, e.ok(asRoot, "RemoveVolume", "st", "c1", "1")[0]); got != "" {
		t.Errorf("RemoveVolume c1 with flag 1 returned final snapshot %q", got)
	}
	e.signal(from, "VolumeRemoved", "c1", cp)
	// Signals go out in order: a final snapshot would have come first.
	e.noSignal(from, "SnapshotNew", "c1")
	if snaps := rows(t, e.ok(asRoot, "ListSnapshots", "s", "c1")[0]); len(snaps) != 0 {
		t.Errorf("snapshots of c1 after RemoveVolume with flag 1: %s", snaps)
	}
	list = rows(t, e.ok(asRoot, "ListVolumes", "")[0])
	if len(list) != 1 || jsonString(t, list[0][0]) != "nocow" {
		t.Errorf("ListVolumes at the end = %s", list)
	}
}

// Every snapshot method of the Manager through busctl call: create, get,
// list, restore (with and without force, refused while mounted), remove.
func TestDBusSnapshotMethods(t *testing.T) {
	e := startDBus(t)
	e.ok(asRoot, "CreateVolume", "sa{ss}", "s1", "0")
	file := filepath.Join(e.root, "volumes", "s1", "f")
	writeFile(t, file, "one")

	from := e.mon.mark()
	vals := e.ok(asRoot, "CreateSnapshot", "s", "s1")
	snap, spath := jsonString(t, vals[0]), jsonString(t, vals[1])
	if !strings.HasPrefix(snap, "s1@") || spath != e.snapshotPath(snap) {
		t.Fatalf("CreateSnapshot s1 = %q %q", snap, spath)
	}
	e.signal(from, "SnapshotNew", snap, spath)
	requireFile(t, filepath.Join(e.root, "snapshots", snap, "f"), "one")
	e.fails(asRoot, "NoSuchVolume", `no such volume "nope"`, "CreateSnapshot", "s", "nope")

	if got := jsonString(t, e.ok(asRoot, "GetSnapshot", "s", snap)[0]); got != spath {
		t.Errorf("GetSnapshot = %s", got)
	}
	e.fails(asRoot, "NoSuchSnapshot", `no such snapshot "s1@2001-01-01T00:00:00.000000"`, "GetSnapshot", "s", "s1@2001-01-01T00:00:00.000000")
	e.fails(asRoot, "InvalidName", "has no '@'", "GetSnapshot", "s", "s1")

	list := rows(t, e.ok(asRoot, "ListSnapshots", "s", "s1")[0])
	if len(list) != 1 || jsonString(t, list[0][0]) != snap || jsonString(t, list[0][1]) != spath ||
		jsonString(t, list[0][2]) != "s1" || jsonUint(t, list[0][3]) == 0 || jsonBool(t, list[0][4]) {
		t.Errorf("ListSnapshots s1 = %s", list)
	}
	e.fails(asRoot, "InvalidName", "invalid character", "ListSnapshots", "s", "a b")

	// Restore onto the unmounted volume without force: the old data is
	// kept as a safety snapshot.
	writeFile(t, file, "two")
	from = e.mon.mark()
	vals = e.ok(asRoot, "RestoreSnapshot", "sst", snap, "", "0")
	if jsonString(t, vals[0]) != snap || jsonString(t, vals[1]) != "s1" {
		t.Errorf("RestoreSnapshot = %s", vals)
	}
	safety := jsonString(t, vals[2])
	if !strings.HasPrefix(safety, "s1@") {
		t.Fatalf("RestoreSnapshot safety snapshot %q", safety)
	}
	e.signal(from, "SnapshotNew", safety, e.snapshotPath(safety))
	requireFile(t, file, "one")
	requireFile(t, filepath.Join(e.root, "snapshots", safety, "f"), "two")
	list = rows(t, e.ok(asRoot, "ListSnapshots", "s", "")[0])
	safe := map[string]bool{}
	for _, r := range list {
		safe[jsonString(t, r[0])] = jsonBool(t, r[4])
	}
	if len(list) != 2 || safe[snap] || !safe[safety] {
		t.Errorf("ListSnapshots after restore = %s", list)
	}

	// Mounted: refused without force, done with it.
	e.mount("s1", "ctr")
	writeFile(t, file, "three")
	e.fails(asRoot, "InUse", `volume "s1" is in use`, "RestoreSnapshot", "sst", snap, "", "0")
	requireFile(t, file, "three")
	e.fails(asRoot, "InvalidArgument", "unknown flag bits 0x2", "RestoreSnapshot", "sst", snap, "", "3")
	requireFile(t, file, "three")
	vals = e.ok(asRoot, "RestoreSnapshot", "sst", snap, "s1", "1")
	forcedSafety := jsonString(t, vals[2])
	if forcedSafety == "" || forcedSafety == safety {
		t.Errorf("forced RestoreSnapshot = %s", vals)
	}
	requireFile(t, file, "one")
	requireFile(t, filepath.Join(e.root, "snapshots", forcedSafety, "f"), "three")
	if got := jsonUint(t, e.prop(asRoot, e.volumePath("s1"), volumeIface, "Mounts")); got != 1 {
		t.Errorf("Mounts after a forced restore = %d, want 1", got)
	}

	// A volume name restores its latest snapshot (never a safety one),
	// here to a new volume.
	from = e.mon.mark()
	vals = e.ok(asRoot, "RestoreSnapshot", "sst", "s1", "r1", "0")
	if jsonString(t, vals[0]) != snap || jsonString(t, vals[1]) != "r1" || jsonString(t, vals[2]) != "" {
		t.Errorf("RestoreSnapshot s1 -> r1 = %s", vals)
	}
	e.signal(from, "VolumeNew", "r1", e.volumePath("r1"))
	requireFile(t, filepath.Join(e.root, "volumes", "r1", "f"), "one")
	e.fails(asRoot, "NoSuchSnapshot", `no such snapshot "s1@2001-01-01T00:00:00.000000"`, "RestoreSnapshot", "sst", "s1@2001-01-01T00:00:00.000000", "", "0")
	e.fails(asRoot, "NoSuchSnapshot", `volume "r1" has no snapshot`, "RestoreSnapshot", "sst", "r1", "", "0")

	// Remove.
	from = e.mon.mark()
	if vals := e.ok(asRoot, "RemoveSnapshot", "s", safety); len(vals) != 0 {
		t.Errorf("RemoveSnapshot returned %s", vals)
	}
	e.signal(from, "SnapshotRemoved", safety, e.snapshotPath(safety))
	if _, err := os.Stat(filepath.Join(e.root, "snapshots", safety)); err == nil {
		t.Error("the removed snapshot is still on disk")
	}
	e.fails(asRoot, "NoSuchSnapshot", fmt.Sprintf("no such snapshot %q", safety), "RemoveSnapshot", "s", safety)
	e.fails(asRoot, "NoSuchSnapshot", fmt.Sprintf("no such snapshot %q", safety), "GetSnapshot", "s", safety)
	e.fails(asRoot, "InvalidName", "has no '@'", "RemoveSnapshot", "s", "s1")
	if _, stderr, err := e.busctl(asRoot, "get-property", busName, e.snapshotPath(safety), snapIface, "Name"); err == nil || !strings.Contains(stderr, "no such snapshot") {
		t.Errorf("get-property on a removed snapshot: %v %s", err, stderr)
	}
}

// Signals come from the service, not from the D-Bus edge: a volume that
// Docker creates and removes through the plugin socket is announced too,
// to an ordinary subscriber as well as to the monitor.
func TestDBusSignalsForPluginCalls(t *testing.T) {
	e := startDBus(t)
	conn, err := dbus.Connect(e.bus.Address)
	if err != nil {
		t.Fatalf("connect to the bus: %v", err)
	}
	defer conn.Close()
	if err := conn.AddMatchSignal(dbus.WithMatchObjectPath(rootPath), dbus.WithMatchInterface(managerIface)); err != nil {
		t.Fatalf("AddMatch: %v", err)
	}
	sigs := make(chan *dbus.Signal, 64)
	conn.Signal(sigs)

	from := e.mon.mark()
	if st, m := e.d.Call("/VolumeDriver.Create", map[string]any{"Name": "dock1"}); st != 200 || m["Err"] != nil {
		t.Fatalf("plugin Create: %d %v", st, m)
	}
	e.signal(from, "VolumeNew", "dock1", e.volumePath("dock1"))
	if st, m := e.d.Call("/VolumeDriver.Remove", map[string]any{"Name": "dock1"}); st != 200 || m["Err"] != nil {
		t.Fatalf("plugin Remove: %d %v", st, m)
	}
	e.signal(from, "VolumeRemoved", "dock1", e.volumePath("dock1"))
	var final string
	for _, m := range e.mon.since(from) {
		if m.Type == "signal" && m.Member == "SnapshotNew" {
			final = jsonString(t, m.args(t)[0])
		}
	}
	if !strings.HasPrefix(final, "dock1@") {
		t.Fatalf("no SnapshotNew for the final snapshot of a volume removed by Docker; signals:\n%s", e.mon.signals(from))
	}
	e.ok(asRoot, "RemoveSnapshot", "s", final)
	e.signal(from, "SnapshotRemoved", final, e.snapshotPath(final))

	want := []string{
		"VolumeNew dock1 " + e.volumePath("dock1"),
		"SnapshotNew " + final + " " + e.snapshotPath(final),
		"VolumeRemoved dock1 " + e.volumePath("dock1"),
		"SnapshotRemoved " + final + " " + e.snapshotPath(final),
	}
	timeout := time.After(10 * time.Second)
	for i := 0; i < len(want); {
		select {
		case s := <-sigs:
			if s.Path != rootPath || !strings.HasPrefix(s.Name, managerIface+".") {
				continue // NameAcquired and the like
			}
			if s.Sender != e.owner {
				t.Errorf("signal %s from %s, not from butterd (%s)", s.Name, s.Sender, e.owner)
			}
			got := strings.TrimPrefix(s.Name, managerIface+".")
			for _, b := range s.Body {
				got += fmt.Sprint(" ", b)
			}
			if got != want[i] {
				t.Fatalf("subscriber got signal %d %q, want %q", i, got, want[i])
			}
			i++
		case <-timeout:
			t.Fatalf("subscriber got %d of the signals %q within 10 s", i, want)
		}
	}
}

// As uid 65534, the real policy lets reads through and stops every
// changing call at the bus.
func TestDBusNobodyDeniedByBusPolicy(t *testing.T) {
	e := startDBus(t)
	e.ok(asRoot, "CreateVolume", "sa{ss}", "v1", "0")
	snap := jsonString(t, e.ok(asRoot, "CreateSnapshot", "s", "v1")[0])
	e.mount("v1", "m")

	// Reads work.
	if got := jsonString(t, e.ok(asNobody, "GetVolume", "s", "v1")[0]); got != e.volumePath("v1") {
		t.Errorf("GetVolume as nobody = %s", got)
	}
	if got := rows(t, e.ok(asNobody, "ListVolumes", "")[0]); len(got) != 1 {
		t.Errorf("ListVolumes as nobody = %s", got)
	}
	e.ok(asNobody, "GetSnapshot", "s", snap)
	if got := rows(t, e.ok(asNobody, "ListSnapshots", "s", "v1")[0]); len(got) != 1 {
		t.Errorf("ListSnapshots as nobody = %s", got)
	}
	e.fails(asNobody, "NoSuchVolume", `no such volume "nope"`, "GetVolume", "s", "nope")
	if got := jsonString(t, e.prop(asNobody, e.volumePath("v1"), volumeIface, "UUID")); got == "" {
		t.Error("UUID as nobody is empty")
	}
	if out := e.busctlOK(asNobody, "introspect", busName, rootPath); !strings.Contains(out, ".CreateVolume") {
		t.Errorf("introspect as nobody:\n%s", out)
	}

	// Changes are refused by the bus before they reach butterd.
	for _, c := range changingCalls(snap) {
		e.deniedByBus(asNobody, c.method, c.sig, c.args...)
	}
	// Replication reads are open: peers, replicas, our own public keys.
	e.ok(asNobody, "ListRemotes", "")
	e.ok(asNobody, "ListReplicas", "s", "v1")
	if keys := e.ok(asNobody, "GetOwnKeys", ""); len(keys) != 2 || !strings.Contains(string(keys[0]), "ssh-ed25519 ") || !strings.Contains(string(keys[1]), "SHA256:") {
		t.Errorf("GetOwnKeys as nobody = %q", keys)
	}
	if _, stderr, err := e.busctl(asNobody, "call", busName, rootPath, managerIface, "CreateVolume", "sa{ss}", "evil", "0"); err == nil || stderr != "Call failed: Access denied" {
		t.Errorf("busctl as nobody: %v %q, want Access denied", err, stderr)
	}
	// Nobody may take the name either.
	if _, stderr, err := e.busctl(asNobody, "call", "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
		"RequestName", "su", busName, "4"); err == nil || !strings.Contains(stderr, "not allowed to own") && !strings.Contains(stderr, "Access denied") {
		t.Errorf("RequestName %s as nobody: %v %q", busName, err, stderr)
	}
	vols := rows(t, e.ok(asRoot, "ListVolumes", "")[0])
	snaps := rows(t, e.ok(asRoot, "ListSnapshots", "s", "")[0])
	if len(vols) != 1 || len(snaps) != 1 || jsonUint(t, e.prop(asRoot, e.volumePath("v1"), volumeIface, "Mounts")) != 1 {
		t.Errorf("something changed: volumes %s, snapshots %s", vols, snaps)
	}
}

// changingCalls are changing Manager calls of volume v1 and its snapshot
// snap, with their signatures and busctl arguments.
func changingCalls(snap string) []struct {
	method, sig string
	args        []string
} {
	return []struct {
		method, sig string
		args        []string
	}{
		{"CreateVolume", "sa{ss}", []string{"evil", "0"}},
		{"RemoveVolume", "st", []string{"v1", "1"}},
		{"CloneVolume", "ss", []string{"v1", "evil"}},
		{"ForgetMounts", "s", []string{"v1"}},
		{"CreateSnapshot", "s", []string{"v1"}},
		{"RemoveSnapshot", "s", []string{snap}},
		{"RestoreSnapshot", "sst", []string{snap, "", "1"}},
		{"SyncVolume", "sast", []string{"v1", "1", "hostb", "1"}},
		{"SendSnapshot", "sstt", []string{"127.0.0.1", snap, "0", "0"}},
		{"ReplicateVolume", "sstt", []string{"v1", "127.0.0.1", "0", "0"}},
		{"AddRemote", "sssast", []string{"evil", "", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEvil", "0", "3"}},
		{"RemoveRemote", "s", []string{"evil"}},
		{"TrustRemoteHost", "sst", []string{"127.0.0.1", "SHA256:evil", "0"}},
	}
}

// Under a policy that lets everyone send to butterd, butterd itself
// refuses every changing call from uid 65534, and nothing changes.
func TestDBusNobodyRefusedByButterd(t *testing.T) {
	e := startDBus(t, permissivePolicy)
	e.ok(asRoot, "CreateVolume", "sa{ss}", "v1", "0")
	snap := jsonString(t, e.ok(asRoot, "CreateSnapshot", "s", "v1")[0])
	e.mount("v1", "m")
	for _, c := range changingCalls(snap) {
		e.fails(asNobody, "AccessDenied", c.method+` changes volumes: only root and members of group "butterd" may call it (caller uid 65534)`,
			c.method, c.sig, c.args...)
	}
	// Reads still work.
	e.ok(asNobody, "ListVolumes", "")
	vols := rows(t, e.ok(asRoot, "ListVolumes", "")[0])
	snaps := rows(t, e.ok(asRoot, "ListSnapshots", "s", "")[0])
	if len(vols) != 1 || len(snaps) != 1 || jsonUint(t, e.prop(asRoot, e.volumePath("v1"), volumeIface, "Mounts")) != 1 {
		t.Errorf("something changed: volumes %s, snapshots %s", vols, snaps)
	}
	if _, err := os.Stat(filepath.Join(e.root, "volumes", "evil")); err == nil {
		t.Error("volumes/evil exists")
	}
}

// A member of group butterd may change volumes under the real policy; the
// bus and butterd both read the caller's groups from the connection.
func TestDBusGroupMemberAllowed(t *testing.T) {
	testenv.Root(t)
	gid := butterdGroup(t) // before the bus and butterd read the group
	e := startDBus(t)
	if strings.Contains(e.bus.Log(), `Unknown group "butterd"`) {
		t.Fatalf("the bus does not know group butterd: %s", e.bus.Log())
	}
	member := []string{"setpriv", "--reuid=65534", "--regid=65534", "--groups=" + gid}
	from := e.mon.mark()
	p := jsonString(t, e.ok(member, "CreateVolume", "sa{ss}", "grp", "0")[0])
	e.signal(from, "VolumeNew", "grp", p)
	snap := jsonString(t, e.ok(member, "CreateSnapshot", "s", "grp")[0])
	e.ok(member, "RemoveSnapshot", "s", snap)
	e.ok(member, "RemoveVolume", "st", "grp", "1")
	// The same user without the group is still stopped by the bus.
	e.deniedByBus(asNobody, "CreateVolume", "sa{ss}", "grp2", "0")
}

// butterdGroup makes sure group butterd exists and returns its gid.
func butterdGroup(t *testing.T) string {
	t.Helper()
	if g, err := user.LookupGroup("butterd"); err == nil {
		return g.Gid
	}
	groupadd := testenv.Command(t, "groupadd")
	if out, err := exec.Command(groupadd, "-f", "--system", "butterd").CombinedOutput(); err != nil {
		t.Fatalf("groupadd -f butterd: %v: %s", err, out)
	}
	g, err := user.LookupGroup("butterd")
	if err != nil {
		t.Fatalf("group butterd after groupadd: %v", err)
	}
	return g.Gid
}

// A second butterd on the same bus (its own data root and socket) exits
// with a clear message; the first keeps the name and keeps answering.
func TestDBusNameTaken(t *testing.T) {
	e := startDBus(t)
	e.ok(asRoot, "CreateVolume", "sa{ss}", "first", "0")

	root2 := filepath.Join(filepath.Dir(e.root), "root2")
	sock2 := filepath.Join(t.TempDir(), "second.sock")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, testenv.BuildButterd(t), "run", "--config=/dev/null",
		"--data-root="+root2, "--plugin-socket="+sock2)
	cmd.Env = testenv.ButterdEnv(e.bus)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("the second butterd did not exit within 60 s:\n%s", out)
	}
	if err == nil {
		t.Fatalf("the second butterd exited 0:\n%s", out)
	}
	t.Logf("second butterd: %v after %v", err, time.Since(start).Round(time.Millisecond))
	if !strings.Contains(string(out), "bus name io.butterd.volumes1 is owned by another process") {
		t.Errorf("the second butterd does not say the bus name is taken:\n%s", out)
	}
	if _, err := os.Lstat(sock2); err == nil {
		t.Errorf("the second butterd left its socket %s", sock2)
	}

	owner := jsonString(t, e.busctlJSON(asRoot, "call", "org.freedesktop.DBus", "/org/freedesktop/DBus",
		"org.freedesktop.DBus", "GetNameOwner", "s", busName)[0])
	if owner != e.owner {
		t.Errorf("%s is now owned by %s, was %s", busName, owner, e.owner)
	}
	if got := rows(t, e.ok(asRoot, "ListVolumes", "")[0]); len(got) != 1 || jsonString(t, got[0][0]) != "first" {
		t.Errorf("ListVolumes from the first butterd = %s", got)
	}
	e.ok(asRoot, "CreateVolume", "sa{ss}", "second", "0")
	if st, m := e.d.Call("/VolumeDriver.Get", map[string]any{"Name": "second"}); st != 200 || m["Err"] != nil {
		t.Errorf("the first butterd's plugin: %d %v", st, m)
	}
}

// Without a reachable bus, butterd serves the plugin and says that
// management over D-Bus is unavailable. StartButterd gives it no bus: it
// must not find the machine's own.
func TestDBusUnavailableWithoutBus(t *testing.T) {
	root := filepath.Join(testenv.Btrfs(t), "root")
	d := testenv.StartButterd(t, root, filepath.Join(t.TempDir(), "btrfs.sock"))
	if st, m := d.Call("/VolumeDriver.Create", map[string]any{"Name": "nobus"}); st != 200 || m["Err"] != nil {
		t.Fatalf("plugin Create without a bus: %d %v", st, m)
	}
	if st, m := d.Call("/VolumeDriver.List", map[string]any{}); st != 200 || m["Err"] != nil || !strings.Contains(fmt.Sprint(m["Volumes"]), "nobus") {
		t.Fatalf("plugin List without a bus: %d %v", st, m)
	}
	log := d.Log()
	if !regexp.MustCompile(`management over D-Bus.*is unavailable`).MatchString(log) {
		t.Errorf("the log does not say management over D-Bus is unavailable:\n%s", log)
	}
	if !strings.Contains(log, strings.TrimPrefix(testenv.NoBusAddress, "unix:path=")) {
		t.Errorf("butterd did not try the test's address %s:\n%s", testenv.NoBusAddress, log)
	}
}
