package server

import (
	"encoding/xml"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/godbus/dbus/v5"
)

var (
	senderType = reflect.TypeOf(dbus.Sender(""))
	messageTyp = reflect.TypeOf(dbus.Message{})
	errType    = reflect.TypeOf(&dbus.Error{})
)

// The introspection tables and the Go methods cannot drift: every table
// entry has a method with exactly its D-Bus signature, and every exported
// method of Manager has a table entry.
func TestManagerSpecMatchesCode(t *testing.T) {
	typ := reflect.TypeOf(&Manager{})
	seen := map[string]bool{}
	for _, m := range managerSpec.methods {
		seen[m.name] = true
		meth, ok := typ.MethodByName(m.name)
		if !ok {
			t.Errorf("%s is in the introspection data but not in the code", m.name)
			continue
		}
		in, out, senderFirst := goSignature(meth.Type)
		if want := sigs(m.in); in != want {
			t.Errorf("%s: code takes (%s), introspection says (%s)", m.name, in, want)
		}
		if want := sigs(m.out); out != want {
			t.Errorf("%s: code returns (%s), introspection says (%s)", m.name, out, want)
		}
		if m.changes != senderFirst {
			t.Errorf("%s: changes=%v but takes the sender=%v (changing methods must check the caller)", m.name, m.changes, senderFirst)
		}
		for _, a := range m.in {
			if a.name == "" || strings.ToLower(a.name) != a.name {
				t.Errorf("%s: argument %q must be named in snake_case", m.name, a.name)
			}
		}
	}
	for i := 0; i < typ.NumMethod(); i++ {
		if name := typ.Method(i).Name; !seen[name] {
			t.Errorf("method %s is exported on the bus but missing from the introspection data", name)
		}
	}
}

func goSignature(ft reflect.Type) (in, out string, sender bool) {
	var ins, outs []string
	for i := 1; i < ft.NumIn(); i++ { // 0 is the receiver
		switch p := ft.In(i); p {
		case senderType:
			sender = true
		case messageTyp:
		default:
			ins = append(ins, dbus.SignatureOfType(p).String())
		}
	}
	for i := 0; i < ft.NumOut(); i++ {
		if p := ft.Out(i); p != errType {
			outs = append(outs, dbus.SignatureOfType(p).String())
		}
	}
	return strings.Join(ins, ","), strings.Join(outs, ","), sender
}

func sigs(args []arg) string {
	s := make([]string, len(args))
	for i, a := range args {
		s[i] = a.sig
	}
	return strings.Join(s, ",")
}

func TestIntrospectionIsValidXML(t *testing.T) {
	data := introspect([]ifaceSpec{managerSpec}, []string{"volume", "snapshot"})
	var n xmlNode
	if err := xml.Unmarshal([]byte(strings.SplitN(data, "\n", 3)[2]), &n); err != nil {
		t.Fatalf("introspection XML: %v\n%s", err, data)
	}
	if !strings.Contains(data, `<arg name="new_name" type="s" direction="in">`) {
		t.Errorf("named arguments missing:\n%s", data)
	}
}

// Notes on properties name properties of their interface and show in the
// XML as comments, which may not hold "--".
func TestPropertyNotes(t *testing.T) {
	for _, sp := range []ifaceSpec{volumeSpec, snapshotSpec, scheduleSpec, jobSpec} {
		for name, note := range sp.notes {
			if !slices.ContainsFunc(sp.props, func(p propSpec) bool { return p.name == name }) {
				t.Errorf("%s: a note for %s, which is not one of its properties", sp.name, name)
			}
			if strings.Contains(note, "--") || strings.HasSuffix(note, "-") {
				t.Errorf("%s.%s: note %q cannot be an XML comment", sp.name, name, note)
			}
		}
	}
	data := introspect([]ifaceSpec{volumeSpec}, nil)
	if !regexp.MustCompile(`<property name="Size" type="t" access="read">\s*<!-- bytes the subvolume references`).MatchString(data) {
		t.Errorf("no note on Size in:\n%s", data)
	}
	var n xmlNode
	if err := xml.Unmarshal([]byte(strings.SplitN(data, "\n", 3)[2]), &n); err != nil {
		t.Fatalf("introspection XML: %v\n%s", err, data)
	}
}
