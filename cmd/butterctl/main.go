// Command butterctl manages butterd's volumes and snapshots. It talks to
// butterd over the system D-Bus only.
package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, dialBus)
	stop()
	os.Exit(code)
}

// run runs one command line and returns its exit code. It is the one place
// that prints errors: a single line on stderr.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, dial dialFunc) int {
	out := bufio.NewWriter(stdout)
	a := &app{out: out, dial: dial, stdout: stdout, stderr: stderr}
	err := a.dispatch(ctx, args)
	out.Flush()
	if a.client != nil {
		a.client.Close()
	}
	if err == nil {
		return exitOK
	}
	code, msg := classify(err)
	if msg != "" {
		fmt.Fprintf(stderr, "butterctl: %s\n", oneLine(msg))
	}
	if u, ok := err.(*usageError); ok && u.full != "" {
		fmt.Fprint(stderr, u.full)
	}
	return code
}

// oneLine keeps an error message on one line.
func oneLine(s string) string {
	return strings.TrimSpace(strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == '\t' {
			return ' '
		}
		return r
	}, s))
}
