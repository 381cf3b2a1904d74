package allocnet

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// The tests run the Manager on a thread switched into a fresh network
// namespace standing for the worker host, with a subnet in the test range
// 198.18.0.0/15. Everything they create goes in t.Cleanup.

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("allocnet tests need root (network namespaces, veths, routes)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatal(`allocnet tests need "ip" (apt-get install iproute2)`)
	}
}

// inNS runs f on a thread switched into ns.
func inNS(ns netns.NsHandle, f func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return err
	}
	defer orig.Close()
	if err := netns.Set(ns); err != nil {
		return err
	}
	defer netns.Set(orig)
	return f()
}

func hostNS(t *testing.T) netns.NsHandle {
	t.Helper()
	name := fmt.Sprintf("hive-allocnet-test-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	ns, err := netns.GetFromName(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ns.Close()
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	return ns
}

func echoServer(t *testing.T, ns netns.NsHandle, addr string) {
	t.Helper()
	var l net.Listener
	if err := inNS(ns, func() (err error) { l, err = net.Listen("tcp", addr); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
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

func dialEcho(ns netns.NsHandle, addr string) error {
	var c net.Conn
	err := inNS(ns, func() (err error) {
		c, err = net.DialTimeout("tcp", addr, 2*time.Second)
		return err
	})
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("hi")); err != nil {
		return err
	}
	buf := make([]byte, 2)
	_, err = io.ReadFull(c, buf)
	return err
}

func TestSetupTrafficRestartTeardown(t *testing.T) {
	requireRoot(t)
	host := hostNS(t)
	dir := t.TempDir()
	nsDir := filepath.Join(dir, "netns")
	subnet := netip.MustParsePrefix("198.19.7.0/24")
	var m *Manager
	var a1, a2 *Attachment
	err := inNS(host, func() (err error) {
		if m, err = New(Config{Subnet: subnet, StateDir: dir, NetnsDir: nsDir}); err != nil {
			return err
		}
		if a1, err = m.Setup("alloc-1"); err != nil {
			return err
		}
		a2, err = m.Setup("alloc-2")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = inNS(host, func() error { _ = m.Teardown("alloc-1"); return m.Teardown("alloc-2") })
	})
	if filepath.Dir(a1.NetnsPath) != nsDir {
		t.Fatalf("netns file %s is not in %s", a1.NetnsPath, nsDir)
	}
	if a1.Addr.String() != "198.19.7.2" || a2.Addr.String() != "198.19.7.3" {
		t.Fatalf("addresses %s, %s; want .2 and .3 (.1 is the gateway)", a1.Addr, a2.Addr)
	}
	ns1, err := netns.GetFromPath(a1.NetnsPath)
	if err != nil {
		t.Fatal(err)
	}
	defer ns1.Close()
	ns2, err := netns.GetFromPath(a2.NetnsPath)
	if err != nil {
		t.Fatal(err)
	}
	defer ns2.Close()

	// Allocation to allocation, allocation to the node's gateway address.
	echoServer(t, ns2, "198.19.7.3:8080")
	if err := dialEcho(ns1, "198.19.7.3:8080"); err != nil {
		t.Fatalf("alloc-1 -> alloc-2: %v", err)
	}
	echoServer(t, host, "198.19.7.1:9090")
	if err := dialEcho(ns1, "198.19.7.1:9090"); err != nil {
		t.Fatalf("alloc-1 -> gateway: %v", err)
	}
	// MTU inside, /32 route on the host.
	h, err := netlink.NewHandleAt(ns1)
	if err != nil {
		t.Fatal(err)
	}
	eth, err := h.LinkByName("eth0")
	h.Close()
	if err != nil || eth.Attrs().MTU != DefaultMTU {
		t.Fatalf("eth0 in alloc-1: %v, MTU %v; want %d", err, eth, DefaultMTU)
	}
	var idx1 int
	err = inNS(host, func() error {
		l, err := netlink.LinkByName(a1.HostVeth)
		if err != nil {
			return err
		}
		idx1 = l.Attrs().Index
		rs, err := netlink.RouteGet(a1.Addr.AsSlice())
		if err != nil || len(rs) == 0 || rs[0].LinkIndex != idx1 {
			return fmt.Errorf("route to %s: %v %v, want via %s", a1.Addr, rs, err, a1.HostVeth)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// An agent restart: same addresses, nothing made again.
	err = inNS(host, func() (err error) {
		m2, err := New(Config{Subnet: subnet, StateDir: dir, NetnsDir: nsDir})
		if err != nil {
			return err
		}
		again, err := m2.Setup("alloc-1")
		if err != nil {
			return err
		}
		if again.Addr != a1.Addr {
			return fmt.Errorf("after restart alloc-1 has %s, had %s", again.Addr, a1.Addr)
		}
		l, err := netlink.LinkByName(a1.HostVeth)
		if err != nil || l.Attrs().Index != idx1 {
			return fmt.Errorf("veth %s made again (index %v, was %d): %v", a1.HostVeth, l, idx1, err)
		}
		if n := len(m2.Attachments()); n != 2 {
			return fmt.Errorf("%d attachments after restart, want 2", n)
		}
		m = m2
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := dialEcho(ns1, "198.19.7.3:8080"); err != nil {
		t.Fatalf("alloc-1 -> alloc-2 after restart: %v", err)
	}

	// Teardown, twice.
	err = inNS(host, func() error {
		for range 2 {
			if err := m.Teardown("alloc-1"); err != nil {
				return err
			}
		}
		if _, err := netlink.LinkByName(a1.HostVeth); err == nil {
			return fmt.Errorf("%s still exists", a1.HostVeth)
		}
		if _, err := os.Stat(a1.NetnsPath); !os.IsNotExist(err) {
			return fmt.Errorf("%s still exists: %v", a1.NetnsPath, err)
		}
		if n := len(m.Attachments()); n != 1 {
			return fmt.Errorf("%d attachments after teardown, want 1", n)
		}
		// The freed address is not the next one handed out.
		a3, err := m.Setup("alloc-3")
		if err != nil {
			return err
		}
		defer m.Teardown("alloc-3")
		if a3.Addr == a1.Addr {
			return fmt.Errorf("alloc-3 got alloc-1's address %s at once", a3.Addr)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func BenchmarkSetupTeardown(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Fatal("needs root")
	}
	name := fmt.Sprintf("hive-allocnet-bench-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		b.Fatalf("%v: %s", err, out)
	}
	defer exec.Command("ip", "netns", "del", name).Run()
	host, err := netns.GetFromName(name)
	if err != nil {
		b.Fatal(err)
	}
	defer host.Close()
	dir := b.TempDir()
	err = inNS(host, func() error {
		m, err := New(Config{Subnet: netip.MustParsePrefix("198.19.8.0/24"), StateDir: dir, NetnsDir: filepath.Join(dir, "netns")})
		if err != nil {
			return err
		}
		b.ResetTimer()
		for i := range b.N {
			id := fmt.Sprintf("bench-%d", i)
			if _, err := m.Setup(id); err != nil {
				return err
			}
			if err := m.Teardown(id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
}
