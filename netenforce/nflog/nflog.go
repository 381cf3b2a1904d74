// Package nflog reads packets the kernel logs to an NFLOG group (nftables
// `log group N`) over nfnetlink: Hive's rules log a rate-limited sample of
// the flows network policy denies, and the worker turns them into security
// events. Only the pieces of the protocol Hive uses are here: bind to a
// group, copy the start of each packet, parse prefix, interfaces and
// payload.
package nflog

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// From linux/netfilter/nfnetlink_log.h (not in x/sys).
const (
	subsysULOG = 4

	msgPacket = 0
	msgConfig = 1

	cfgCmd  = 1
	cfgMode = 2

	cmdBind = 1

	copyPacket = 2

	attrIfIndexIn  = 4
	attrIfIndexOut = 5
	attrPayload    = 9
	attrPrefix     = 10
)

// copyRange is how much of each packet the kernel copies: enough for the
// IP and transport headers, which is all a flow needs.
const copyRange = 128

// Packet is one logged packet.
type Packet struct {
	Prefix string
	// Family is the nfgenmsg family (unix.NFPROTO_IPV4 or _IPV6) of the
	// packet's network header in Payload.
	Family      uint8
	InIf, OutIf uint32
	Payload     []byte
}

// Flow is the five-tuple of a logged packet's network and transport
// headers; Port is the destination port, 0 for protocols without one.
type Flow struct {
	Src, Dst netip.Addr
	Protocol uint8
	Port     uint16
}

// Flow parses the packet's headers.
func (p *Packet) Flow() (Flow, bool) {
	b := p.Payload
	if len(b) < 1 {
		return Flow{}, false
	}
	var f Flow
	var l4 []byte
	switch b[0] >> 4 {
	case 4:
		if len(b) < 20 {
			return Flow{}, false
		}
		ihl := int(b[0]&0xf) * 4
		f.Src, _ = netip.AddrFromSlice(b[12:16])
		f.Dst, _ = netip.AddrFromSlice(b[16:20])
		f.Protocol = b[9]
		if ihl >= 20 && len(b) >= ihl {
			l4 = b[ihl:]
		}
	case 6:
		if len(b) < 40 {
			return Flow{}, false
		}
		f.Src, _ = netip.AddrFromSlice(b[8:24])
		f.Dst, _ = netip.AddrFromSlice(b[24:40])
		f.Protocol = b[6] // the first next header; extension headers leave Port 0
		l4 = b[40:]
	default:
		return Flow{}, false
	}
	switch f.Protocol {
	case unix.IPPROTO_TCP, unix.IPPROTO_UDP, unix.IPPROTO_SCTP:
		if len(l4) >= 4 {
			f.Port = binary.BigEndian.Uint16(l4[2:4])
		}
	}
	return f, true
}

// Reader receives the packets of one NFLOG group.
type Reader struct {
	c     *netlink.Conn
	group uint16
}

// Open binds to group in the network namespace netnsFd refers to (-1:
// the caller's). Only one socket per namespace can bind a group.
func Open(group uint16, netnsFd int) (*Reader, error) {
	cfg := &netlink.Config{}
	if netnsFd >= 0 {
		cfg.NetNS = netnsFd
	}
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, cfg)
	if err != nil {
		return nil, fmt.Errorf("nflog: open nfnetlink: %w", err)
	}
	r := &Reader{c: c, group: group}
	ae := netlink.NewAttributeEncoder()
	ae.Bytes(cfgCmd, []byte{cmdBind})
	if err := r.config(ae); err != nil {
		c.Close()
		return nil, fmt.Errorf("nflog: bind group %d: %w", group, err)
	}
	ae = netlink.NewAttributeEncoder()
	mode := make([]byte, 6)
	binary.BigEndian.PutUint32(mode, copyRange)
	mode[4] = copyPacket
	ae.Bytes(cfgMode, mode)
	if err := r.config(ae); err != nil {
		c.Close()
		return nil, fmt.Errorf("nflog: set copy mode on group %d: %w", group, err)
	}
	return r, nil
}

func (r *Reader) config(ae *netlink.AttributeEncoder) error {
	attrs, err := ae.Encode()
	if err != nil {
		return err
	}
	hdr := []byte{unix.AF_UNSPEC, 0, 0, 0}
	binary.BigEndian.PutUint16(hdr[2:], r.group)
	_, err = r.c.Execute(netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(subsysULOG<<8 | msgConfig), Flags: netlink.Request | netlink.Acknowledge},
		Data:   append(hdr, attrs...),
	})
	return err
}

// Read blocks until packets arrive and returns them.
func (r *Reader) Read() ([]Packet, error) {
	msgs, err := r.c.Receive()
	if err != nil {
		return nil, err
	}
	var out []Packet
	for _, m := range msgs {
		if m.Header.Type != netlink.HeaderType(subsysULOG<<8|msgPacket) || len(m.Data) < 4 {
			continue
		}
		p := Packet{Family: m.Data[0]}
		ad, err := netlink.NewAttributeDecoder(m.Data[4:])
		if err != nil {
			continue
		}
		ad.ByteOrder = binary.BigEndian
		for ad.Next() {
			switch ad.Type() {
			case attrPrefix:
				p.Prefix = ad.String()
			case attrIfIndexIn:
				p.InIf = ad.Uint32()
			case attrIfIndexOut:
				p.OutIf = ad.Uint32()
			case attrPayload:
				p.Payload = append([]byte(nil), ad.Bytes()...)
			}
		}
		if ad.Err() == nil {
			out = append(out, p)
		}
	}
	return out, nil
}

// Close closes the socket, which unbinds the group; a blocked Read
// returns an error.
func (r *Reader) Close() error { return r.c.Close() }
