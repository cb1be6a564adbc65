package server

import (
	"reflect"
	"strings"
	"unicode/utf8"

	"github.com/godbus/dbus/v5"
)

// The bus carries only valid UTF-8 without NUL: godbus refuses to encode
// anything else, and the caller then gets a bus error (or, for an error
// reply, no answer at all) instead of butterd's. Text from outside
// butterd (a container command's output, btrfs receive's messages quoting
// file names, a peer's error line) can be any bytes, so every reply, error
// reply and signal of this package goes through clean: the methods through
// cleanMethods, the signals through emit.

// cleanText is s with each run of bytes that are not UTF-8, and each
// control character other than newline and tab, replaced by U+FFFD.
func cleanText(s string) string {
	if utf8.ValidString(s) && strings.IndexFunc(s, isControl) < 0 {
		return s
	}
	return strings.Map(func(r rune) rune {
		if isControl(r) {
			return utf8.RuneError
		}
		return r
	}, strings.ToValidUTF8(s, string(utf8.RuneError)))
}

func isControl(r rune) bool { return r < 0x20 && r != '\n' && r != '\t' }

// clean is v with cleanText applied to every string in it, however deep
// (structs, slices, maps, variants, *dbus.Error). v itself is never
// changed: what holds a changed string is copied.
func clean(v any) any {
	if v == nil {
		return nil
	}
	c, changed := cleanValue(reflect.ValueOf(v))
	if !changed {
		return v
	}
	return c.Interface()
}

var variantType = reflect.TypeFor[dbus.Variant]()

// cleanValue is clean on a reflect.Value; it also tells whether anything
// changed.
func cleanValue(v reflect.Value) (reflect.Value, bool) {
	switch v.Kind() {
	case reflect.String:
		s := cleanText(v.String())
		if s == v.String() {
			return v, false
		}
		return reflect.ValueOf(s).Convert(v.Type()), true
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return v, false
		}
		e, changed := cleanValue(v.Elem())
		if !changed {
			return v, false
		}
		out := reflect.New(v.Type()).Elem()
		if v.Kind() == reflect.Pointer {
			out = reflect.New(v.Type().Elem())
			out.Elem().Set(e)
			return out, true
		}
		out.Set(e)
		return out, true
	case reflect.Struct:
		if v.Type() == variantType {
			vv := v.Interface().(dbus.Variant)
			inner, changed := cleanValue(reflect.ValueOf(vv.Value()))
			if !changed {
				return v, false
			}
			return reflect.ValueOf(dbus.MakeVariantWithSignature(inner.Interface(), vv.Signature())), true
		}
		var out reflect.Value
		for i := range v.NumField() {
			if !v.Type().Field(i).IsExported() {
				continue
			}
			f, changed := cleanValue(v.Field(i))
			if !changed {
				continue
			}
			if !out.IsValid() {
				out = reflect.New(v.Type()).Elem()
				out.Set(v)
			}
			out.Field(i).Set(f)
		}
		if !out.IsValid() {
			return v, false
		}
		return out, true
	case reflect.Slice, reflect.Array:
		var out reflect.Value
		for i := range v.Len() {
			e, changed := cleanValue(v.Index(i))
			if !changed {
				continue
			}
			if !out.IsValid() {
				if v.Kind() == reflect.Slice {
					out = reflect.MakeSlice(v.Type(), v.Len(), v.Len())
					reflect.Copy(out, v)
				} else {
					out = reflect.New(v.Type()).Elem()
					out.Set(v)
				}
			}
			out.Index(i).Set(e)
		}
		if !out.IsValid() {
			return v, false
		}
		return out, true
	case reflect.Map:
		changed := false
		out := reflect.MakeMapWithSize(v.Type(), v.Len())
		for it := v.MapRange(); it.Next(); {
			k, kc := cleanValue(it.Key())
			e, ec := cleanValue(it.Value())
			changed = changed || kc || ec
			out.SetMapIndex(k, e)
		}
		if !changed {
			return v, false
		}
		return out, true
	}
	return v, false
}

// cleanMethods is the method table of v, a value whose methods godbus's
// Export would serve or a table of functions, with each method's answer
// (and error) cleaned.
func cleanMethods(v any) map[string]any {
	table := map[string]any{}
	if m, ok := v.(map[string]any); ok {
		for name, f := range m {
			table[name] = cleanAnswers(reflect.ValueOf(f))
		}
		return table
	}
	rv := reflect.ValueOf(v)
	errType := reflect.TypeFor[*dbus.Error]()
	for i := range rv.NumMethod() {
		t := rv.Method(i).Type()
		if t.NumOut() == 0 || t.Out(t.NumOut()-1) != errType {
			continue
		}
		table[rv.Type().Method(i).Name] = cleanAnswers(rv.Method(i))
	}
	return table
}

// cleanAnswers is f, whose results are cleaned.
func cleanAnswers(f reflect.Value) any {
	return reflect.MakeFunc(f.Type(), func(args []reflect.Value) []reflect.Value {
		out := f.Call(args)
		for i := range out {
			out[i], _ = cleanValue(out[i])
		}
		return out
	}).Interface()
}
