package wg

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

func mustKey(t *testing.T) wgtypes.Key {
	t.Helper()
	k, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k.PublicKey()
}

func devicePeer(p Peer) wgtypes.Peer {
	return wgtypes.Peer{PublicKey: p.PublicKey, Endpoint: net.UDPAddrFromAddrPort(p.Endpoint), AllowedIPs: toIPNets(p.AllowedIPs)}
}

func TestDiffPeers(t *testing.T) {
	a := Peer{mustKey(t), netip.MustParseAddrPort("198.18.200.1:51820"), []netip.Prefix{netip.MustParsePrefix("198.19.1.0/24")}}
	b := Peer{mustKey(t), netip.MustParseAddrPort("198.18.200.2:51820"), []netip.Prefix{netip.MustParsePrefix("198.19.2.0/24")}}
	c := Peer{mustKey(t), netip.MustParseAddrPort("198.18.200.3:51820"), []netip.Prefix{netip.MustParsePrefix("198.19.3.0/24")}}

	if got := diffPeers(nil, nil); len(got) != 0 {
		t.Errorf("empty→empty: %d changes", len(got))
	}
	got := diffPeers(nil, []Peer{a, b})
	if len(got) != 2 || got[0].UpdateOnly || got[0].Remove || !got[0].ReplaceAllowedIPs {
		t.Errorf("add: %+v", got)
	}
	cur := []wgtypes.Peer{devicePeer(a), devicePeer(b)}
	if got := diffPeers(cur, []Peer{b, a}); len(got) != 0 {
		t.Errorf("same set in another order: %d changes, want 0", len(got))
	}
	// Allowed IPs written unmasked or as v4-in-v6 are still the same.
	odd := devicePeer(a)
	odd.AllowedIPs = []net.IPNet{{IP: net.ParseIP("198.19.1.0"), Mask: net.CIDRMask(120, 128)}}
	odd.Endpoint = &net.UDPAddr{IP: net.ParseIP("::ffff:198.18.200.1"), Port: 51820}
	if got := diffPeers([]wgtypes.Peer{odd}, []Peer{a}); len(got) != 0 {
		t.Errorf("v4-mapped forms: %d changes, want 0", len(got))
	}

	moved := b
	moved.Endpoint = netip.MustParseAddrPort("198.18.200.9:51820")
	got = diffPeers(cur, []Peer{a, moved, c})
	if len(got) != 2 {
		t.Fatalf("update+add: %+v", got)
	}
	if got[0].PublicKey != b.PublicKey || !got[0].UpdateOnly || got[0].Endpoint.String() != "198.18.200.9:51820" {
		t.Errorf("update b: %+v", got[0])
	}
	if got[1].PublicKey != c.PublicKey || got[1].UpdateOnly {
		t.Errorf("add c: %+v", got[1])
	}

	got = diffPeers(cur, []Peer{b})
	if len(got) != 1 || got[0].PublicKey != a.PublicKey || !got[0].Remove {
		t.Errorf("remove a: %+v", got)
	}
	wider := a
	wider.AllowedIPs = append([]netip.Prefix{netip.MustParsePrefix("198.19.101.0/24")}, a.AllowedIPs...)
	got = diffPeers(cur, []Peer{wider, b})
	if len(got) != 1 || !got[0].UpdateOnly || len(got[0].AllowedIPs) != 2 {
		t.Errorf("widen a: %+v", got)
	}
}

