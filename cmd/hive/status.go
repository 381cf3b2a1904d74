package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/hivesec/hive/api"
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
	cmd.RunE = readRunE(g, out, nil,
		func(c *api.Client, _ []string) (clusterStatus, error) {
			leader, err := c.Status().Leader()
			if err != nil {
				return clusterStatus{}, fmt.Errorf("reading the leader: %w", err)
			}
			peers, err := c.Operator().RaftPeers(nil)
			if err != nil {
				return clusterStatus{}, fmt.Errorf("reading the Raft peers: %w", err)
			}
			if peers == nil {
				peers = []structs.RaftPeer{}
			}
			return clusterStatus{Leader: leader, Peers: peers}, nil
		},
		printClusterStatus)
	return cmd
}

func printClusterStatus(w io.Writer, st clusterStatus) error {
	leader, peers := st.Leader, st.Peers
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
