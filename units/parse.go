package units

import (
	"bufio"
	"bytes"
	"strings"
)

// Parse reads a schedule back from its timer unit: the X-Butterd-* keys of
// the [Unit] section, with "%%" and "$$" read as '%' and '$'; the rest of the
// file is ignored. The schedule must validate. Its errors match ErrInvalid.
func Parse(timer []byte) (Schedule, error) {
	keys, err := readSection(timer, "Unit")
	if err != nil {
		return Schedule{}, err
	}
	get := func(k string) string { return unescPercentDollar.Replace(keys[k]) }
	s := Schedule{Action: get(KeyAction), Volume: get(KeyVolume), Arg: get(KeyArg), OnCalendar: get(KeyOnCalendar)}
	if s.Action == "" {
		return Schedule{}, invalidf("timer has no %s= key: not a butterd schedule", KeyAction)
	}
	if v, ok := keys[KeyEvery]; ok {
		if s.Every, err = ParseSpan(v); err != nil {
			return Schedule{}, invalidf("timer %s=: %v", KeyEvery, err)
		}
		if s.Every == 0 {
			return Schedule{}, invalidf("timer %s=%s: the interval must not be zero", KeyEvery, v)
		}
	}
	if v, ok := keys[KeyAccuracy]; ok {
		if s.Accuracy, err = ParseSpan(v); err != nil {
			return Schedule{}, invalidf("timer %s=: %v", KeyAccuracy, err)
		}
		if s.Accuracy == 0 {
			return Schedule{}, invalidf("timer %s=%s: the accuracy must not be zero", KeyAccuracy, v)
		}
	}
	if err := s.Validate(); err != nil {
		return Schedule{}, err
	}
	return s, nil
}

// readSection returns the X-Butterd-* assignments of one section of a unit
// file (systemd.syntax(7): comments start with '#' or ';', a trailing '\'
// continues a line). A key given twice is an error.
func readSection(unit []byte, section string) (map[string]string, error) {
	keys := map[string]string{}
	in, current := bufio.NewScanner(bytes.NewReader(unit)), ""
	in.Buffer(nil, 1<<20)
	for in.Scan() {
		l := strings.TrimSpace(in.Text())
		// A trailing '\' becomes a space and joins the next line; comment
		// lines in between are skipped.
		for strings.HasSuffix(l, `\`) && in.Scan() {
			next := strings.TrimSpace(in.Text())
			if strings.HasPrefix(next, "#") || strings.HasPrefix(next, ";") {
				continue
			}
			l = strings.TrimSuffix(l, `\`) + " " + next
		}
		switch {
		case l == "" || l[0] == '#' || l[0] == ';':
		case l[0] == '[':
			if !strings.HasSuffix(l, "]") {
				return nil, invalidf("unit file: bad section header %q", l)
			}
			current = l[1 : len(l)-1]
		default:
			k, v, ok := strings.Cut(l, "=")
			if !ok {
				return nil, invalidf("unit file: line %q is not KEY=VALUE", l)
			}
			k, v = strings.TrimSpace(k), strings.TrimSpace(v)
			if current != section || !strings.HasPrefix(k, "X-Butterd-") {
				continue
			}
			if _, dup := keys[k]; dup {
				return nil, invalidf("unit file: %s= is given twice", k)
			}
			keys[k] = v
		}
	}
	if err := in.Err(); err != nil {
		return nil, invalidf("unit file: %v", err)
	}
	return keys, nil
}
