package units

import (
	"fmt"
	"strings"
)

// Escape escapes s for use in a unit name as `systemd-escape` does (without
// --path): '/' becomes '-'; a leading '.' and every byte outside
// [a-zA-Z0-9:_.] become \xNN (lowercase hex).
func Escape(s string) string {
	const hex = "0123456789abcdef"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '/':
			b.WriteByte('-')
		case c == '.' && i == 0, !escapeKeeps(c):
			b.WriteString(`\x`)
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&0xf])
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func escapeKeeps(c byte) bool { return alnum(c) || c == ':' || c == '_' || c == '.' }

// Unescape reverses Escape as `systemd-escape -u` does: '-' becomes '/' and
// \xNN the byte NN.
func Unescape(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '-':
			b.WriteByte('/')
		case '\\':
			if i+3 >= len(s) || s[i+1] != 'x' {
				return "", fmt.Errorf("unescape %q: bad escape at byte %d", s, i)
			}
			hi, ok1 := unhex(s[i+2])
			lo, ok2 := unhex(s[i+3])
			if !ok1 || !ok2 {
				return "", fmt.Errorf("unescape %q: bad escape at byte %d", s, i)
			}
			b.WriteByte(hi<<4 | lo)
			i += 3
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
