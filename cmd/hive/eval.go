package main

import (
	"fmt"
	"io"
	"maps"
	"slices"

	"github.com/spf13/cobra"

	"github.com/hivesec/hive/structs"
)

func newEvalCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "eval",
		Aliases: []string{"evaluation"},
		Short:   "Inspect the scheduler's evaluations",
	}
	cmd.AddCommand(newEvalStatusCmd(g))
	return cmd
}

func newEvalStatusCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status ID",
		Short: "Show an evaluation: its status, what it queued, why placements failed",
		Long: `Show one evaluation of the scheduler: what triggered it, its status, the
allocations it still has to place per group and, for groups it could not
place, why (nodes evaluated, filtered by which constraint, which resource
ran out). ` + "`hive job run`" + ` and ` + "`hive job status`" + ` print evaluation IDs.`,
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
		ev, _, err := c.Evaluations().Info(args[0], nil)
		if err != nil {
			return fmt.Errorf("reading evaluation %s: %w", args[0], err)
		}
		if *out == "json" {
			return printJSON(cmd.OutOrStdout(), ev)
		}
		return printEval(cmd.OutOrStdout(), ev)
	}
	return cmd
}

func printEval(w io.Writer, ev *structs.Evaluation) error {
	t := newTable(w)
	t.row("ID", ev.ID)
	t.row("Job", ev.JobID)
	t.row("Namespace", ev.Namespace)
	t.row("Type", orDash(ev.Type))
	t.row("Priority", ev.Priority)
	t.row("Triggered By", orDash(ev.TriggeredBy))
	t.row("Status", ev.Status)
	t.row("Description", orDash(ev.StatusDescription))
	t.row("Node", orDash(ev.NodeID))
	t.row("Deployment", orDash(ev.DeploymentID))
	t.row("Blocked Eval", orDash(ev.BlockedEval))
	t.row("Previous Eval", orDash(ev.PreviousEval))
	t.row("Wait Until", fmtTime(ev.WaitUntil))
	t.row("Created", fmtTime(ev.CreateTime))
	t.row("Modified", fmtTime(ev.ModifyTime))
	if err := t.flush(); err != nil {
		return err
	}
	if len(ev.QueuedAllocations) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "Queued allocations")
		t = newTable(w, "GROUP", "QUEUED")
		for _, g := range slices.Sorted(maps.Keys(ev.QueuedAllocations)) {
			t.row(g, ev.QueuedAllocations[g])
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	if len(ev.FailedTGAllocs) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "Placement failures")
		writeFailures(w, ev.FailedTGAllocs, "  ")
	}
	return nil
}
