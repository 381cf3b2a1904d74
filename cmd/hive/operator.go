package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/spf13/cobra"

	"github.com/hivesec/hive/api"
	"github.com/hivesec/hive/snapshot"
	"github.com/hivesec/hive/structs"
)

func newOperatorCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "operator",
		Short: "Cluster operations: Raft peers, gossip keys, snapshots, the secrets keyring",
	}
	raft := &cobra.Command{Use: "raft", Short: "Inspect the Raft configuration"}
	raft.AddCommand(newRaftPeersCmd(g))
	gossip := &cobra.Command{Use: "gossip", Short: "Manage the gossip encryption keys"}
	gossip.AddCommand(newGossipRotateCmd(g))
	snap := &cobra.Command{Use: "snapshot", Short: "Save, restore and inspect snapshots of the cluster state"}
	snap.AddCommand(newSnapshotSaveCmd(g), newSnapshotRestoreCmd(g), newSnapshotInspectCmd())
	keyring := &cobra.Command{
		Use:   "keyring",
		Short: "Inspect and rotate the root key that wraps every secret's data key",
		Long:  keyringLong,
	}
	keyring.AddCommand(newKeyringStatusCmd(g), newKeyringRotateCmd(g), newKeyringRotateUnsealCmd(g))
	cmd.AddCommand(raft, gossip, snap, keyring, newUnlockCmd(g))
	return cmd
}

func newRaftPeersCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "peers",
		Short: "List the servers in the Raft configuration",
		Args:  exactArgs(),
	}
	out := outputFlag(cmd)
	cmd.RunE = readRunE(g, out, nil,
		func(c *api.Client, _ []string) ([]structs.RaftPeer, error) {
			peers, err := c.Operator().RaftPeers(nil)
			if err != nil {
				return nil, fmt.Errorf("listing Raft peers: %w", err)
			}
			if peers == nil {
				peers = []structs.RaftPeer{}
			}
			return peers, nil
		},
		printPeers)
	return cmd
}

func printPeers(w io.Writer, peers []structs.RaftPeer) error {
	t := newTable(w, "ID", "ADDRESS", "VOTER", "LEADER")
	for _, p := range peers {
		t.row(p.ID, orDash(p.Address), p.Voter, p.Leader)
	}
	return t.flush()
}

func newGossipRotateCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "rotate",
		Short: "Install a new primary gossip key on every node",
		Args:  exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			if err := c.Operator().GossipRotate(); err != nil {
				return fmt.Errorf("rotating the gossip key: %w", err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), "Rotated the gossip encryption key.")
			return nil
		},
	}
}

func newSnapshotSaveCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "save FILE",
		Short: "Save a snapshot of the cluster state to FILE (mode 0600)",
		Long: `Save a snapshot of the cluster state to FILE. The archive is written to
FILE.tmp, synced and renamed, so FILE is either the old file or a complete
snapshot. It holds cluster secrets in wrapped form: keep it private.`,
		Args: exactArgs("FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			path := args[0]
			n, err := writeFileAtomic(path, func(w io.Writer) error { return c.Operator().SnapshotSave(w) })
			if err != nil {
				return fmt.Errorf("saving snapshot to %s: %w", path, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Saved snapshot to %s (%d bytes)\n", path, n)
			return nil
		},
	}
}

// countingWriter counts what passes through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// writeFileAtomic has fill write path.tmp (mode 0600), syncs it and renames
// it over path, then syncs the directory. On failure path is untouched and
// the temporary file is removed.
func writeFileAtomic(path string, fill func(io.Writer) error) (n int64, err error) {
	tmp := path + ".tmp"
	// A leftover from an interrupted save may have another mode; start anew.
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("removing leftover %s: %w", tmp, err)
	}
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, err
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	cw := &countingWriter{w: f}
	if err = fill(cw); err != nil {
		return 0, err
	}
	if err = f.Sync(); err != nil {
		return 0, fmt.Errorf("syncing %s: %w", tmp, err)
	}
	if err = f.Close(); err != nil {
		return 0, fmt.Errorf("closing %s: %w", tmp, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return 0, err
	}
	// Make the rename itself durable; not every filesystem allows syncing a
	// directory, and the data is already safe, so a failure is ignored.
	if d, derr := os.Open(filepath.Dir(path)); derr == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return cw.n, nil
}

func newSnapshotRestoreCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "restore FILE",
		Short: "Replace the cluster state with the snapshot in FILE",
		Args:  exactArgs("FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := args[0]
			f, err := os.Open(path)
			if err != nil {
				return fmt.Errorf("opening snapshot: %w", err)
			}
			defer f.Close()
			st, err := f.Stat()
			if err != nil {
				return fmt.Errorf("reading snapshot %s: %w", path, err)
			}
			if !st.Mode().IsRegular() || st.Size() == 0 {
				return fmt.Errorf("snapshot %s is empty or not a regular file: give a file written by hive operator snapshot save", path)
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			if err := c.Operator().SnapshotRestore(f); err != nil {
				return fmt.Errorf("restoring snapshot from %s: %w", path, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Restored the cluster state from %s\n", path)
			return nil
		},
	}
}

func newSnapshotInspectCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "inspect FILE",
		Short: "Verify a snapshot file and show what it holds (runs locally)",
		Args:  exactArgs("FILE"),
	}
	out := outputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := checkOutput(*out); err != nil {
			return err
		}
		info, err := snapshot.Inspect(args[0])
		if err != nil {
			return fmt.Errorf("inspecting snapshot %s: %w", args[0], err)
		}
		w := cmd.OutOrStdout()
		if *out == "json" {
			return printJSON(w, info)
		}
		t := newTable(w)
		t.row("ID", orDash(info.ID))
		t.row("Index", info.Index)
		t.row("Term", info.Term)
		t.row("Size", info.Size)
		if err := t.flush(); err != nil {
			return err
		}
		fmt.Fprintln(w)
		names := make([]string, 0, len(info.Tables))
		for name := range info.Tables {
			names = append(names, name)
		}
		sort.Strings(names)
		t = newTable(w, "TABLE", "COUNT")
		for _, name := range names {
			t.row(name, info.Tables[name])
		}
		return t.flush()
	}
	return cmd
}
