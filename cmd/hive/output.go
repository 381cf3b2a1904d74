package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hivesec/hive/api"
	"github.com/spf13/cobra"
)

// outputFlag adds -o/--output to a read command.
func outputFlag(cmd *cobra.Command) *string {
	s := new(string)
	cmd.Flags().StringVarP(s, "output", "o", "table", "output format: table or json")
	return s
}

func checkOutput(format string) error {
	switch format {
	case "table", "json":
		return nil
	}
	return fmt.Errorf("invalid output format %q: use table or json", format)
}

// printJSON writes v indented, as the API sent it.
func printJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding JSON output: %w", err)
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// table writes tab-separated rows as aligned columns.
type table struct{ tw *tabwriter.Writer }

func newTable(w io.Writer, header ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)}
	if len(header) > 0 {
		t.row(toAny(header)...)
	}
	return t
}

func toAny(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

func (t *table) row(cells ...any) {
	parts := make([]string, len(cells))
	for i, c := range cells {
		parts[i] = fmt.Sprint(c)
	}
	fmt.Fprintln(t.tw, strings.Join(parts, "\t"))
}

func (t *table) flush() error { return t.tw.Flush() }

// fmtTime prints t in UTC, or "-" when it is unset.
func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// fmtLabels prints a map as sorted k=v pairs.
func fmtLabels(m map[string]string) string {
	if len(m) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		keys[i] = k + "=" + m[k]
	}
	return strings.Join(keys, ",")
}

// listCmd builds an `ls` command: it fetches a list from the API and prints
// it as JSON (an empty list as []) or as the table render writes. what names
// the objects in errors ("listing nodes: ...").
func listCmd[E any](g *globals, short, what string, fetch func(*api.Client) ([]E, error), render func(io.Writer, []E) error) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   short,
		Args:    exactArgs(),
	}
	out := outputFlag(cmd)
	cmd.RunE = readRunE(g, out, nil,
		func(c *api.Client, _ []string) ([]E, error) {
			list, err := fetch(c)
			if err != nil {
				return nil, fmt.Errorf("listing %s: %w", what, err)
			}
			if list == nil {
				list = []E{}
			}
			return list, nil
		},
		render)
	return cmd
}

// readRunE is the RunE of a command that reads from the API and prints
// what it read with -o (out, from outputFlag). It checks the format, then
// the arguments with check (nil: nothing to check) before anything
// connects, and prints what fetch returns as JSON or as render writes it.
func readRunE[T any](g *globals, out *string, check func(args []string) error, fetch func(c *api.Client, args []string) (T, error), render func(io.Writer, T) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		if err := checkOutput(*out); err != nil {
			return err
		}
		if check != nil {
			if err := check(args); err != nil {
				return err
			}
		}
		c, err := g.client()
		if err != nil {
			return err
		}
		v, err := fetch(c, args)
		if err != nil {
			return err
		}
		if *out == "json" {
			return printJSON(cmd.OutOrStdout(), v)
		}
		return render(cmd.OutOrStdout(), v)
	}
}
