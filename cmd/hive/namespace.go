package main

import (
	"fmt"
	"io"

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
	cmd.AddCommand(newNamespaceCreateCmd(g), newNamespaceListCmd(g), newNamespaceStatusCmd(g), newNamespaceDeleteCmd(g))
	return cmd
}

func newNamespaceCreateCmd(g *globals) *cobra.Command {
	var desc string
	var privileged bool
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a namespace",
		Long: `Create a namespace. Tasks in it may not ask for privileged containers
unless it is created with --allow-privileged.`,
		Args: exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := structs.ValidateName("namespace", args[0]); err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			if err := c.Namespaces().Create(structs.NamespaceRequest{Name: args[0], Description: desc, AllowPrivileged: privileged}); err != nil {
				return fmt.Errorf("creating namespace %s: %w", args[0], err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Created namespace %s\n", args[0])
			return nil
		},
	}
	cmd.Flags().StringVar(&desc, "description", "", "what the namespace is for")
	cmd.Flags().BoolVar(&privileged, "allow-privileged", false, "let tasks in this namespace run privileged containers")
	return cmd
}

func newNamespaceListCmd(g *globals) *cobra.Command {
	return listCmd(g, "List namespaces", "namespaces",
		func(c *api.Client) ([]structs.Namespace, error) {
			list, _, err := c.Namespaces().List(nil)
			return list, err
		},
		func(w io.Writer, list []structs.Namespace) error {
			t := newTable(w, "NAME", "DESCRIPTION", "CREATED")
			for _, n := range list {
				t.row(n.Name, orDash(n.Description), fmtTime(n.CreatedAt))
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
