//go:build !linux && !wasm

package storage

// startWriteback is msync where sync_file_range is missing: it waits for the disk, as upstream
// does. swarmgate patch: see flush in file-io-mmap.go.
func startWriteback(m *fileMmap, offset, nbytes int64) error {
	return msync(m.m, int(offset), int(nbytes))
}