func TestValidatePeers(t *testing.T) {
	self := mustKey(t)
	k1, k2 := mustKey(t), mustKey(t)
	ep := netip.MustParseAddrPort("198.18.200.2:51820")
	p := func(k wgtypes.Key, cidrs ...string) Peer {
		var ps []netip.Prefix
		for _, c := range cidrs {
			ps = append(ps, netip.MustParsePrefix(c))
		}
		return Peer{PublicKey: k, Endpoint: ep, AllowedIPs: ps}
	}
	cases := []struct {
		name  string
		peers []Peer
		want  string
	}{
		{"ok", []Peer{p(k1, "198.19.1.0/24"), p(k2, "198.19.2.0/24", "10.0.0.0/8")}, ""},
		{"self", []Peer{p(self, "198.19.1.0/24")}, "is this node"},
		{"dup", []Peer{p(k1, "198.19.1.0/24"), p(k1, "198.19.2.0/24")}, "duplicate"},
		{"zero", []Peer{p(wgtypes.Key{}, "198.19.1.0/24")}, "zero public key"},
		{"no endpoint", []Peer{{PublicKey: k1}}, "invalid endpoint"},
		{"overlap", []Peer{p(k1, "198.19.0.0/16"), p(k2, "10.0.0.0/8", "198.19.2.0/24")}, "overlap"},
		{"same prefix", []Peer{p(k1, "198.19.2.0/24"), p(k2, "198.19.2.7/24")}, "overlap"},
	}
	for _, c := range cases {
		err := validatePeers(self, c.peers)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: err = %v, want %q", c.name, err, c.want)
		}
	}
}

func TestUAPIRoundTrip(t *testing.T) {
	priv, _ := wgtypes.GeneratePrivateKey()
	peer := mustKey(t)
	port := 51820
	ka := 25 * time.Second
	enc := encodeUAPI(wgtypes.Config{
		PrivateKey: &priv, ListenPort: &port, ReplacePeers: true,
		Peers: []wgtypes.PeerConfig{
			{PublicKey: peer, UpdateOnly: true, Endpoint: &net.UDPAddr{IP: net.ParseIP("fd00::1"), Port: 7}, PersistentKeepaliveInterval: &ka,
				ReplaceAllowedIPs: true, AllowedIPs: toIPNets([]netip.Prefix{netip.MustParsePrefix("198.19.2.0/24"), netip.MustParsePrefix("fd01::/64")})},
			{PublicKey: priv.PublicKey(), Remove: true},
		},
	})
	for _, want := range []string{"listen_port=51820\n", "replace_peers=true\n", "update_only=true\n", "endpoint=[fd00::1]:7\n",
		"persistent_keepalive_interval=25\n", "allowed_ip=198.19.2.0/24\n", "allowed_ip=fd01::/64\n", "remove=true\n"} {
		if !strings.Contains(enc, want) {
			t.Errorf("encoding lacks %q:\n%s", want, enc)
		}
	}

	get := strings.Join([]string{
		"private_key=" + hexOf(priv), "listen_port=51820",
		"public_key=" + hexOf(peer), "preshared_key=" + strings.Repeat("0", 64), "protocol_version=1",
		"endpoint=198.18.200.2:51820", "last_handshake_time_sec=1700000000", "last_handshake_time_nsec=5",
		"tx_bytes=10", "rx_bytes=20", "persistent_keepalive_interval=0", "allowed_ip=198.19.2.0/24", "",
	}, "\n")
	d, err := parseUAPI(get)
	if err != nil {
		t.Fatal(err)
	}
	if d.PublicKey != priv.PublicKey() || d.ListenPort != 51820 || len(d.Peers) != 1 {
		t.Fatalf("device: %+v", d)
	}
	p := d.Peers[0]
	if p.PublicKey != peer || p.Endpoint.String() != "198.18.200.2:51820" || p.TransmitBytes != 10 || p.ReceiveBytes != 20 ||
		!p.LastHandshakeTime.Equal(time.Unix(1700000000, 5)) || len(p.AllowedIPs) != 1 || p.AllowedIPs[0].String() != "198.19.2.0/24" {
		t.Errorf("peer: %+v", p)
	}
	if _, err := parseUAPI("public_key=zz\n"); err == nil || strings.Contains(err.Error(), "zz") {
		t.Errorf("bad key: err = %v", err)
	}
}

func hexOf(k wgtypes.Key) string {
	const h = "0123456789abcdef"
	var b strings.Builder
	for _, c := range k {
		b.WriteByte(h[c>>4])
		b.WriteByte(h[c&0xf])
	}
	return b.String()
}
