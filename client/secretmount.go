package client

import (
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// secretMounter makes and removes the in-memory filesystem that holds an
// allocation's secrets (STYLE: a small interface at the seam, so the unit
// tests use a plain directory and the agent a tmpfs).
type secretMounter interface {
	// mounted reports whether dir is already such a filesystem (an agent
	// restarted while the allocation ran).
	mounted(dir string) (bool, error)
	// mount makes dir an empty filesystem of at most size bytes, mode
	// 0700, owned by root, unless it already is one.
	mount(dir string, size int64) error
	// unmount unmounts dir if it is mounted and removes it.
	unmount(dir string) error
}

// tmpfsMounter keeps secrets in a tmpfs: values live in memory (tmpfs
// pages are not written to disk; swap aside, which a worker should not
// have) and vanish when it is unmounted or the machine stops.
type tmpfsMounter struct{}

// Flags of the secret tmpfs: nothing on it is a device, setuid or meant
// to run.
const tmpfsFlags = unix.MS_NODEV | unix.MS_NOSUID | unix.MS_NOEXEC

func (tmpfsMounter) mounted(dir string) (bool, error) {
	var st, parent unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return false, nil
		}
		return false, fmt.Errorf("stat %s: %w", dir, err)
	}
	if err := unix.Stat(filepath.Dir(dir), &parent); err != nil {
		return false, fmt.Errorf("stat %s: %w", filepath.Dir(dir), err)
	}
	if st.Dev == parent.Dev {
		return false, nil // a plain directory
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil {
		return false, fmt.Errorf("statfs %s: %w", dir, err)
	}
	if fs.Type != unix.TMPFS_MAGIC {
		return false, fmt.Errorf("%s is a mount point but not a tmpfs (type %#x); refusing to keep secrets there", dir, fs.Type)
	}
	return true, nil
}

func (m tmpfsMounter) mount(dir string, size int64) error {
	ok, err := m.mounted(dir)
	if err != nil || ok {
		return err
	}
	// A plain directory here is a leftover of an earlier failure; what
	// we write goes only into the tmpfs mounted over it.
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove leftover %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	opts := fmt.Sprintf("mode=0700,uid=0,gid=0,size=%d", size)
	if err := unix.Mount("tmpfs", dir, "tmpfs", tmpfsFlags, opts); err != nil {
		_ = os.Remove(dir)
		return fmt.Errorf("mount tmpfs at %s: %w", dir, err)
	}
	return nil
}

func (m tmpfsMounter) unmount(dir string) error {
	ok, err := m.mounted(dir)
	if err != nil {
		return err
	}
	if ok {
		if err := unix.Unmount(dir, 0); err != nil {
			if !errors.Is(err, unix.EBUSY) {
				return fmt.Errorf("unmount %s: %w", dir, err)
			}
			// Something on the host still has it open: detach it now;
			// the kernel frees it when the last user goes.
			if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
				return fmt.Errorf("unmount %s: %w", dir, err)
			}
		}
	}
	// Empty once unmounted; Remove (not RemoveAll) so a failed unmount
	// above can never make us walk into a mounted filesystem.
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// checkStatic makes sure the binary at path can run inside any container
// image: an ELF executable without a PT_INTERP header, so it needs no
// dynamic loader or libraries from the image. (The Makefile builds hive
// with the default CGO setting, which links it dynamically on most hosts.)
func checkStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("secrets as environment variables need the hive binary to run inside the container, and %s is not an ELF executable: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type != elf.PT_INTERP {
			continue
		}
		interp := "a dynamic loader"
		if b := make([]byte, min(p.Filesz, 256)); len(b) > 0 {
			if n, _ := p.ReadAt(b, 0); n > 0 {
				interp = string(trimNUL(b[:n]))
			}
		}
		return fmt.Errorf("secrets as environment variables need the hive binary to run inside the container, but %s is dynamically linked (it needs %s); rebuild it statically with CGO_ENABLED=0 go build ./cmd/hive", path, interp)
	}
	return nil
}

func trimNUL(b []byte) []byte {
	for i, c := range b {
		if c == 0 {
			return b[:i]
		}
	}
	return b
}

// signalNumber maps a change_signal name ("SIGHUP") to its number; 0 when
// unknown.
func signalNumber(name string) syscall.Signal {
	return unix.SignalNum(name)
}
