package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/hivesec/hive/structs"
)

func newEventCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "event",
		Short: "Read the cluster event log",
	}
	ls := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List recorded events: token uses, node joins and removals, key rotations",
		Args:    exactArgs(),
	}
	out := outputFlag(ls)
	ls.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := checkOutput(*out); err != nil {
			return err
		}
		c, err := g.client()
		if err != nil {
			return err
		}
		events, _, err := c.Events().List(nil)
		if err != nil {
			return fmt.Errorf("listing events: %w", err)
		}
		if events == nil {
			events = []structs.Event{}
		}
		w := cmd.OutOrStdout()
		if *out == "json" {
			return printJSON(w, events)
		}
		t := newTable(w, "INDEX", "TIME", "TYPE", "SUBJECT", "MESSAGE")
		for _, e := range events {
			t.row(e.Index, fmtTime(e.Time), e.Type, orDash(e.Subject), orDash(e.Message))
		}
		return t.flush()
	}
	cmd.AddCommand(ls)
	return cmd
}
