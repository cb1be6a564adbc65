package service

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"butterd/btrfs"
	"butterd/internal/atomicfile"
)

// EnsurePool makes sure the data root is on BTRFS. When it is not, butterd
// uses its own pool: a sparse image ROOT.img beside it, made once (under a
// temporary name, renamed when formatted) and loop-mounted on the data
// root. It formats nothing but its own image and mounts only on a missing
// or empty directory. It logs what it found or did.
func EnsurePool(root, size string, log *slog.Logger) error {
	root = filepath.Clean(root)
	if err := os.MkdirAll(root, 0o700); err != nil {
		return err
	}
	if ok, err := btrfs.IsBtrfs(root); err != nil || ok {
		if ok {
			log.Info("data root is on BTRFS: no pool image to mount", "data_root", root)
		}
		return err
	}
	// Two butterds starting at once must not both make and mount a pool.
	unlock, err := lockDir(filepath.Dir(root))
	if err != nil {
		return err
	}
	defer unlock()
	if ok, err := btrfs.IsBtrfs(root); err != nil || ok {
		if ok {
			log.Info("data root is on BTRFS (mounted meanwhile): no pool image to mount", "data_root", root)
		}
		return err
	}
	if err := requireEmptyDir(root); err != nil {
		return err
	}
	image := root + ".img"
	if _, err := os.Stat(image); errors.Is(err, fs.ErrNotExist) {
		bytes, err := parseSize(size)
		if err != nil {
			return err
		}
		if err := makeImage(image, bytes, log); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	if err := btrfs.MountLoop(image, root); err != nil {
		return fmt.Errorf("mount pool image %q on %q: %w", image, root, err)
	}
	log.Info("data root is not on BTRFS: mounted butterd's pool image there", "image", image, "data_root", root,
		"grow", "truncate -s +10G "+image+" && losetup -c $(losetup -j "+image+" -O NAME -n) && btrfs filesystem resize max "+root)
	return nil
}

// OnBtrfs reports whether the data root is on BTRFS (a missing data root
// is not).
func OnBtrfs(root string) (bool, error) {
	ok, err := btrfs.IsBtrfs(root)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return ok, err
}

func requireEmptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	if len(entries) > 0 {
		return errorf(ErrInvalidArg, "data root %q is not on BTRFS and not empty: butterd mounts its pool only on an empty directory; point DATA_ROOT at a BTRFS filesystem or an empty directory", dir)
	}
	return nil
}

func makeImage(image string, size int64, log *slog.Logger) error {
	tmp := fmt.Sprintf("%s.tmp-%d", image, os.Getpid())
	defer os.Remove(tmp) // the image is linked under its name by then
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	err = f.Truncate(size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("create pool image %q: %w", tmp, err)
	}
	if err := btrfs.Mkfs(tmp, "butterd"); err != nil {
		return err
	}
	// A link, unlike a rename, never replaces an image that exists.
	if err := os.Link(tmp, image); err != nil {
		return err
	}
	log.Info("created pool image", "image", image, "size", size)
	return atomicfile.Sync(filepath.Dir(image))
}

// lockDir takes a blocking flock on a directory.
func lockDir(dir string) (func(), error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %q: %w", dir, err)
	}
	return func() { f.Close() }, nil
}

// parseSize reads sizes such as 512M, 20G or 1T (powers of 1024).
func parseSize(in string) (int64, error) {
	s := strings.TrimSpace(strings.ToUpper(in))
	mult := int64(1)
	if n := len(s); n > 0 {
		switch s[n-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		case 'T':
			mult = 1 << 40
		}
		if mult > 1 {
			s = s[:n-1]
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v <= 0 || v > (1<<62)/mult {
		return 0, errorf(ErrInvalidArg, "pool size %q: use a positive number with K, M, G or T", in)
	}
	if v*mult < 256<<20 {
		return 0, errorf(ErrInvalidArg, "pool size %q: at least 256M", in)
	}
	return v * mult, nil
}
