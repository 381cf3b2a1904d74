package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hivesec/hive/api"
	"github.com/hivesec/hive/structs"
)

func newBindingCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "binding",
		Short: "Manage bindings: who holds which role, and where",
		Long: `A binding gives one role to subjects: users ("user:alice"), groups
("group:ops") and service accounts ("sa:web/ci"). Without a namespace the
role's rules apply as written; a binding in a namespace confines every rule to
that namespace, so it never reaches another namespace or a cluster-wide
object, whatever the role says.`,
	}
	cmd.AddCommand(newBindingCreateCmd(g), newBindingListCmd(g), newBindingGetCmd(g), newBindingDeleteCmd(g))
	return cmd
}

func newBindingCreateCmd(g *globals) *cobra.Command {
	var (
		role     string
		subjects []string
	)
	cmd := &cobra.Command{
		Use:   "create NAME --role ROLE --subject SUBJECT... [-n NS]",
		Short: "Create or replace a binding",
		Long: `Give --role to every --subject, globally or, with -n, in one namespace. A
binding of the same name is replaced. Subjects are "user:NAME", "group:NAME"
or "sa:NAMESPACE/NAME"; repeat --subject or separate them with commas.

You can only give out what you hold yourself: the server refuses a binding
whose role reaches further than your own.`,
		Example: `  hive binding create web-devs --role developer --subject group:web -n web
  hive binding create alice-admin --role admin --subject user:alice`,
		Args: exactArgs("NAME"),
	}
	ns := namespaceScopeFlag(cmd, "confine the role to this namespace (default: global)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if role == "" {
			return fmt.Errorf("missing --role: the role to give, such as developer (see `hive role ls`)")
		}
		if len(subjects) == 0 {
			return fmt.Errorf("missing --subject: who gets the role, such as --subject user:alice or --subject group:ops")
		}
		b := &structs.ACLBinding{Name: args[0], Role: role, Subjects: subjects, Namespace: *ns}
		if err := b.Validate(); err != nil {
			return err
		}
		c, err := g.client()
		if err != nil {
			return err
		}
		if err := c.ACL().Bindings().Put(b); err != nil {
			return fmt.Errorf("saving binding %s: %w", b.Name, err)
		}
		fmt.Fprintf(cmd.OutOrStdout(), "Saved binding %s: role %s for %s %s\n", b.Name, role, strings.Join(subjects, ", "), whereBinding(b.Namespace))
		return nil
	}
	f := cmd.Flags()
	f.StringVar(&role, "role", "", "role to give (required)")
	f.StringSliceVar(&subjects, "subject", nil, "user:NAME, group:NAME or sa:NS/NAME (repeatable; at least one)")
	return cmd
}

// bindingNamespace prints a binding's namespace; "(global)" cannot be
// mistaken for a namespace name.
func bindingNamespace(ns string) string {
	if ns == "" {
		return "(global)"
	}
	return ns
}

func newBindingListCmd(g *globals) *cobra.Command {
	cmd := listCmd(g, "List bindings", "bindings",
		func(c *api.Client) ([]structs.ACLBinding, error) {
			list, _, err := c.ACL().Bindings().List(nil)
			return list, err
		},
		func(w io.Writer, list []structs.ACLBinding) error {
			t := newTable(w, "NAME", "ROLE", "NAMESPACE", "SUBJECTS")
			for _, b := range list {
				t.row(b.Name, b.Role, bindingNamespace(b.Namespace), strings.Join(b.Subjects, ","))
			}
			return t.flush()
		})
	cmd.Example = "  hive binding ls\n  hive binding ls -o json"
	return cmd
}

func newBindingGetCmd(g *globals) *cobra.Command {
	cmd := getCmd(g, "binding", "Show one binding", aclName("binding"),
		func(c *api.Client, name string) (*structs.ACLBinding, error) {
			b, _, err := c.ACL().Bindings().Info(name, nil)
			return b, err
		},
		func(w io.Writer, b *structs.ACLBinding) error {
			t := newTable(w)
			t.row("Name", b.Name)
			t.row("Role", b.Role)
			t.row("Namespace", bindingNamespace(b.Namespace))
			t.row("Subjects", strings.Join(b.Subjects, ", "))
			return t.flush()
		})
	cmd.Example = "  hive binding get web-devs -o json"
	return cmd
}

func newBindingDeleteCmd(g *globals) *cobra.Command {
	cmd := deleteCmd(g, "binding", "NAME", "Delete a binding; its subjects lose the role it gave", aclName("binding"),
		func(c *api.Client, name string) error { return c.ACL().Bindings().Delete(name) })
	cmd.Example = "  hive binding delete web-devs"
	return cmd
}
