package piececache

import (
	"errors"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

var errPunchUnsupported = errors.New("punching holes is not supported here")

// punchFile frees the bytes [off, off+n) of a file, keeping its size: they read as zeros and take
// no blocks (partial blocks at the ends are zeroed).
func punchFile(path string, off, n int64) error {
	if n <= 0 {
		return nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if errors.Is(err, fs.ErrPermission) {
		// Files completed by older gateways were made read-only.
		if err = os.Chmod(path, 0o644); err == nil {
			f, err = os.OpenFile(path, os.O_WRONLY, 0)
		}
	}
	if err != nil {
		return err
	}
	defer f.Close()
	err = unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.ENODEV) {
		return errors.Join(errPunchUnsupported, err)
	}
	return err
}
