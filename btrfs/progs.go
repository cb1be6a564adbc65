package btrfs

import (
	"bytes"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// run runs an external command (btrfs-progs, mount) and logs it with its
// duration at debug level. Its error carries the command's own output.
func run(op, path, name string, args ...string) error {
	start := time.Now()
	var out bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	debugDone(op, name+" "+strings.Join(args, " "), path, start, err)
	if err != nil {
		return &Error{Op: op, Path: path, Err: fmt.Errorf("%s: %v: %s", name, err, strings.TrimSpace(out.String()))}
	}
	return nil
}

// Mkfs formats an image file (never a device) with a label.
func Mkfs(image, label string) error {
	return run("mkfs", image, "mkfs.btrfs", "-q", "-L", label, image)
}

// MountLoop mounts a BTRFS image file on dir through a loop device (which is
// released again when dir is unmounted).
func MountLoop(image, dir string) error {
	return run("mount", dir, "mount", "-t", "btrfs", "-o", "loop", image, dir)
}
