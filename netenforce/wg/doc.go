// Package wg runs the node's side of Hive's WireGuard mesh: interface
// hive-wg, one peer per other worker (AllowedIPs = that worker's subnet), and
// a route for the cluster CIDR through hive-wg, so that cross-node traffic
// between allocations never crosses the underlay unencrypted.
//
// The kernel module is used through netlink and wgctrl when it exists;
// otherwise (or with HIVE_WG_USERSPACE=1) an embedded wireguard-go device runs
// on a TUN device of the same name. Both are driven by the same code through
// the small configurer seam in configurer.go: Up and SetPeers compute the
// wanted WireGuard configuration as plain data (peers.go) and hand it over.
//
// The node's private key is created and kept on the node (key.go); only its
// public key ever leaves this package.
package wg
