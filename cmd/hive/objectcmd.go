package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/hivesec/hive/api"
	"github.com/hivesec/hive/structs"
)

// aclName returns the check of a user, group, role or binding name, for
// getCmd and deleteCmd.
func aclName(kind string) func(string) error {
	return func(name string) error { return structs.ValidateACLName(kind, name) }
}

// getCmd builds a `get NAME` command for one object of kind ("binding"):
// check refuses a malformed NAME before anything connects, info reads the
// object, and it is printed as JSON or as render writes it.
func getCmd[T any](g *globals, kind, short string, check func(string) error, info func(*api.Client, string) (T, error), render func(io.Writer, T) error) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "get NAME",
		Short: short,
		Args:  exactArgs("NAME"),
	}
	out := outputFlag(cmd)
	cmd.RunE = readRunE(g, out,
		func(args []string) error { return check(args[0]) },
		func(c *api.Client, args []string) (T, error) {
			v, err := info(c, args[0])
			if err != nil {
				return v, fmt.Errorf("reading %s %s: %w", kind, args[0], err)
			}
			return v, nil
		},
		render)
	return cmd
}

// deleteCmd builds a `delete ARG` command (alias rm) for one object of
// kind ("service account"), where arg names the argument in the usage
// ("NAME"): check refuses a malformed ARG before anything connects, del
// deletes the object, and the answer is "Deleted KIND ARG".
func deleteCmd(g *globals, kind, arg, short string, check func(string) error, del func(*api.Client, string) error) *cobra.Command {
	return &cobra.Command{
		Use:     "delete " + arg,
		Aliases: []string{"rm"},
		Short:   short,
		Args:    exactArgs(arg),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := check(args[0]); err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			if err := del(c, args[0]); err != nil {
				return fmt.Errorf("deleting %s %s: %w", kind, args[0], err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Deleted %s %s\n", kind, args[0])
			return nil
		},
	}
}
