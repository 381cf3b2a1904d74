package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/hivesec/hive/structs"
)

// clusterStatus is what `hive status -o json` prints: the two API answers
// it is made of, side by side.
type clusterStatus struct {
	Leader *structs.LeaderResponse `json:"leader"`
	Peers  []structs.RaftPeer      `json:"peers"`
}

func newStatusCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the Raft leader and peers",
		Args:  exactArgs(),
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
		leader, err := c.Status().Leader()
		if err != nil {
			return fmt.Errorf("reading the leader: %w", err)
		}
		peers, err := c.Operator().RaftPeers(nil)
		if err != nil {
			return fmt.Errorf("reading the Raft peers: %w", err)
		}
		if peers == nil {
			peers = []structs.RaftPeer{}
		}
		w := cmd.OutOrStdout()
		if *out == "json" {
			return printJSON(w, clusterStatus{Leader: leader, Peers: peers})
		}
		voters := 0
		for _, p := range peers {
			if p.Voter {
				voters++
			}
		}
		ldr := "none (no quorum?)"
		if leader.LeaderID != "" {
			ldr = fmt.Sprintf("%s (%s)", leader.LeaderID, orDash(leader.LeaderAddr))
		}
		fmt.Fprintf(w, "Leader:   %s\nManagers: %d (%d voters, quorum %d)\n\n", ldr, len(peers), voters, voters/2+1)
		return printPeers(w, peers)
	}
	return cmd
}
