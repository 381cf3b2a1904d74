package wg

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/wgctrl"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// configurer is the seam between the mesh logic and the WireGuard
// implementation: the kernel module (through wgctrl's netlink client) or the
// embedded wireguard-go device (through its in-process UAPI). Everything
// above it — what to configure and which peers changed — is shared.
//
// Userspace does not go through wgctrl and the UAPI unix socket: the socket
// path (/var/run/wireguard/hive-wg.sock) is per filesystem, not per network
// namespace, so two meshes in one process (the tests) would collide, and a
// listen_port change arriving over the socket would reopen the UDP socket on
// an arbitrary thread, in the wrong namespace.
type configurer interface {
	device() (*wgtypes.Device, error)
	configure(wgtypes.Config) error
	close() error
}

// kernelConfigurer drives the kernel module.
type kernelConfigurer struct {
	c    *wgctrl.Client
	name string
}

func (k kernelConfigurer) device() (*wgtypes.Device, error) { return k.c.Device(k.name) }
func (k kernelConfigurer) configure(c wgtypes.Config) error { return k.c.ConfigureDevice(k.name, c) }
func (k kernelConfigurer) close() error                     { return k.c.Close() }

// userspaceConfigurer drives an embedded wireguard-go device.
type userspaceConfigurer struct {
	dev *device.Device
}

func (u userspaceConfigurer) device() (*wgtypes.Device, error) {
	s, err := u.dev.IpcGet()
	if err != nil {
		return nil, err
	}
	return parseUAPI(s)
}

func (u userspaceConfigurer) configure(c wgtypes.Config) error {
	// The text holds the private key: it is never logged, and the device's
	// errors name the failing key, not its value.
	return u.dev.IpcSet(encodeUAPI(c))
}

func (u userspaceConfigurer) close() error { u.dev.Close(); return nil }

// encodeUAPI renders a wgtypes.Config in WireGuard's cross-platform UAPI
// text format (https://www.wireguard.com/xplatform/), as wgctrl's wguser
// package does for the socket.
func encodeUAPI(c wgtypes.Config) string {
	var b strings.Builder
	kv := func(k, v string) { b.WriteString(k); b.WriteByte('='); b.WriteString(v); b.WriteByte('\n') }
	if c.PrivateKey != nil {
		kv("private_key", hex.EncodeToString(c.PrivateKey[:]))
	}
	if c.ListenPort != nil {
		kv("listen_port", strconv.Itoa(*c.ListenPort))
	}
	if c.FirewallMark != nil {
		kv("fwmark", strconv.Itoa(*c.FirewallMark))
	}
	if c.ReplacePeers {
		kv("replace_peers", "true")
	}
	for _, p := range c.Peers {
		kv("public_key", hex.EncodeToString(p.PublicKey[:]))
		if p.Remove {
			kv("remove", "true")
			continue
		}
		if p.UpdateOnly {
			kv("update_only", "true")
		}
		if p.PresharedKey != nil {
			kv("preshared_key", hex.EncodeToString(p.PresharedKey[:]))
		}
		if p.Endpoint != nil {
			kv("endpoint", p.Endpoint.AddrPort().String())
		}
		if p.PersistentKeepaliveInterval != nil {
			kv("persistent_keepalive_interval", strconv.Itoa(int(p.PersistentKeepaliveInterval.Seconds())))
		}
		if p.ReplaceAllowedIPs {
			kv("replace_allowed_ips", "true")
		}
		for _, a := range p.AllowedIPs {
			if pf, ok := prefixFromIPNet(a); ok {
				kv("allowed_ip", pf.String())
			}
		}
	}
	return b.String()
}

// parseUAPI reads the UAPI "get" output. The private key is parsed only to
// derive the public key; parse errors never quote a value.
func parseUAPI(s string) (*wgtypes.Device, error) {
	d := &wgtypes.Device{Name: InterfaceName, Type: wgtypes.Userspace}
	var peer *wgtypes.Peer
	var hsSec, hsNsec int64
	flush := func() {
		if peer != nil {
			if hsSec != 0 || hsNsec != 0 {
				peer.LastHandshakeTime = time.Unix(hsSec, hsNsec)
			}
			d.Peers = append(d.Peers, *peer)
		}
		hsSec, hsNsec = 0, 0
	}
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("wireguard uapi: malformed line")
		}
		var err error
		switch k {
		case "private_key":
			var key wgtypes.Key
			if key, err = hexKey(v); err == nil {
				d.PublicKey = key.PublicKey()
			}
		case "listen_port":
			d.ListenPort, err = strconv.Atoi(v)
		case "fwmark":
			d.FirewallMark, err = strconv.Atoi(v)
		case "public_key":
			flush()
			peer = &wgtypes.Peer{}
			peer.PublicKey, err = hexKey(v)
		case "errno":
			if v != "0" {
				return nil, fmt.Errorf("wireguard uapi: errno %s", v)
			}
		default:
			if peer == nil {
				continue // an unknown device-level key: ignore, as wgctrl does
			}
			err = parsePeerKey(peer, k, v, &hsSec, &hsNsec)
		}
		if err != nil {
			return nil, fmt.Errorf("wireguard uapi: bad %s", k)
		}
	}
	flush()
	return d, sc.Err()
}

func parsePeerKey(p *wgtypes.Peer, k, v string, hsSec, hsNsec *int64) error {
	var err error
	switch k {
	case "preshared_key":
		p.PresharedKey, err = hexKey(v)
	case "endpoint":
		var ap netip.AddrPort
		if ap, err = netip.ParseAddrPort(v); err == nil {
			p.Endpoint = net.UDPAddrFromAddrPort(ap)
		}
	case "allowed_ip":
		var pf netip.Prefix
		if pf, err = netip.ParsePrefix(v); err == nil {
			p.AllowedIPs = append(p.AllowedIPs, toIPNets([]netip.Prefix{pf})...)
		}
	case "persistent_keepalive_interval":
		var n int
		n, err = strconv.Atoi(v)
		p.PersistentKeepaliveInterval = time.Duration(n) * time.Second
	case "last_handshake_time_sec":
		*hsSec, err = strconv.ParseInt(v, 10, 64)
	case "last_handshake_time_nsec":
		*hsNsec, err = strconv.ParseInt(v, 10, 64)
	case "rx_bytes":
		p.ReceiveBytes, err = strconv.ParseInt(v, 10, 64)
	case "tx_bytes":
		p.TransmitBytes, err = strconv.ParseInt(v, 10, 64)
	case "protocol_version":
		p.ProtocolVersion, err = strconv.Atoi(v)
	}
	return err
}

func hexKey(s string) (wgtypes.Key, error) {
	var k wgtypes.Key
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(k) {
		return k, fmt.Errorf("bad key")
	}
	copy(k[:], b)
	return k, nil
}
