// Package nft is the applier of Hive's network policy: it writes a compiled
// policy.Ruleset into the nftables table inet hive through netlink
// (github.com/google/nftables), as one atomic transaction that replaces the
// whole table. Nothing outside table inet hive is ever read or written.
//
// # Layout
//
// Endpoints are resolved to identities by exact-match maps (ep4, ep6:
// address → class ID; class_ns: class ID → namespace ID). Every policy
// decision after that is a lookup keyed by identities, protocol and port in
// a set whose size grows with the policies while the number of rules a
// packet walks does not:
//
//	forward   (hook forward, priority filter, policy accept)
//	  quarantined source or destination   → drop (before conntrack, so
//	                                        established flows are cut too)
//	  ct state established,related        → accept (replies to allowed flows)
//	  source is an endpoint               → jump egress
//	  destination is an endpoint          → jump ingress
//	egress, ingress   admin rules in order (Allow: return, Deny: drop,
//	                  Pass: goto *_ns), then goto *_ns
//	egress_ns, ingress_ns
//	  subject class not in *_isolated     → return
//	  (subject, peer class|ns|any) in *_anyport                 → return
//	  (subject, peer class|ns|any, l4proto, dport) in *_ports   → return
//	  (subject, peer address) in *_cidr4|6                      → return
//	  (subject, l4proto, peer address, dport) in *_cidrports4|6 → return
//	  drop
//
// For egress the subject is the source endpoint and the peer the
// destination; for ingress the other way round. A flow passes when both
// directions return, which is policy.Ruleset.Evaluate step by step. Admin
// rules stay an ordered list (see policy.AdminRule for why); each is at most
// four rules per family whose subject, peer and port checks are set lookups.
//
// Identities are loaded into 32-bit registers with map lookups
// (NFTA_LOOKUP_DREG) and concatenated in place, so one rule does the whole
// (subject, peer, proto, port) lookup; registers are never assumed to
// survive from one rule to the next.
//
// # Same-node traffic
//
// Policy is enforced in the inet forward hook, which sees routed traffic
// only. Bridged traffic between two ports of a Linux bridge skips it unless
// br_netfilter is loaded (and then also hits every iptables rule of the
// host). Hive therefore gives each allocation a routed /32: the host end of
// its veth is not enslaved to a bridge, the node routes the allocation's
// address to that veth, and the allocation's default route points at the
// node. Allocation-to-allocation traffic on one node is then routed, passes
// the forward hook, and is policed exactly like traffic between nodes.
//
// # Batch size
//
// A full sync is one netlink batch: the table is created if missing,
// deleted and created again with all chains, sets, rules and elements, so
// the kernel swaps the whole ruleset at once and no packet ever sees half of
// it. Set elements are sent in messages of at most ElementsPerMessage
// elements (a netlink attribute length is 16 bits, so one message holds at
// most 64 KiB of elements). The socket's send buffer is raised to the batch
// size (SO_SNDBUFFORCE) and acknowledgements are capped (NETLINK_CAP_ACK).
//
// When a batch would exceed MaxBatchBytes (DefaultMaxBatchBytes, 64 MiB,
// about 700,000 elements), it is split: the first batch replaces the table
// with every chain, rule, endpoint, quarantine, isolation and admin element
// (everything that denies), and the following batches add the allow
// elements. Between the batches new flows that the missing allows would
// admit are dropped (established flows keep going): a split sync fails
// closed, never open.
package nft
