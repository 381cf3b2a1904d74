package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

func newNodeNetworkCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "network ID",
		Short: "Show a worker's dataplane: subnet, WireGuard peers, allocation networks, policy verdict counts",
		Long: `Show what a worker's dataplane is doing, as the worker itself reports it:
its leased subnet, whether WireGuard runs in the kernel or in userspace, the
peers configured on hive-wg (public key, endpoint, allowed IPs, last
handshake), the allocations it gave a network namespace and address, and
the network policy verdict counters (new flows accepted or dropped per
policy since the agent started; also on /v1/metrics as
hive_netpol_packets_total).`,
		Args: exactArgs("ID"),
	}
	out := outputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := checkOutput(*out); err != nil {
			return err
		}
		c, err := g.client()
		if err != nil {
			return err
		}
		st, err := c.Nodes().NetworkStatus(args[0])
		if err != nil {
			return fmt.Errorf("reading the network of node %s: %w", args[0], err)
		}
		w := cmd.OutOrStdout()
		if *out == "json" {
			return printJSON(w, st)
		}
		if !st.Enabled {
			fmt.Fprintln(w, "This worker runs without a dataplane (--network=false): tasks have loopback only.")
			return nil
		}
		t := newTable(w)
		t.row("Subnet", orDash(st.Subnet))
		t.row("Cluster CIDR", orDash(st.ClusterCIDR))
		t.row("WireGuard", fmt.Sprintf("%s, port %d, key %s", orDash(st.Mode), st.ListenPort, st.PublicKey))
		t.row("Policy", fmt.Sprintf("%d policies over %d endpoints, applied %s", st.Policies, st.PolicyEndpoints, fmtTime(st.AppliedAt)))
		if st.LastError != "" {
			t.row("Last Error", st.LastError)
		}
		if err := t.flush(); err != nil {
			return err
		}
		fmt.Fprintln(w, "\nPeers")
		t = newTable(w, "PUBLIC KEY", "ENDPOINT", "ALLOWED IPS", "LAST HANDSHAKE", "RX", "TX")
		for _, p := range st.Peers {
			t.row(p.PublicKey, orDash(p.Endpoint), strings.Join(p.AllowedIPs, ","), fmtTime(p.LastHandshake), p.RxBytes, p.TxBytes)
		}
		if err := t.flush(); err != nil {
			return err
		}
		fmt.Fprintln(w, "\nAllocations")
		t = newTable(w, "ALLOC", "ADDRESS", "HOST VETH", "NETNS")
		for _, a := range st.Allocations {
			t.row(a.AllocID, a.Address, a.HostVeth, a.Netns)
		}
		if err := t.flush(); err != nil {
			return err
		}
		fmt.Fprintln(w, "\nVerdicts (new flows)")
		t = newTable(w, "POLICY", "DIRECTION", "VERDICT", "PACKETS", "BYTES")
		for _, k := range st.Counters {
			t.row(k.Policy, orDash(k.Direction), k.Verdict, k.Packets, k.Bytes)
		}
		return t.flush()
	}
	return cmd
}
