package wg

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netns"
)

// The e2e tests build two "hosts" as network namespaces joined by a veth
// pair (the underlay) and run a Mesh in each. They need root and fail, not
// skip, without it: a skipped dataplane test reads as a passing one.

const (
	testPrefix   = "hive-wg-test-"
	underlayA    = "198.18.200.1"
	underlayB    = "198.18.200.2"
	clusterCIDR  = "198.19.0.0/16"
	overlayA     = "198.19.1.1"
	overlayB     = "198.19.2.1"
	subnetA      = "198.19.1.0/24"
	subnetB      = "198.19.2.0/24"
	underlayLink = "veth0"
	counterTable = "hive_wg_test"
)

var nsSeq atomic.Int32

func requireRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Fatal("this test creates network namespaces, TUN devices and nftables tables: run it as root")
	}
	for _, bin := range []string{"ip", "nft", "ping", "ss"} {
		if _, err := exec.LookPath(bin); err != nil {
			tb.Fatalf("this test needs %s (iproute2, nftables, iputils-ping): %v", bin, err)
		}
	}
}

func run(tb testing.TB, stdin string, args ...string) string {
	tb.Helper()
	cmd := exec.Command(args[0], args[1:]...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		tb.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// sweepLeftovers deletes namespaces of earlier test processes that died
// before their cleanup ran; names carry the creating pid.
func sweepLeftovers(tb testing.TB) {
	names, _ := filepath.Glob("/var/run/netns/" + testPrefix + "*")
	for _, path := range names {
		name := filepath.Base(path)
		pidStr, _, _ := strings.Cut(strings.TrimPrefix(name, testPrefix), "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid == os.Getpid() {
			continue
		}
		// Gone, or a zombie whose namespaces are already released.
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if errors.Is(err, os.ErrNotExist) || strings.Contains(string(status), "State:\tZ") {
			tb.Logf("removing leftover netns %s", name)
			_ = exec.Command("ip", "netns", "del", name).Run()
		}
	}
}

// newNetns creates a named namespace with lo up and IPv6 off (so the
// underlay counters see no neighbour-discovery chatter), deleted in cleanup.
func newNetns(tb testing.TB, role string) string {
	tb.Helper()
	name := fmt.Sprintf("%s%d-%d-%s", testPrefix, os.Getpid(), nsSeq.Add(1), role)
	run(tb, "", "ip", "netns", "add", name)
	tb.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			tb.Errorf("ip netns del %s: %v\n%s", name, err, out)
		}
	})
	run(tb, "", "ip", "-n", name, "link", "set", "lo", "up")
	run(tb, "", "ip", "netns", "exec", name, "sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
	return name
}

func nsHandle(tb testing.TB, name string) netns.NsHandle {
	tb.Helper()
	h, err := netns.GetFromName(name)
	if err != nil {
		tb.Fatalf("open netns %s: %v", name, err)
	}
	tb.Cleanup(func() { h.Close() })
	return h
}

// pair is two hosts with a mesh each.
type pair struct {
	nsA, nsB     string
	hA, hB       netns.NsHandle
	meshA, meshB *Mesh
	peerA, peerB Peer // A as B sees it, B as A sees it
}

