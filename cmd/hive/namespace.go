package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hivesec/hive/api"
	"github.com/hivesec/hive/structs"
)

func newNamespaceCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "namespace",
		Aliases: []string{"ns"},
		Short:   "Create, list, inspect and delete namespaces",
	}
	cmd.AddCommand(newNamespaceCreateCmd(g), newNamespaceUpdateCmd(g), newNamespaceListCmd(g), newNamespaceStatusCmd(g), newNamespaceDeleteCmd(g))
	return cmd
}

// parseNamespaceLabels turns repeated --label KEY=VALUE flags into a map,
// checked as network policies' namespace selectors need them.
func parseNamespaceLabels(in []string) (map[string]string, error) {
	if len(in) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(in))
	for _, kv := range in {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, fmt.Errorf("invalid --label %q: use KEY=VALUE, such as team=shop", kv)
		}
		if err := structs.ValidateLabelKey(k); err != nil {
			return nil, fmt.Errorf("invalid --label %q: %w", kv, err)
		}
		if err := structs.ValidateLabelValue(v); err != nil {
			return nil, fmt.Errorf("invalid --label %q: %w", kv, err)
		}
		if old, dup := out[k]; dup && old != v {
			return nil, fmt.Errorf("--label %s is given twice, as %q and %q", k, old, v)
		}
		out[k] = v
	}
	return out, nil
}

const namespaceLabelsHelp = `Labels (--label KEY=VALUE) are what network policies' namespace selectors
match; every namespace also carries ` + structs.LabelNamespace + `=<name>. --isolation makes
the namespace's allocations accept traffic only from allocations of the same
namespace (a generated network policy, ` + structs.NamespaceIsolationPolicyName + `).`

func newNamespaceCreateCmd(g *globals) *cobra.Command {
	var desc string
	var privileged, isolation bool
	var labels []string
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a namespace",
		Long: `Create a namespace. Tasks in it may not ask for privileged containers
unless it is created with --allow-privileged.

` + namespaceLabelsHelp,
		Example: "  hive namespace create shop --label team=shop --label tier=web --isolation",
		Args:    exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := structs.ValidateName("namespace", args[0]); err != nil {
				return err
			}
			lbls, err := parseNamespaceLabels(labels)
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			if err := c.Namespaces().Create(structs.NamespaceRequest{Name: args[0], Description: desc, AllowPrivileged: privileged, Labels: lbls, Isolation: isolation}); err != nil {
				return fmt.Errorf("creating namespace %s: %w", args[0], err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Created namespace %s\n", args[0])
			return nil
		},
	}
	cmd.Flags().StringVar(&desc, "description", "", "what the namespace is for")
	cmd.Flags().BoolVar(&privileged, "allow-privileged", false, "let tasks in this namespace run privileged containers")
	cmd.Flags().StringArrayVar(&labels, "label", nil, "label KEY=VALUE for network policies' namespace selectors (repeatable)")
	cmd.Flags().BoolVar(&isolation, "isolation", false, "admit traffic to the namespace's allocations only from the same namespace")
	return cmd
}

