package units

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// checkText refuses what no field may hold: invalid UTF-8, newlines, control
// characters and other non-printing characters (spaces other than ' ').
func checkText(what, v string) error {
	if !utf8.ValidString(v) {
		return invalidf("%s %q is not valid UTF-8", what, v)
	}
	for _, r := range v {
		switch {
		case r == '\n' || r == '\r':
			return invalidf("%s %q contains a newline: not allowed in a unit file", what, v)
		case unicode.IsControl(r):
			return invalidf("%s %q contains control character %U: not allowed in a unit file", what, v, r)
		case !unicode.IsPrint(r):
			return invalidf("%s %q contains non-printing character %U: not allowed in a unit file", what, v, r)
		}
	}
	return nil
}

// Specifier and variable escaping (systemd.unit(5) "Specifiers",
// systemd.service(5) "Command lines").
var (
	escPercent         = strings.NewReplacer("%", "%%")
	escPercentDollar   = strings.NewReplacer("%", "%%", "$", "$$")
	unescPercentDollar = strings.NewReplacer("%%", "%", "$$", "$")
)
