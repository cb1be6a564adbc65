// Package atomicfile writes files so that a crash leaves either the old or
// the new content, and removes the temporaries such a crash leaves behind.
package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Write writes data to path with mode perm atomically: a temporary file
// ".NAME.tmp-DIGITS" in the same directory, fsync, rename, fsync of the
// directory.
func Write(path string, data []byte, perm os.FileMode) error {
	return write(path, data, perm, os.Rename)
}

// WriteNew is Write that leaves an existing path alone: the error is then
// fs.ErrExist.
func WriteNew(path string, data []byte, perm os.FileMode) error {
	return write(path, data, perm, renameNoReplace)
}

func write(path string, data []byte, perm os.FileMode, rename func(old, new string) error) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // a no-op once renamed
	if perm != 0o600 {
		err = f.Chmod(perm)
	}
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %q: %w", path, err)
	}
	if err := rename(tmp, path); err != nil {
		return err
	}
	return Sync(dir)
}

// renameNoReplace renames old to new unless new exists (fs.ErrExist).
func renameNoReplace(old, new string) error {
	err := unix.Renameat2(unix.AT_FDCWD, old, unix.AT_FDCWD, new, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
		// A filesystem without RENAME_NOREPLACE: a hard link is as exclusive.
		err = os.Link(old, new)
	}
	if err != nil {
		return &os.LinkError{Op: "rename", Old: old, New: new, Err: err}
	}
	return nil
}

// Sync makes path durable: a file's data, or a directory's entries.
func Sync(path string) error {
	d, err := os.Open(path)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// RemoveStale deletes the temporary files that Write left in dir when the
// process died before renaming them: regular files ".NAME.tmp-DIGITS" whose
// NAME owned accepts. It returns those it deleted.
func RemoveStale(dir string, owned func(name string) bool) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, de := range entries {
		name, ok := tempTarget(de.Name())
		if !ok || !de.Type().IsRegular() || !owned(name) {
			continue
		}
		path := filepath.Join(dir, de.Name())
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return removed, err
		}
		removed = append(removed, path)
	}
	if len(removed) > 0 {
		return removed, Sync(dir)
	}
	return nil, nil
}

// tempTarget reads the name a temporary file of Write was for.
func tempTarget(file string) (string, bool) {
	rest, ok := strings.CutPrefix(file, ".")
	i := strings.LastIndex(rest, ".tmp-")
	if !ok || i <= 0 {
		return "", false
	}
	digits := rest[i+len(".tmp-"):]
	if digits == "" || strings.Trim(digits, "0123456789") != "" {
		return "", false
	}
	return rest[:i], true
}
