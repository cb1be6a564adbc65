package units

import "strings"

// execArg writes one argument of ExecStart= (systemd.service(5) "Command
// lines", systemd.syntax(7) "Quoting"): '%' as "%%" and '$' as "$$", and in
// double quotes with '\' and '"' escaped unless it is made only of
// characters systemd reads literally.
func execArg(a string) string {
	a = escPercentDollar.Replace(a)
	if a != "" && strings.IndexFunc(a, func(r rune) bool { return !execPlain(r) }) < 0 {
		return a
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(a) + `"`
}

func execPlain(r rune) bool {
	return r < 0x80 && alnum(byte(r)) || strings.ContainsRune("_.,:@/=+-[]%$", r)
}

// checkExecutable keeps the butterctl path plain: absolute, without "."
// or ".." components, made of [a-zA-Z0-9_.+@:/-]. systemd expands neither
// quotes nor variables in it then, and needs no escaping.
func checkExecutable(p string) error {
	if err := checkText("butterctl path", p); err != nil {
		return err
	}
	if !strings.HasPrefix(p, "/") {
		return invalidf("butterctl path %q must be absolute", p)
	}
	for _, part := range strings.Split(p[1:], "/") {
		if part == "" || part == "." || part == ".." {
			return invalidf("butterctl path %q must be clean (no empty, '.' or '..' component)", p)
		}
	}
	for _, r := range p {
		if !(r < 0x80 && alnum(byte(r)) || strings.ContainsRune("_.+@:/-", r)) {
			return invalidf("butterctl path %q includes %q: only [a-zA-Z0-9_.+@:/-] is allowed", p, r)
		}
	}
	return nil
}
