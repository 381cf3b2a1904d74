package main

import (
	"fmt"
	"io"
	"sort"

	"github.com/spf13/cobra"

	"github.com/hivesec/hive/api"
	"github.com/hivesec/hive/structs"
)

func newNodeCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "node",
		Short: "List, inspect, drain, cordon and remove cluster nodes",
	}
	cmd.AddCommand(newNodeListCmd(g), newNodeStatusCmd(g), newNodeRemoveCmd(g), newNodeNetworkCmd(g),
		newNodeEligibilityCmd(g, "drain", "Drain a worker: no new allocations, and the scheduler moves its allocations elsewhere (max_parallel at a time)"),
		newNodeEligibilityCmd(g, "cordon", "Cordon a worker: no new allocations; running ones stay"),
		newNodeEligibilityCmd(g, "uncordon", "Make a cordoned or draining worker eligible for allocations again"))
	return cmd
}

func newNodeListCmd(g *globals) *cobra.Command {
	return listCmd(g, "List the nodes of the cluster", "nodes",
		func(c *api.Client) ([]structs.NodePublic, error) {
			nodes, _, err := c.Nodes().List(nil)
			return nodes, err
		},
		func(w io.Writer, nodes []structs.NodePublic) error {
			sort.SliceStable(nodes, func(i, j int) bool {
				if nodes[i].Name != nodes[j].Name {
					return nodes[i].Name < nodes[j].Name
				}
				return nodes[i].ID < nodes[j].ID
			})
			t := newTable(w, "ID", "NAME", "ROLE", "ADDRESS", "STATUS", "LEADER", "CERT EXPIRES")
			for _, n := range nodes {
				t.row(n.ID, orDash(n.Name), n.Role, orDash(n.Address), orDash(n.Status), n.Leader, fmtTime(n.CertExpiry))
			}
			return t.flush()
		})
}

func newNodeStatusCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status ID",
		Short: "Show one node",
		Args:  exactArgs("ID"),
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
		n, _, err := c.Nodes().Info(args[0], nil)
		if err != nil {
			return fmt.Errorf("reading node %s: %w", args[0], err)
		}
		w := cmd.OutOrStdout()
		if *out == "json" {
			return printJSON(w, n)
		}
		t := newTable(w)
		t.row("ID", n.ID)
		t.row("Name", orDash(n.Name))
		t.row("Role", n.Role)
		t.row("Address", orDash(n.Address))
		t.row("Status", orDash(n.Status))
		t.row("Leader", n.Leader)
		t.row("Cert Expires", fmtTime(n.CertExpiry))
		t.row("Joined", fmtTime(n.JoinedAt))
		t.row("Updated", fmtTime(n.UpdatedAt))
		t.row("Labels", fmtLabels(n.Labels))
		if n.Role == structs.RoleWorker {
			t.row("Eligibility", eligibility(n))
			t.row("Resources", fmt.Sprintf("cpu %d MHz, memory %d MiB", n.Resources.CPU, n.Resources.MemoryMB))
			t.row("Subnet", orDash(n.Subnet))
			wg := "-"
			if n.WireGuardKey != "" {
				wg = fmt.Sprintf("%s, port %d", n.WireGuardKey, n.WireGuardPort)
			}
			t.row("WireGuard", wg)
		}
		if err := t.flush(); err != nil {
			return err
		}
		if len(n.Attributes) > 0 {
			fmt.Fprintln(w)
			fmt.Fprintln(w, "Attributes")
			keys := make([]string, 0, len(n.Attributes))
			for k := range n.Attributes {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			t := newTable(w)
			for _, k := range keys {
				t.row("  "+k, n.Attributes[k])
			}
			return t.flush()
		}
		return nil
	}
	return cmd
}

func eligibility(n *structs.NodePublic) string {
	switch {
	case n.Draining:
		return "draining"
	case n.Cordoned:
		return "cordoned"
	}
	return "eligible"
}

func newNodeEligibilityCmd(g *globals, op, short string) *cobra.Command {
	return &cobra.Command{
		Use:   op + " ID",
		Short: short,
		Args:  exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			nodes := c.Nodes()
			call := map[string]func(string) (*structs.NodePublic, error){
				"drain": nodes.Drain, "cordon": nodes.Cordon, "uncordon": nodes.Uncordon,
			}[op]
			n, err := call(args[0])
			if err != nil {
				return fmt.Errorf("%s node %s: %w", op, args[0], err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Node %s is %s.\n", n.ID, eligibility(n))
			return nil
		},
	}
}

func newNodeRemoveCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "remove ID",
		Aliases: []string{"rm"},
		Short:   "Remove a node: revoke its certificates and, for a manager, drop it from Raft",
		Args:    exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			if err := c.Nodes().Remove(args[0]); err != nil {
				return fmt.Errorf("removing node %s: %w", args[0], err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Removed node %s; its certificates are revoked.\n", args[0])
			return nil
		},
	}
}
