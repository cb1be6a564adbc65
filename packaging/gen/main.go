// Command gen writes what the packages ship that is derived from the code:
// man pages from the binaries' own help (butterctl's with a section per
// verb of its command table), butterctl's shell completions from that
// table (every verb and its flags, read from `butterctl --json help`), and
// butterd-schedules.target from units.RenderTarget.
//
//	go run ./packaging/gen man VERSION OUTDIR BUTTERD BUTTERCTL
//	go run ./packaging/gen completions OUTDIR BUTTERCTL
//	go run ./packaging/gen target >packaging/systemd/butterd-schedules.target
package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"

	"butterd/units"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch a := os.Args[2:]; os.Args[1] {
	case "man":
		if len(a) != 4 {
			usage()
		}
		err = manPages(a[0], a[1], a[2], a[3])
	case "completions":
		if len(a) != 2 {
			usage()
		}
		err = completions(a[0], a[1])
	case "target":
		_, err = os.Stdout.Write(units.RenderTarget())
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: gen man VERSION OUTDIR BUTTERD BUTTERCTL | gen completions OUTDIR BUTTERCTL | gen target")
	os.Exit(2)
}

// help runs a binary with args and returns what it printed (Go's flag
// package prints usage on stderr).
func help(bin string, args ...string) (string, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LANG=C"}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s %s: %v\n%s", bin, strings.Join(args, " "), err, out)
	}
	return strings.ReplaceAll(string(out), "\t", "    "), nil
}
