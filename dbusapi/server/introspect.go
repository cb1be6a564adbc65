package server

import "encoding/xml"

// The introspection data is generated from these tables; a test checks that
// every method's Go signature matches its table entry, so they cannot drift.

type arg struct{ name, sig string }

type methodSpec struct {
	name    string
	in, out []arg
	changes bool // needs root or group butterd
}

type signalSpec struct {
	name string
	args []arg
}

type propSpec struct{ name, sig string }

type ifaceSpec struct {
	name    string
	methods []methodSpec
	signals []signalSpec
	props   []propSpec
	notes   map[string]string // property name: what its value means, as an XML comment
}

type xmlNode struct {
	XMLName    xml.Name   `xml:"node"`
	Interfaces []xmlIface `xml:"interface"`
	Children   []xmlChild `xml:"node"`
}

type xmlChild struct {
	Name string `xml:"name,attr"`
}

type xmlIface struct {
	Name    string      `xml:"name,attr"`
	Methods []xmlMethod `xml:"method"`
	Signals []xmlMethod `xml:"signal"`
	Props   []xmlProp   `xml:"property"`
}

type xmlMethod struct {
	Name string   `xml:"name,attr"`
	Args []xmlArg `xml:"arg"`
}

type xmlArg struct {
	Name      string `xml:"name,attr"`
	Type      string `xml:"type,attr"`
	Direction string `xml:"direction,attr,omitempty"`
}

type xmlProp struct {
	Name    string `xml:"name,attr"`
	Type    string `xml:"type,attr"`
	Access  string `xml:"access,attr"`
	Comment string `xml:",comment"`
}

const introspectHeader = `<!DOCTYPE node PUBLIC "-//freedesktop//DTD D-BUS Object Introspection 1.0//EN"
"http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd">
`

// standardIfaces are what every object answers (godbus answers Peer).
var standardIfaces = []ifaceSpec{
	{name: "org.freedesktop.DBus.Introspectable", methods: []methodSpec{
		{name: "Introspect", out: []arg{{"xml_data", "s"}}},
	}},
	{name: "org.freedesktop.DBus.Peer", methods: []methodSpec{
		{name: "Ping"},
		{name: "GetMachineId", out: []arg{{"machine_uuid", "s"}}},
	}},
}

var propertiesIface = ifaceSpec{name: "org.freedesktop.DBus.Properties", methods: []methodSpec{
	{name: "Get", in: []arg{{"interface_name", "s"}, {"property_name", "s"}}, out: []arg{{"value", "v"}}},
	{name: "GetAll", in: []arg{{"interface_name", "s"}}, out: []arg{{"props", "a{sv}"}}},
	{name: "Set", in: []arg{{"interface_name", "s"}, {"property_name", "s"}, {"value", "v"}}},
}}

// introspect renders an object's interfaces and child nodes.
func introspect(ifaces []ifaceSpec, children []string) string {
	n := xmlNode{}
	for _, sp := range append(append([]ifaceSpec{}, standardIfaces...), ifaces...) {
		xi := xmlIface{Name: sp.name}
		for _, m := range sp.methods {
			xm := xmlMethod{Name: m.name}
			for _, a := range m.in {
				xm.Args = append(xm.Args, xmlArg{a.name, a.sig, "in"})
			}
			for _, a := range m.out {
				xm.Args = append(xm.Args, xmlArg{a.name, a.sig, "out"})
			}
			xi.Methods = append(xi.Methods, xm)
		}
		for _, s := range sp.signals {
			xs := xmlMethod{Name: s.name}
			for _, a := range s.args {
				xs.Args = append(xs.Args, xmlArg{Name: a.name, Type: a.sig})
			}
			xi.Signals = append(xi.Signals, xs)
		}
		for _, p := range sp.props {
			xi.Props = append(xi.Props, xmlProp{p.name, p.sig, "read", commentText(sp.notes[p.name])})
		}
		n.Interfaces = append(n.Interfaces, xi)
	}
	for _, c := range children {
		n.Children = append(n.Children, xmlChild{c})
	}
	out, _ := xml.MarshalIndent(n, "", " ")
	return introspectHeader + string(out) + "\n"
}

// commentText pads a note for an XML comment: " note ", or "" for none.
func commentText(note string) string {
	if note == "" {
		return ""
	}
	return " " + note + " "
}
