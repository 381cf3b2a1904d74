//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package audit

import (
	"fmt"
	"os"
	"syscall"
)

// lockDir takes an exclusive lock on <dir>/audit.lock. Two writers on one
// directory would interleave two chains in one file and break both, so the
// second one must fail to open instead. The lock goes when the file is
// closed, or the process dies.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(lockPath(dir), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("another audit writer has %s open: %w", dir, err)
	}
	return f, nil
}
