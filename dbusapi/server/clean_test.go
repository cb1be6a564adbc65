package server

import (
	"encoding/binary"
	"errors"
	"io"
	"maps"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"butterd/dbusapi"
	"butterd/service"
)

func TestCleanText(t *testing.T) {
	for in, want := range map[string]string{
		"":                          "",
		"plain text, été ✓":         "plain text, été ✓",
		"two lines\nwith\ttabs":     "two lines\nwith\ttabs",
		"bad \xff byte":             "bad \uFFFD byte",
		"nul \x00 and esc \x1b[0m":  "nul \uFFFD and esc \uFFFD[0m",
		"cut mid-rune \xc3":         "cut mid-rune \uFFFD",
		"carriage\r\n":              "carriage\uFFFD\n",
		"run \xff\xfe\xfd of bytes": "run \uFFFD of bytes",
	} {
		if got := cleanText(in); got != want {
			t.Errorf("cleanText(%q) = %q, want %q", in, got, want)
		}
	}
}

// encode encodes a message of type typ with body as godbus does before
// sending it.
func encode(typ dbus.Type, body ...any) error {
	msg := &dbus.Message{Type: typ, Headers: map[dbus.HeaderField]dbus.Variant{
		dbus.FieldReplySerial: dbus.MakeVariant(uint32(1)),
		dbus.FieldSignature:   dbus.MakeVariant(dbus.SignatureOf(body...)),
	}, Body: body}
	if typ == dbus.TypeError {
		msg.Headers[dbus.FieldErrorName] = dbus.MakeVariant(dbusapi.ErrFailed)
	}
	return msg.EncodeTo(io.Discard, binary.LittleEndian)
}

// call calls a method of a table as godbus does and returns its results.
func call(table map[string]any, name string, args ...any) []any {
	in := make([]reflect.Value, len(args))
	for i, a := range args {
		in[i] = reflect.ValueOf(a)
	}
	var out []any
	for _, v := range reflect.ValueOf(table[name]).Call(in) {
		out = append(out, v.Interface())
	}
	return out
}

// A failed job whose texts hold what is not UTF-8, a NUL or an escape
// character is still readable with GetAll, the bad bytes shown as U+FFFD,
// and a method's error with such text is still an error reply.
func TestRepliesAreValidText(t *testing.T) {
	j := service.Job{ID: 7, Kind: "snapshot", Target: "db", State: service.JobFailed,
		Created: time.Unix(1_780_000_000, 0), Finished: time.Unix(1_780_000_001, 0),
		Error:      "pre command of container \"db\" failed (exit code 3: bad \xff \x00 \x1b end)",
		Summary:    "\xe2\x82",
		Notes:      []string{"pre: exit code 3: bad \xff \x00 \x1b end"},
		Containers: []service.ContainerReport{{Name: "db", Action: "paused", Held: time.Second, Note: "bad \xff"}},
	}
	rows := []dbusapi.JobRow{{ID: 7, Path: dbusapi.JobPath(7), Kind: "snapshot", Target: "db", State: "failed", Progress: 1}}
	if err := encode(dbus.TypeMethodReply, jobProps(j)); err == nil {
		t.Fatal("godbus encoded invalid UTF-8 and a NUL: this test no longer shows anything")
	}
	table := cleanMethods(map[string]any{
		"GetAll": func(msg dbus.Message, iface string) (map[string]dbus.Variant, *dbus.Error) { return jobProps(j), nil },
		"Fail":   func() *dbus.Error { return toDBus(errors.New("btrfs receive: ERROR: cannot open \xff\x00")) },
		"List":   func() ([]dbusapi.JobRow, [2]string, *dbus.Error) { return rows, [2]string{"a", "b"}, nil },
	})
	if out := call(table, "List"); !reflect.DeepEqual(out, []any{rows, [2]string{"a", "b"}, (*dbus.Error)(nil)}) {
		t.Errorf("List answered %v, want its text unchanged", out)
	}
	out := call(table, "GetAll", dbus.Message{}, dbusapi.JobIface)
	if err := encode(dbus.TypeMethodReply, out[0]); err != nil {
		t.Fatalf("GetAll's answer is not a valid message: %v", err)
	}
	props := out[0].(map[string]dbus.Variant)
	if got, want := props["Error"].Value(), "pre command of container \"db\" failed (exit code 3: bad \uFFFD \uFFFD \uFFFD end)"; got != want {
		t.Errorf("Error %q, want %q", got, want)
	}
	if got := props["Summary"].Value(); got != "\uFFFD" {
		t.Errorf("Summary %q", got)
	}
	if got := props["Notes"].Value(); !reflect.DeepEqual(got, []string{"pre: exit code 3: bad \uFFFD \uFFFD \uFFFD end"}) {
		t.Errorf("Notes %q", got)
	}
	if got := props["Containers"].Value().([]dbusapi.ContainerRow); got[0].Note != "bad \uFFFD" || got[0].Name != "db" || got[0].Held != 1e6 {
		t.Errorf("Containers %+v", got)
	}
	if props["Id"].Value() != uint32(7) || props["Kind"].Value() != "snapshot" {
		t.Errorf("Id %v, Kind %v: other properties changed", props["Id"], props["Kind"])
	}
	if j.Notes[0] != "pre: exit code 3: bad \xff \x00 \x1b end" || j.Containers[0].Note != "bad \xff" {
		t.Errorf("the job itself was changed: %q, %q", j.Notes, j.Containers[0].Note)
	}

	derr := call(table, "Fail")[0].(*dbus.Error)
	if err := encode(dbus.TypeError, derr.Body...); err != nil {
		t.Fatalf("the error reply is not a valid message: %v", err)
	}
	if derr.Name != dbusapi.ErrFailed || derr.Error() != "btrfs receive: ERROR: cannot open \uFFFD\uFFFD" {
		t.Errorf("error %s: %q", derr.Name, derr.Error())
	}
}

// Every method of the Manager is in its cleaned method table.
func TestManagerMethodsAreCleaned(t *testing.T) {
	table := cleanMethods(&Manager{})
	for _, m := range managerSpec.methods {
		f, ok := table[m.name]
		if !ok {
			t.Errorf("method %s is not exported", m.name)
			continue
		}
		if want := reflect.ValueOf(&Manager{}).MethodByName(m.name).Type(); reflect.TypeOf(f) != want {
			t.Errorf("method %s has type %v, want %v", m.name, reflect.TypeOf(f), want)
		}
	}
	if names := slices.Sorted(maps.Keys(table)); len(names) != len(managerSpec.methods) {
		t.Errorf("methods %q, want the %d of the introspection data", names, len(managerSpec.methods))
	}
}
