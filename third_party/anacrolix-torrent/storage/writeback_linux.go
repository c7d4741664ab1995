package storage

import "golang.org/x/sys/unix"

// startWriteback queues the dirty pages of [offset, offset+nbytes) of m's file for writing
// (sync_file_range SYNC_FILE_RANGE_WRITE) without waiting for them. swarmgate patch: see flush in
// file-io-mmap.go.
func startWriteback(m *fileMmap, offset, nbytes int64) error {
	m.mu.RLock() // close takes it to close the file
	defer m.mu.RUnlock()
	rc, err := m.f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SyncFileRange(int(fd), offset, nbytes, unix.SYNC_FILE_RANGE_WRITE)
	}); err != nil {
		return err
	}
	return serr
}
