//go:build !linux

package piececache

import "errors"

var errPunchUnsupported = errors.New("punching holes is only implemented on Linux")

// punchFile would free the bytes [off, off+n) of a file; only Linux has it here.
func punchFile(path string, off, n int64) error {
	if n <= 0 {
		return nil
	}
	return errPunchUnsupported
}