func newNamespaceUpdateCmd(g *globals) *cobra.Command {
	var desc string
	var isolation bool
	var labels, remove []string
	cmd := &cobra.Command{
		Use:   "update NAME [--label KEY=VALUE]... [--remove-label KEY]... [--isolation=true|false] [--description TEXT]",
		Short: "Change a namespace's labels, isolation or description",
		Long: `Change a namespace's labels, isolation or description; what is not given is
kept. --label adds or replaces a label, --remove-label removes one.
Labels decide which admin network policies select the namespace, so changing
them needs namespace:update granted globally.

` + namespaceLabelsHelp,
		Example: "  hive namespace update shop --label env=prod --remove-label tier\n  hive namespace update shop --isolation=false",
		Args:    exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := structs.ValidateName("namespace", args[0]); err != nil {
				return err
			}
			set, err := parseNamespaceLabels(labels)
			if err != nil {
				return err
			}
			for _, k := range remove {
				if err := structs.ValidateLabelKey(k); err != nil {
					return fmt.Errorf("invalid --remove-label: %w", err)
				}
				if _, both := set[k]; both {
					return fmt.Errorf("label %s is both set (--label) and removed (--remove-label); give it once", k)
				}
			}
			req := structs.NamespaceUpdateRequest{SetLabels: set, RemoveLabels: remove}
			if cmd.Flags().Changed("isolation") {
				req.Isolation = &isolation
			}
			if cmd.Flags().Changed("description") {
				req.Description = &desc
			}
			if len(set) == 0 && len(remove) == 0 && req.Isolation == nil && req.Description == nil {
				return errors.New("nothing to change: give --label, --remove-label, --isolation or --description")
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			ns, err := c.Namespaces().Update(args[0], req)
			if err != nil {
				return fmt.Errorf("updating namespace %s: %w", args[0], err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Updated namespace %s: labels %s, isolation %s\n", ns.Name, fmtLabels(ns.Labels), onOff(ns.Isolation))
			return nil
		},
	}
	cmd.Flags().StringVar(&desc, "description", "", "new description")
	cmd.Flags().StringArrayVar(&labels, "label", nil, "add or replace label KEY=VALUE (repeatable)")
	cmd.Flags().StringArrayVar(&remove, "remove-label", nil, "remove label KEY (repeatable)")
	cmd.Flags().BoolVar(&isolation, "isolation", false, "admit traffic only from the same namespace (true) or as the policies say (false)")
	return cmd
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func newNamespaceListCmd(g *globals) *cobra.Command {
	return listCmd(g, "List namespaces", "namespaces",
		func(c *api.Client) ([]structs.Namespace, error) {
			list, _, err := c.Namespaces().List(nil)
			return list, err
		},
		func(w io.Writer, list []structs.Namespace) error {
			t := newTable(w, "NAME", "DESCRIPTION", "CREATED", "ISOLATION", "LABELS")
			for _, n := range list {
				t.row(n.Name, orDash(n.Description), fmtTime(n.CreatedAt), onOff(n.Isolation), fmtLabels(n.Labels))
			}
			return t.flush()
		})
}

func newNamespaceStatusCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status NAME",
		Short: "Show one namespace",
		Args:  exactArgs("NAME"),
	}
	out := outputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := checkOutput(*out); err != nil {
			return err
		}
		if err := structs.ValidateName("namespace", args[0]); err != nil {
			return err
		}
		c, err := g.client()
		if err != nil {
			return err
		}
		n, _, err := c.Namespaces().Info(args[0], nil)
		if err != nil {
			return fmt.Errorf("reading namespace %s: %w", args[0], err)
		}
		w := cmd.OutOrStdout()
		if *out == "json" {
			return printJSON(w, n)
		}
		t := newTable(w)
		t.row("Name", n.Name)
		t.row("Description", orDash(n.Description))
		t.row("Created", fmtTime(n.CreatedAt))
		t.row("Privileged", map[bool]string{true: "allowed", false: "refused"}[n.AllowPrivileged])
		t.row("Labels", fmtLabels(n.Labels))
		t.row("Isolation", map[bool]string{true: "on: only allocations of this namespace may connect to its allocations", false: "off"}[n.Isolation])
		t.row("Create Index", n.CreateIndex)
		t.row("Modify Index", n.ModifyIndex)
		return t.flush()
	}
	return cmd
}

func newNamespaceDeleteCmd(g *globals) *cobra.Command {
	return deleteCmd(g, "namespace", "NAME", "Delete a namespace",
		func(name string) error {
			if err := structs.ValidateName("namespace", name); err != nil {
				return err
			}
			if name == structs.DefaultNamespace {
				return fmt.Errorf("the %q namespace cannot be deleted: every cluster keeps it", structs.DefaultNamespace)
			}
			return nil
		},
		func(c *api.Client, name string) error { return c.Namespaces().Delete(name) })
}
