//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package audit

import "os"

// lockDir only creates the lock file where flock is missing: Hive runs on
// Linux, and this keeps the package building elsewhere for tools.
func lockDir(dir string) (*os.File, error) {
	return os.OpenFile(lockPath(dir), os.O_RDWR|os.O_CREATE, 0o600)
}
