package allocnet

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// onThreadIn runs f on a new OS thread switched into ns. The thread is
// never switched back: the goroutine exits still locked, so the runtime
// ends the thread instead of reusing one whose namespace differs from the
// rest of the process (the same pattern as netenforce/wg's runInNetns).
func onThreadIn(ns netns.NsHandle, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := netns.Set(ns); err != nil {
			errc <- fmt.Errorf("enter network namespace: %w", err)
			return
		}
		errc <- f()
	}()
	return <-errc
}

// onThreadInNew runs f on a new OS thread in a new, empty network
// namespace, thrown away after like onThreadIn's.
func onThreadInNew(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("unshare the network namespace: %w", err)
			return
		}
		errc <- f()
	}()
	return <-errc
}

// openNetns opens the namespace bind-mounted at path. ok is false (with no
// error) when path is missing or is not a mounted network namespace, such
// as the empty file an agent that died between creating and mounting it
// leaves behind.
func openNetns(path string) (ns netns.NsHandle, ok bool, err error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) {
		return -1, false, nil
	}
	if err != nil {
		return -1, false, fmt.Errorf("open %s: %w", path, err)
	}
	var st unix.Statfs_t
	if err := unix.Fstatfs(fd, &st); err != nil {
		unix.Close(fd)
		return -1, false, fmt.Errorf("statfs %s: %w", path, err)
	}
	if st.Type != unix.NSFS_MAGIC {
		unix.Close(fd)
		return -1, false, nil
	}
	if t, err := unix.IoctlRetInt(fd, unix.NS_GET_NSTYPE); err != nil || t != unix.CLONE_NEWNET {
		unix.Close(fd)
		return -1, false, nil
	}
	return netns.NsHandle(fd), true, nil
}

// newNetns makes a network namespace bind-mounted at path (as `ip netns
// add` does) and opens it.
func newNetns(path string) (netns.NsHandle, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return -1, err
	}
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return -1, err
	}
	f.Close()
	err = onThreadInNew(func() error {
		if err := unix.Mount("/proc/thread-self/ns/net", path, "none", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind-mount the namespace at %s: %w", path, err)
		}
		return nil
	})
	if err != nil {
		_ = os.Remove(path)
		return -1, err
	}
	ns, ok, err := openNetns(path)
	if err == nil && !ok {
		err = fmt.Errorf("%s is not a network namespace right after mounting one there", path)
	}
	if err != nil {
		_ = removeNetns(path)
		return -1, err
	}
	return ns, nil
}

// removeNetns unmounts and removes the namespace file at path; a missing
// or unmounted file is fine. The namespace itself ends when the last
// process in it does.
func removeNetns(path string) error {
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", path, err)
	}
	return nil
}

// handleIn opens a netlink socket inside ns.
func handleIn(ns netns.NsHandle) (*netlink.Handle, error) {
	var h *netlink.Handle
	err := onThreadIn(ns, func() (err error) {
		h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
		return err
	})
	return h, err
}

// sysctl sets a sysctl of the calling thread's network namespace.
func sysctl(key, v string) error {
	if err := os.WriteFile(filepath.Join("/proc/sys", key), []byte(v), 0o644); err != nil {
		return fmt.Errorf("sysctl %s=%s: %w", key, v, err)
	}
	return nil
}
