package main

import (
	"fmt"
	"sort"

	"github.com/spf13/cobra"

	"github.com/hivesec/hive/structs"
)

func newNodeCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "node",
		Short: "List, inspect and remove cluster nodes",
	}
	cmd.AddCommand(newNodeListCmd(g), newNodeStatusCmd(g), newNodeRemoveCmd(g))
	return cmd
}

func newNodeListCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List the nodes of the cluster",
		Args:    exactArgs(),
	}
	out := outputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := checkOutput(*out); err != nil {
			return err
		}
		c, err := g.client()
		if err != nil {
			return err
		}
		nodes, _, err := c.Nodes().List(nil)
		if err != nil {
			return fmt.Errorf("listing nodes: %w", err)
		}
		if nodes == nil {
			nodes = []structs.NodePublic{}
		}
		w := cmd.OutOrStdout()
		if *out == "json" {
			return printJSON(w, nodes)
		}
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
	}
	return cmd
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
		t.row("Labels", fmtLabels(n.Labels))
		return t.flush()
	}
	return cmd
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
