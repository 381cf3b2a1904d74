package allocnet

import (
	"errors"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
)

// bridge makes hive0 exist, be up, and hold exactly one IPv4 address: the
// gateway, with the subnet's prefix length (which gives the node its
// route to the subnet). An address left by an earlier lease would keep a
// route to a subnet that is now another node's, so it goes.
func (m *Manager) bridge() error {
	gw := &net.IPNet{IP: m.store.Gateway().AsSlice(), Mask: net.CIDRMask(m.cfg.Subnet.Bits(), 32)}
	link, err := m.host.LinkByName(BridgeName)
	if errors.As(err, new(netlink.LinkNotFoundError)) {
		la := netlink.NewLinkAttrs()
		la.Name, la.MTU = BridgeName, m.cfg.MTU
		if err := m.host.LinkAdd(&netlink.Bridge{LinkAttrs: la}); err != nil {
			return fmt.Errorf("allocnet: create %s: %w", BridgeName, err)
		}
		link, err = m.host.LinkByName(BridgeName)
	}
	if err != nil {
		return fmt.Errorf("allocnet: look up %s: %w", BridgeName, err)
	}
	if link.Type() != "bridge" {
		return fmt.Errorf("allocnet: %s exists but is a %s device, not a bridge; remove it", BridgeName, link.Type())
	}
	if link.Attrs().MTU != m.cfg.MTU {
		if err := m.host.LinkSetMTU(link, m.cfg.MTU); err != nil {
			return fmt.Errorf("allocnet: MTU of %s: %w", BridgeName, err)
		}
	}
	addrs, err := m.host.AddrList(link, netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("allocnet: addresses of %s: %w", BridgeName, err)
	}
	for _, a := range addrs {
		if a.IPNet.String() != gw.String() {
			m.log.Info("removing a stale address from the bridge", "bridge", BridgeName, "address", a.IPNet, "subnet", m.cfg.Subnet)
			if err := m.host.AddrDel(link, &a); err != nil {
				return fmt.Errorf("allocnet: remove stale %s from %s: %w", a.IPNet, BridgeName, err)
			}
		}
	}
	if err := m.host.AddrReplace(link, &netlink.Addr{IPNet: gw}); err != nil {
		return fmt.Errorf("allocnet: %s on %s: %w", gw, BridgeName, err)
	}
	if err := m.host.LinkSetUp(link); err != nil {
		return fmt.Errorf("allocnet: bring %s up: %w", BridgeName, err)
	}
	return nil
}
