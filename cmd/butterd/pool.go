package main

import (
	"errors"
	"flag"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"butterd/service"
)

// poolKeys are the configuration keys `butterd pool` reads.
var poolKeys = map[string]bool{"DATA_ROOT": true, "POOL_SIZE": true, "LOG_LEVEL": true}

// poolCommand makes sure the data root is on BTRFS: when it is not, it
// makes butterd's pool image once and loop-mounts it there. Repeating it
// changes nothing. butterd-pool.service runs it before butterd.service, so
// that the mount is made in the host's mount namespace, where dockerd sees
// it, while butterd itself runs in a private one.
func poolCommand(args []string) error {
	fs := flag.NewFlagSet("butterd pool", flag.ContinueOnError)
	configFile := fs.String("config", defaultConfigFile, "config file (KEY = value lines)")
	for _, k := range configKeys {
		if poolKeys[k.name] {
			fs.String(flagName(k.name), k.def, fmt.Sprintf("%s (env BUTTERD_%s, file key %s)", k.help, k.name, k.name))
		}
	}
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "usage: butterd pool [FLAGS]\n\nMakes sure DATA_ROOT is on BTRFS: when it is not, makes the sparse pool image\nDATA_ROOT.img once and loop-mounts it on DATA_ROOT; when it is, changes nothing.\nbutterd-pool.service runs it before butterd.service.\n\n")
		fs.PrintDefaults()
	}
	cfg, _, err := parseCommandLine(fs, args, configFile)
	if err != nil {
		return err
	}
	log, err := newLogger(cfg["LOG_LEVEL"])
	if err != nil {
		return err
	}
	return service.EnsurePool(cfg["DATA_ROOT"], cfg["POOL_SIZE"], log)
}

// parseCommandLine parses a command's flags and resolves its configuration
// (flags, env, the file named by --config, defaults); fileGiven says
// whether --config was given.
func parseCommandLine(fs *flag.FlagSet, args []string, configFile *string) (cfg config, fileGiven bool, err error) {
	if err := fs.Parse(args); err != nil {
		return nil, false, err
	}
	if fs.NArg() > 0 {
		return nil, false, fmt.Errorf("unexpected argument %q (see %s --help)", fs.Arg(0), fs.Name())
	}
	fs.Visit(func(f *flag.Flag) { fileGiven = fileGiven || f.Name == "config" })
	cfg, err = loadConfig(fs, *configFile, fileGiven, os.Getenv)
	return cfg, fileGiven, err
}

// requirePool is what `butterd run --mount-pool=false` does instead of
// mounting the pool: it fails unless the data root is on BTRFS and
// writable. butterd.service runs in a private mount namespace, where a
// mount of its own would be hidden from dockerd.
func requirePool(root string) error {
	ok, err := service.OnBtrfs(root)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("data root %q is not on BTRFS: run \"butterd pool\" first (systemctl start butterd-pool.service), or point DATA_ROOT at a BTRFS filesystem", root)
	}
	if err := unix.Access(root, unix.W_OK); errors.Is(err, unix.EROFS) {
		return fmt.Errorf("data root %q is read-only for butterd: butterd.service may write only to /var/lib/butterd and /etc/systemd/system; add ReadWritePaths=%s with systemctl edit butterd.service", root, root)
	}
	return nil
}
