package remote

import (
	"os"
	"path/filepath"

	"butterd/internal/atomicfile"
)

// writeFileAtomic writes data to path (mode 0600) atomically, making its
// directory first. With noReplace an existing path is left alone and the
// error is fs.ErrExist.
func writeFileAtomic(path string, data []byte, noReplace bool) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	if noReplace {
		return atomicfile.WriteNew(path, data, 0o600)
	}
	return atomicfile.Write(path, data, 0o600)
}
