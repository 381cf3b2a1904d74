package wg

import (
	"bytes"
	"log/slog"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestMeshUpDown checks what Up leaves on the host and that Down removes
// all of it, with wireguard-go forced as HIVE_WG_USERSPACE=1 does.
func TestMeshUpDown(t *testing.T) {
	requireRoot(t)
	sweepLeftovers(t)
	t.Setenv(EnvUserspace, "1")
	ns := newNetns(t, "solo")
	key, err := LoadOrCreateKey(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		PrivateKey:  key,
		Address:     netip.MustParseAddr(overlayA),
		ClusterCIDR: netip.MustParsePrefix(clusterCIDR),
		Netns:       "/var/run/netns/" + ns,
		Logger:      slog.New(slog.NewTextHandler(testWriter{t}, nil)),
	}
	m := &Mesh{}
	t.Cleanup(func() { _ = m.Down() })
	for round := range 2 { // a second Up after Down must work too
		if err := m.Up(cfg); err != nil {
			t.Fatalf("round %d: up: %v", round, err)
		}
		if m.Mode() != ModeUserspace {
			t.Fatalf("mode %q with %s=1", m.Mode(), EnvUserspace)
		}
		if err := m.Up(cfg); err == nil {
			t.Fatal("second Up on a live mesh succeeded")
		}
		link := run(t, "", "ip", "-n", ns, "-o", "addr", "show", "dev", InterfaceName)
		if !strings.Contains(link, overlayA+"/32") {
			t.Errorf("address: %s", link)
		}
		if l := run(t, "", "ip", "-n", ns, "-o", "link", "show", "dev", InterfaceName); !strings.Contains(l, "mtu 1420") || !strings.Contains(l, ",UP") {
			t.Errorf("link: %s", l)
		}
		routes := run(t, "", "ip", "-n", ns, "route", "show", clusterCIDR)
		if !strings.Contains(routes, "dev "+InterfaceName) || !strings.Contains(routes, "src "+overlayA) {
			t.Errorf("route: %q", routes)
		}
		// The UDP socket must be in the mesh's namespace, not the test's.
		if out := run(t, "", "ip", "netns", "exec", ns, "ss", "-Hulnp", "sport", "= :51820"); !strings.Contains(out, "51820") {
			t.Errorf("no UDP socket on 51820 in %s: %q", ns, out)
		}
		if err := m.Down(); err != nil {
			t.Fatalf("round %d: down: %v", round, err)
		}
		if out, err := exec.Command("ip", "-n", ns, "link", "show", "dev", InterfaceName).CombinedOutput(); err == nil {
			t.Fatalf("%s still exists after Down: %s", InterfaceName, out)
		}
		if out := run(t, "", "ip", "-n", ns, "route", "show", clusterCIDR); out != "" {
			t.Errorf("route left after Down: %q", out)
		}
		if out := run(t, "", "ip", "netns", "exec", ns, "ss", "-Huln", "sport", "= :51820"); out != "" {
			t.Errorf("UDP socket left after Down: %q", out)
		}
	}
	if err := m.Down(); err != nil {
		t.Errorf("Down on a down mesh: %v", err)
	}
	if err := m.SetPeers(nil); err == nil {
		t.Error("SetPeers on a down mesh succeeded")
	}
}

// TestMeshTraffic runs two hosts and checks that overlay traffic flows
// only encrypted over the underlay, that SetPeers is idempotent, and that
// removing a peer stops traffic at once.
func TestMeshTraffic(t *testing.T) {
	p := newPair(t)
	for _, m := range []*Mesh{p.meshA, p.meshB} {
		t.Logf("mesh mode: %s", m.Mode())
	}
	payload := bytes.Repeat([]byte("hive-overlay-payload "), 50_000) // ~1 MB
	overlayAddr := net.JoinHostPort(overlayB, "7000")
	listenIn(t, p.hB, overlayAddr, true)

	t.Run("OnlyWireGuardOnUnderlay", func(t *testing.T) {
		wgA0, otherA0 := counters(t, p.nsA)
		wgB0, otherB0 := counters(t, p.nsB)
		if err := ping(p.nsA, overlayA, overlayB); err != nil {
			t.Fatal(err)
		}
		if err := echoOnce(p.hA, overlayAddr, payload, 10*time.Second); err != nil {
			t.Fatalf("TCP %s→%s over hive-wg: %v", overlayA, overlayAddr, err)
		}
		wgA1, otherA1 := counters(t, p.nsA)
		wgB1, otherB1 := counters(t, p.nsB)
		t.Logf("underlay during overlay traffic: A wg=%d bytes, other=%d packets; B wg=%d bytes, other=%d packets",
			wgA1-wgA0, otherA1-otherA0, wgB1-wgB0, otherB1-otherB0)
		if otherA1 != otherA0 || otherB1 != otherB0 {
			t.Errorf("non-WireGuard packets crossed the underlay: A %d, B %d", otherA1-otherA0, otherB1-otherB0)
		}
		// The payload went both ways (echo), so each side sent and
		// received at least twice its size through the WireGuard port.
		if min := uint64(2 * len(payload)); wgA1-wgA0 < min || wgB1-wgB0 < min {
			t.Errorf("fewer WireGuard bytes than payload on the underlay: A %d, B %d, payload 2×%d", wgA1-wgA0, wgB1-wgB0, len(payload))
		}
		peers, err := p.meshA.Peers()
		if err != nil || len(peers) != 1 || peers[0].LastHandshakeTime.IsZero() || peers[0].ReceiveBytes == 0 {
			t.Errorf("A's view of B after traffic: %+v, %v", peers, err)
		}
	})

	// The counters must see plain traffic, or the check above proves nothing.
	t.Run("CountersSeePlainUnderlay", func(t *testing.T) {
		plainAddr := net.JoinHostPort(underlayB, "7001")
		listenIn(t, p.hB, plainAddr, true)
		_, otherA0 := counters(t, p.nsA)
		if err := echoOnce(p.hA, plainAddr, payload[:1000], 5*time.Second); err != nil {
			t.Fatal(err)
		}
		if _, otherA1 := counters(t, p.nsA); otherA1 == otherA0 {
			t.Fatal("plain TCP over the underlay was not counted as other")
		}
	})

	t.Run("SetPeersIdempotent", func(t *testing.T) {
		before, _ := p.meshA.Peers()
		appliedA, appliedB := p.meshA.applied, p.meshB.applied
		for range 3 {
			if err := p.meshA.SetPeers([]Peer{p.peerB}); err != nil {
				t.Fatal(err)
			}
			if err := p.meshB.SetPeers([]Peer{p.peerA}); err != nil {
				t.Fatal(err)
			}
		}
		if p.meshA.applied != appliedA || p.meshB.applied != appliedB {
			t.Errorf("repeating the same peers changed the device: A %d→%d, B %d→%d changes",
				appliedA, p.meshA.applied, appliedB, p.meshB.applied)
		}
		after, _ := p.meshA.Peers()
		if len(after) != 1 || !after[0].LastHandshakeTime.Equal(before[0].LastHandshakeTime) {
			t.Errorf("session disturbed: before %+v, after %+v", before, after)
		}
		if err := echoOnce(p.hA, overlayAddr, payload[:1000], 5*time.Second); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("RemovedPeerCutsTraffic", func(t *testing.T) {
		// An open connection, to show it is cut too, not only new ones.
		open, err := dialIn(p.hA, overlayAddr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer open.Close()
		if err := p.meshA.SetPeers(nil); err != nil {
			t.Fatal(err)
		}
		removedAt := time.Now()
		if peers, err := p.meshA.Peers(); err != nil || len(peers) != 0 {
			t.Fatalf("A still has peers after removal: %+v, %v", peers, err)
		}
		if err := echoOnce(p.hA, overlayAddr, payload[:1000], 2*time.Second); err == nil {
			t.Fatal("new TCP connection to B succeeded after B's peer was removed")
		}
		_ = open.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := open.Write([]byte("x")); err == nil {
			if _, err := open.Read(make([]byte, 1)); err == nil {
				t.Error("open connection still echoes after B's peer was removed")
			}
		}
		if err := ping(p.nsA, overlayA, overlayB); err == nil {
			t.Error("ping reached B after its peer was removed")
		}
		t.Logf("new connection, open connection and ping all failed; probes took %.1fs after removal (2s dial + 2s read + 1s ping timeouts)", time.Since(removedAt).Seconds())

		// Adding it back restores the path.
		if err := p.meshA.SetPeers([]Peer{p.peerB}); err != nil {
			t.Fatal(err)
		}
		if err := echoOnce(p.hA, overlayAddr, payload[:1000], 10*time.Second); err != nil {
			t.Fatalf("re-added peer: %v", err)
		}
	})

	t.Run("EndpointUpdateInPlace", func(t *testing.T) {
		// A changed endpoint (here: the same host named with another
		// port, then back) is an update, not a remove + add.
		moved := p.peerB
		moved.Endpoint = netip.AddrPortFrom(moved.Endpoint.Addr(), 51821)
		applied := p.meshA.applied
		if err := p.meshA.SetPeers([]Peer{moved}); err != nil {
			t.Fatal(err)
		}
		peers, _ := p.meshA.Peers()
		if len(peers) != 1 || peers[0].Endpoint.Port != 51821 || p.meshA.applied != applied+1 {
			t.Fatalf("endpoint not updated: %+v", peers)
		}
		if err := p.meshA.SetPeers([]Peer{p.peerB}); err != nil {
			t.Fatal(err)
		}
		if err := echoOnce(p.hA, overlayAddr, payload[:1000], 10*time.Second); err != nil {
			t.Fatal(err)
		}
	})
}
