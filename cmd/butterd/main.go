// Command butterd keeps Docker volumes as BTRFS subvolumes.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

const usage = `usage: butterd COMMAND [FLAGS]

Commands:
  run       serve the Docker volume plugin (socket-activated or on PLUGIN_SOCKET)
  pool      mount butterd's pool image on DATA_ROOT when it is not on BTRFS
  version   print the version

Run 'butterd run --help' for the flags and configuration keys,
'butterd pool --help' for the pool's.
`

var version = "dev"

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	var err error
	switch os.Args[1] {
	case "run":
		err = runCommand(ctx, os.Args[2:])
	case "pool":
		err = poolCommand(os.Args[2:])
	case "version", "--version":
		fmt.Println("butterd", version)
	case "help", "-h", "--help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "butterd: unknown command %q\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "butterd: %v\n", err)
		os.Exit(1)
	}
}