func newPair(tb testing.TB) *pair {
	tb.Helper()
	requireRoot(tb)
	sweepLeftovers(tb)
	p := &pair{nsA: newNetns(tb, "a"), nsB: newNetns(tb, "b")}
	p.hA, p.hB = nsHandle(tb, p.nsA), nsHandle(tb, p.nsB)

	// Created directly inside the namespaces, so the fixed name never
	// exists in (or collides with) the host's namespace.
	run(tb, "", "ip", "link", "add", underlayLink, "netns", p.nsA, "type", "veth", "peer", "name", underlayLink, "netns", p.nsB)
	for _, h := range []struct{ ns, addr string }{{p.nsA, underlayA}, {p.nsB, underlayB}} {
		run(tb, "", "ip", "-n", h.ns, "addr", "add", h.addr+"/24", "dev", underlayLink)
		run(tb, "", "ip", "-n", h.ns, "link", "set", underlayLink, "up")
		installCounters(tb, h.ns)
	}

	log := slog.New(slog.NewTextHandler(testWriter{tb}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	up := func(ns, dataDir, addr string) (*Mesh, Peer) {
		key, err := LoadOrCreateKey(dataDir)
		if err != nil {
			tb.Fatal(err)
		}
		m := &Mesh{}
		err = m.Up(Config{
			PrivateKey:  key,
			Address:     netip.MustParseAddr(addr),
			ClusterCIDR: netip.MustParsePrefix(clusterCIDR),
			Netns:       "/var/run/netns/" + ns,
			Logger:      log.With("node", ns),
		})
		if err != nil {
			tb.Fatalf("mesh up in %s: %v", ns, err)
		}
		// Registered after the namespace's cleanup, so it runs before it.
		tb.Cleanup(func() {
			if err := m.Down(); err != nil {
				tb.Errorf("mesh down in %s: %v", ns, err)
			}
		})
		return m, Peer{PublicKey: key.PublicKey()}
	}
	p.meshA, p.peerA = up(p.nsA, tb.TempDir(), overlayA)
	p.meshB, p.peerB = up(p.nsB, tb.TempDir(), overlayB)
	p.peerA.Endpoint = netip.AddrPortFrom(netip.MustParseAddr(underlayA), DefaultListenPort)
	p.peerA.AllowedIPs = []netip.Prefix{netip.MustParsePrefix(subnetA)}
	p.peerB.Endpoint = netip.AddrPortFrom(netip.MustParseAddr(underlayB), DefaultListenPort)
	p.peerB.AllowedIPs = []netip.Prefix{netip.MustParsePrefix(subnetB)}
	if err := p.meshA.SetPeers([]Peer{p.peerB}); err != nil {
		tb.Fatal(err)
	}
	if err := p.meshB.SetPeers([]Peer{p.peerA}); err != nil {
		tb.Fatal(err)
	}
	return p
}

type testWriter struct{ tb testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.tb.Log(strings.TrimSuffix(string(b), "\n"))
	return len(b), nil
}

// installCounters adds a test-only nft table counting the packets that
// cross the underlay veth: those to or from the WireGuard port ("wg") and
// everything else ("other"). Hive's own table is never touched.
func installCounters(tb testing.TB, ns string) {
	tb.Helper()
	rule := func(dir, hook string) string {
		return fmt.Sprintf(`	chain %[2]s {
		type filter hook %[2]s priority 0; policy accept;
		%[1]s %[3]q udp dport %[4]d counter name "wg" accept
		%[1]s %[3]q udp sport %[4]d counter name "wg" accept
		%[1]s %[3]q counter name "other"
	}
`, dir, hook, underlayLink, DefaultListenPort)
	}
	run(tb, fmt.Sprintf("table inet %s {\n\tcounter wg {}\n\tcounter other {}\n%s%s}\n",
		counterTable, rule("oifname", "output"), rule("iifname", "input")),
		"ip", "netns", "exec", ns, "nft", "-f", "-")
}

var counterRe = regexp.MustCompile(`packets (\d+) bytes (\d+)`)

// counters returns the (wg, other) counts of a host's underlay: bytes for
// WireGuard (wireguard-go sends GSO batches, so packet counts say little),
// packets for everything else (where any packet at all is a failure).
func counters(tb testing.TB, ns string) (wgBytes, otherPackets uint64) {
	tb.Helper()
	read := func(name string, field int) uint64 {
		out := run(tb, "", "ip", "netns", "exec", ns, "nft", "list", "counter", "inet", counterTable, name)
		m := counterRe.FindStringSubmatch(out)
		if m == nil {
			tb.Fatalf("no packet count in %q", out)
		}
		n, _ := strconv.ParseUint(m[field], 10, 64)
		return n
	}
	return read("wg", 2), read("other", 1)
}

// listenIn opens a TCP listener inside a namespace; accepted connections
// echo (echo=true) or are drained, reporting the byte count on got.
func listenIn(tb testing.TB, h netns.NsHandle, addr string, echo bool) (net.Listener, <-chan int64) {
	tb.Helper()
	var ln net.Listener
	err := runInNetns(h, func() (err error) {
		ln, err = net.Listen("tcp", addr)
		return err
	})
	if err != nil {
		tb.Fatalf("listen %s: %v", addr, err)
	}
	tb.Cleanup(func() { ln.Close() })
	got := make(chan int64, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				var n int64
				if echo {
					n, _ = io.Copy(c, c)
				} else {
					n, _ = io.Copy(io.Discard, c)
				}
				got <- n
			}()
		}
	}()
	return ln, got
}

// dialIn connects from inside a namespace.
func dialIn(h netns.NsHandle, addr string, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := runInNetns(h, func() (err error) {
		c, err = net.DialTimeout("tcp", addr, timeout)
		return err
	})
	return c, err
}

// echoOnce sends payload over a fresh connection and checks it comes back.
func echoOnce(h netns.NsHandle, addr string, payload []byte, timeout time.Duration) error {
	c, err := dialIn(h, addr, timeout)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	errc := make(chan error, 1)
	go func() { _, err := c.Write(payload); errc <- err }()
	back := make([]byte, len(payload))
	if _, err := io.ReadFull(c, back); err != nil {
		return fmt.Errorf("read echo: %w", err)
	}
	if err := <-errc; err != nil {
		return err
	}
	if string(back) != string(payload) {
		return errors.New("echo differs from payload")
	}
	return nil
}

func ping(ns, from, to string) error {
	out, err := exec.Command("ip", "netns", "exec", ns, "ping", "-n", "-q", "-c", "2", "-i", "0.2", "-W", "1", "-I", from, to).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ping %s from %s in %s: %v\n%s", to, from, ns, err, out)
	}
	return nil
}
