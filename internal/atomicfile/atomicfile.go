// Package atomicfile writes a file so that a crash leaves the old content or the new, never part
// of the new: a synced temporary file in the same folder, renamed over the old one.
package atomicfile

import (
	"os"
	"path/filepath"
)

// Write writes b to path through a temporary file in path's folder, named by tmpPattern
// (os.CreateTemp's pattern: a folder's leftovers can then be recognised by it), synced before
// the rename. The rename itself is durable once the caller syncs the folder.
func Write(path string, b []byte, tmpPattern string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), tmpPattern)
	if err != nil {
		return err
	}
	_, err = tmp.Write(b)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}
