package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hivesec/hive/api"
	"github.com/hivesec/hive/structs"
)

func newGroupCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "group",
		Short: "Manage groups of users",
		Long: `A group is a named set of users. A binding that names "group:NAME" gives its
role to every member, so access follows membership: add someone to the
group and they have it, remove them and they lose it.`,
	}
	cmd.AddCommand(newGroupCreateCmd(g), newGroupListCmd(g), newGroupGetCmd(g), newGroupDeleteCmd(g),
		newGroupMembersCmd(g, true), newGroupMembersCmd(g, false))
	return cmd
}

// minArgs is cobra.MinimumNArgs with an error that names the arguments
// the command wants; want reads like "GROUP USER...".
func minArgs(n int, want string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < n {
			return fmt.Errorf("%s takes %s, got %d argument(s); usage: %s", cmd.CommandPath(), want, len(args), cmd.UseLine())
		}
		for _, a := range args {
			if strings.TrimSpace(a) == "" {
				return fmt.Errorf("%s: arguments must not be empty", cmd.CommandPath())
			}
		}
		return nil
	}
}

func validateUsers(users []string) error {
	for _, u := range users {
		if err := structs.ValidateACLName("user", u); err != nil {
			return err
		}
	}
	return nil
}

func newGroupCreateCmd(g *globals) *cobra.Command {
	var members []string
	cmd := &cobra.Command{
		Use:   "create NAME [--member USER]...",
		Short: "Create a group",
		Long: `Create a group, with the users given by --member (repeat it, or separate
names with commas). Members can be added and removed later.`,
		Example: `  hive group create ops --member alice --member bob
  hive binding create ops-admin --role admin --subject group:ops`,
		Args: exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if err := structs.ValidateACLName("group", name); err != nil {
				return err
			}
			grp := structs.Group{Name: name, Members: members}
			if err := grp.Validate(); err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			if _, err := c.ACL().Groups().Create(name, structs.GroupRequest{Members: members}); err != nil {
				return fmt.Errorf("creating group %s: %w", name, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Created group %s (%s)\n", name, fmtMembers(members))
			return nil
		},
	}
	cmd.Flags().StringSliceVar(&members, "member", nil, "user to add to the group (repeatable)")
	return cmd
}

func fmtMembers(m []string) string {
	if len(m) == 0 {
		return "no members"
	}
	return plural(len(m), "member")
}

// newGroupMembersCmd is add-member, or remove-member when add is false.
func newGroupMembersCmd(g *globals, add bool) *cobra.Command {
	use, short, verb, doing, example := "add-member", "Add users to a group", "Added", "adding members to", "  hive group add-member ops carol dave"
	if !add {
		use, short, verb, doing, example = "remove-member", "Remove users from a group", "Removed", "removing members from", "  hive group remove-member ops dave"
	}
	return &cobra.Command{
		Use:     use + " GROUP USER...",
		Short:   short,
		Long:    short + `. They gain or lose what the group's bindings give at once; the answer lists the group's members afterwards.`,
		Example: example,
		Args:    minArgs(2, "GROUP USER..."),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, users := args[0], args[1:]
			if err := structs.ValidateACLName("group", name); err != nil {
				return err
			}
			if err := validateUsers(users); err != nil {
				return err
			}
			req := structs.GroupMembersRequest{Add: users}
			if !add {
				req = structs.GroupMembersRequest{Remove: users}
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			grp, err := c.ACL().Groups().UpdateMembers(name, req)
			if err != nil {
				return fmt.Errorf("%s group %s: %w", doing, name, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s; group %s has %s: %s\n", verb, strings.Join(users, ", "), name, fmtMembers(grp.Members), orDash(strings.Join(grp.Members, ", ")))
			return nil
		},
	}
}

func newGroupListCmd(g *globals) *cobra.Command {
	cmd := listCmd(g, "List groups and their members", "groups",
		func(c *api.Client) ([]structs.Group, error) {
			list, _, err := c.ACL().Groups().List(nil)
			return list, err
		},
		func(w io.Writer, list []structs.Group) error {
			t := newTable(w, "NAME", "MEMBERS")
			for _, grp := range list {
				t.row(grp.Name, orDash(strings.Join(grp.Members, ",")))
			}
			return t.flush()
		})
	cmd.Example = "  hive group ls\n  hive group ls -o json"
	return cmd
}

func newGroupGetCmd(g *globals) *cobra.Command {
	cmd := getCmd(g, "group", "Show one group", aclName("group"),
		func(c *api.Client, name string) (*structs.Group, error) {
			grp, _, err := c.ACL().Groups().Info(name, nil)
			return grp, err
		},
		func(w io.Writer, grp *structs.Group) error {
			t := newTable(w)
			t.row("Name", grp.Name)
			t.row("Members", orDash(strings.Join(grp.Members, ", ")))
			return t.flush()
		})
	cmd.Example = "  hive group get ops -o json"
	return cmd
}

func newGroupDeleteCmd(g *globals) *cobra.Command {
	cmd := deleteCmd(g, "group", "NAME", "Delete a group; its members lose what its bindings gave them", aclName("group"),
		func(c *api.Client, name string) error { return c.ACL().Groups().Delete(name) })
	cmd.Example = "  hive group delete ops"
	return cmd
}
