package allocnet

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Each test runs a Manager in a fresh, unnamed network namespace standing
// for the worker host (New is called on a thread in it, as the agent calls
// it in its own), with subnets inside 198.19.0.0/16. Nothing is created in
// the test process's own namespace and no fixed names are used outside the
// test's namespaces and temporary directory, so the tests can run beside
// others. The host namespace, and with it every veth and route, goes when
// its last handle is closed; the allocations' namespace files (bind mounts
// in the test's temporary directory) are unmounted in t.Cleanup, pass or
// fail.

// requirePrereqs fails (never skips): a machine that cannot run these
// tests must not pass by running nothing.
func requirePrereqs(tb testing.TB) {
	tb.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root (network namespaces, veths, routes and mounts need CAP_NET_ADMIN and CAP_SYS_ADMIN)")
	}
	if _, err := os.Stat("/proc/thread-self/ns/net"); err != nil {
		missing = append(missing, "network namespaces (/proc/thread-self/ns/net: "+err.Error()+")")
	}
	if len(missing) > 0 {
		tb.Fatalf("netenforce/allocnet tests need: %s", strings.Join(missing, "; "))
	}
}

type testEnv struct {
	tb     testing.TB
	host   netns.NsHandle
	dir    string // the Manager's StateDir
	nsDir  string // its NetnsDir
	subnet netip.Prefix
}

func newEnv(tb testing.TB, subnet string) *testEnv {
	tb.Helper()
	requirePrereqs(tb)
	dir := tb.TempDir()
	e := &testEnv{tb: tb, host: -1, dir: filepath.Join(dir, "state"), nsDir: filepath.Join(dir, "netns"), subnet: netip.MustParsePrefix(subnet)}
	// Registered after TempDir's cleanup, so it runs before it: the
	// directory must hold no mounts when TempDir removes it.
	tb.Cleanup(func() {
		ents, _ := os.ReadDir(e.nsDir)
		for _, ent := range ents {
			if err := removeNetns(filepath.Join(e.nsDir, ent.Name())); err != nil {
				tb.Errorf("cleanup: %v", err)
			}
		}
		if e.host >= 0 {
			e.host.Close()
		}
	})
	err := onThreadInNew(func() error {
		h, err := netns.Get()
		if err != nil {
			return err
		}
		e.host = h
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		return netlink.LinkSetUp(lo)
	})
	if err != nil {
		tb.Fatalf("cannot make a network namespace for the test host: %v", err)
	}
	return e
}

func (e *testEnv) config() Config {
	return Config{Subnet: e.subnet, StateDir: e.dir, NetnsDir: e.nsDir}
}

// newManager starts a Manager in the host namespace, as an agent does.
func (e *testEnv) newManager(cfg Config) *Manager {
	e.tb.Helper()
	var m *Manager
	err := onThreadIn(e.host, func() (err error) {
		m, err = New(cfg)
		return err
	})
	if err != nil {
		e.tb.Fatalf("New: %v", err)
	}
	e.tb.Cleanup(func() { m.Close() })
	return m
}

// hostDo runs f on a thread in the host namespace.
func (e *testEnv) hostDo(f func() error) {
	e.tb.Helper()
	if err := onThreadIn(e.host, f); err != nil {
		e.tb.Fatal(err)
	}
}

func (e *testEnv) hostHandle() *netlink.Handle {
	e.tb.Helper()
	h, err := handleIn(e.host)
	if err != nil {
		e.tb.Fatal(err)
	}
	e.tb.Cleanup(h.Close)
	return h
}

func setup(tb testing.TB, m *Manager, id string) *Attachment {
	tb.Helper()
	at, err := m.Setup(id)
	if err != nil {
		tb.Fatalf("Setup(%s): %v", id, err)
	}
	return at
}

// allocNS opens an allocation's namespace as a container would join it.
func allocNS(tb testing.TB, at *Attachment) netns.NsHandle {
	tb.Helper()
	ns, ok, err := openNetns(at.NetnsPath)
	if err != nil || !ok {
		tb.Fatalf("%s is not a network namespace: %v", at.NetnsPath, err)
	}
	tb.Cleanup(func() { ns.Close() })
	return ns
}

// inode identifies a namespace: the same inode is the same namespace.
func inode(tb testing.TB, path string) uint64 {
	tb.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		tb.Fatal(err)
	}
	return st.Ino
}

// echoServer serves TCP echo on addr inside ns until the test ends.
func echoServer(tb testing.TB, ns netns.NsHandle, addr string) {
	tb.Helper()
	var l net.Listener
	if err := onThreadIn(ns, func() (err error) { l, err = net.Listen("tcp4", addr); return err }); err != nil {
		tb.Fatalf("listen on %s: %v", addr, err)
	}
	tb.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
}

// dial opens a TCP connection from inside ns.
func dial(ns netns.NsHandle, addr string, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := onThreadIn(ns, func() (err error) {
		c, err = net.DialTimeout("tcp4", addr, timeout)
		return err
	})
	return c, err
}

// roundTrip sends a message over c and expects it back.
func roundTrip(c net.Conn) error {
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	msg := []byte(fmt.Sprintf("hello %s", c.LocalAddr()))
	if _, err := c.Write(msg); err != nil {
		return err
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if string(buf) != string(msg) {
		return fmt.Errorf("echo returned %q", buf)
	}
	return nil
}

// echo connects from ns to addr and checks an exchange.
func echo(ns netns.NsHandle, addr string) error {
	c, err := dial(ns, addr, 2*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	return roundTrip(c)
}

// readSysctl reads a sysctl of ns.
func readSysctl(tb testing.TB, ns netns.NsHandle, key string) string {
	tb.Helper()
	var v []byte
	if err := onThreadIn(ns, func() (err error) { v, err = os.ReadFile(filepath.Join("/proc/sys", key)); return err }); err != nil {
		tb.Fatal(err)
	}
	return strings.TrimSpace(string(v))
}
