package nflog

import (
	"net/netip"
	"testing"
)

func TestFlowParsesHeaders(t *testing.T) {
	v4tcp := []byte{0x45, 0, 0, 40, 0, 0, 0, 0, 64, 6, 0, 0, 198, 19, 0, 10, 198, 19, 1, 11, 0xc0, 0x00, 0x1f, 0x90}
	f, ok := (&Packet{Payload: v4tcp}).Flow()
	if !ok || f.Src != netip.MustParseAddr("198.19.0.10") || f.Dst != netip.MustParseAddr("198.19.1.11") || f.Protocol != 6 || f.Port != 8080 {
		t.Fatalf("IPv4 TCP: %+v %v", f, ok)
	}
	v6udp := make([]byte, 48)
	v6udp[0], v6udp[6] = 0x60, 17
	copy(v6udp[8:24], netip.MustParseAddr("fd00::1").AsSlice())
	copy(v6udp[24:40], netip.MustParseAddr("fd00::2").AsSlice())
	v6udp[42], v6udp[43] = 0, 53
	f, ok = (&Packet{Payload: v6udp}).Flow()
	if !ok || f.Dst != netip.MustParseAddr("fd00::2") || f.Protocol != 17 || f.Port != 53 {
		t.Fatalf("IPv6 UDP: %+v %v", f, ok)
	}
	icmp := []byte{0x45, 0, 0, 28, 0, 0, 0, 0, 64, 1, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, 8, 0, 0, 0}
	if f, ok = (&Packet{Payload: icmp}).Flow(); !ok || f.Port != 0 || f.Protocol != 1 {
		t.Fatalf("ICMP: %+v %v", f, ok)
	}
	for _, bad := range [][]byte{nil, {0x45, 0}, {0x60, 0, 0}, {0x10}} {
		if _, ok := (&Packet{Payload: bad}).Flow(); ok {
			t.Fatalf("parsed %x", bad)
		}
	}
}

func FuzzFlow(f *testing.F) {
	f.Add([]byte{0x45, 0, 0, 40, 0, 0, 0, 0, 64, 6, 0, 0, 198, 19, 0, 10, 198, 19, 1, 11, 0xc0, 0x00, 0x1f, 0x90})
	f.Add([]byte{0x4f, 0, 0, 40})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = (&Packet{Payload: b}).Flow() // must not panic on anything the kernel hands over
	})
}
