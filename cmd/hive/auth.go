package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hivesec/hive/api"
	"github.com/hivesec/hive/structs"
)

func newAuthCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "auth",
		Short: "Inspect authorization: what you, or another subject, may do",
	}
	cmd.AddCommand(newCanICmd(g))
	return cmd
}

func newCanICmd(g *globals) *cobra.Command {
	var (
		ns, name, as string
		list         bool
	)
	cmd := &cobra.Command{
		Use:   "can-i ACTION RESOURCE [-n NS] [--name NAME] [--as SUBJECT] | can-i --list [--as SUBJECT]",
		Short: "Ask whether an action is allowed, or list everything that is",
		Long: `Ask the server whether the credentials in use (or --as SUBJECT) may do ACTION
on RESOURCE, without doing it. It prints "yes" or "no" and exits 0 for yes
and 1 for no, so scripts can test it; what allowed it (role, binding and rule)
goes to standard error. -o json prints the server's answer.

-n NS asks about objects in namespace NS, and -n '*' about all namespaces at
once (a cross-namespace list). Without -n the question is about cluster-wide
objects, which only global grants reach. --name asks about one named object,
which rules scoped to that object also reach.

--list prints every permission instead, as RESOURCE ACTIONS SCOPE ROLE
BINDING. Asking about another subject with --as needs the right to read
bindings.

Resources and their actions:
` + resourceHelp(),
		Example: `  hive auth can-i create job -n web
  hive auth can-i read secret/value -n web --name db-password --as sa:web/ci
  hive auth can-i --list --as user:alice
  if hive auth can-i drain node 2>/dev/null; then hive node drain n-2; fi`,
		Args: func(cmd *cobra.Command, args []string) error {
			if list {
				return exactArgs()(cmd, args)
			}
			return exactArgs("ACTION", "RESOURCE")(cmd, args)
		},
	}
	out := outputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := checkOutput(*out); err != nil {
			return err
		}
		if as != "" {
			if err := structs.ValidateSubject(as); err != nil {
				return fmt.Errorf("--as: %w", err)
			}
		}
		if list {
			if ns != "" || name != "" {
				return fmt.Errorf("--list takes no -n or --name: it lists every permission, with the scope each reaches")
			}
			return listPermissions(cmd, g, as, *out)
		}
		action, resource := args[0], args[1]
		if err := checkActionResource(action, resource); err != nil {
			return err
		}
		if ns != "" && ns != structs.ACLWildcard {
			if err := structs.ValidateName("namespace", ns); err != nil {
				return err
			}
		}
		c, err := g.client()
		if err != nil {
			return err
		}
		resp, err := c.ACL().CanI(api.CanIRequest{Resource: resource, Action: action, Namespace: ns, Name: name, As: as})
		if err != nil {
			return fmt.Errorf("asking whether %s may %s %s: %w", subjectOrYou(as), action, resource, err)
		}
		w := cmd.OutOrStdout()
		if *out == "json" {
			if err := printJSON(w, resp); err != nil {
				return err
			}
		} else {
			answer := "no"
			if resp.Allowed {
				answer = "yes"
			}
			fmt.Fprintln(w, answer)
		}
		ew := cmd.ErrOrStderr()
		if !resp.Allowed {
			if *out != "json" {
				fmt.Fprintf(ew, "No role bound to %s allows %s on %s%s.\n", orDefault(resp.Subject, subjectOrYou(as)), action, resource, where(ns, name))
			}
			return exitCode(1)
		}
		if *out != "json" {
			fmt.Fprintf(ew, "Allowed by role %s through binding %s (rule %s).\n", orDash(resp.Role), orDash(resp.Binding), orDash(resp.Rule))
		}
		return nil
	}
	f := cmd.Flags()
	f.StringVarP(&ns, "namespace", "n", "", "namespace of the object, or * for all (default: cluster-wide)")
	f.StringVar(&name, "name", "", "name of the object (default: none, as for list and create)")
	f.StringVar(&as, "as", "", "ask about this subject instead: user:NAME, group:NAME or sa:NS/NAME")
	f.BoolVar(&list, "list", false, "list every permission instead of asking about one")
	return cmd
}

// checkActionResource refuses pairs that do not exist, which the server
// would only ever deny, with the list of what does.
func checkActionResource(action, resource string) error {
	acts, ok := structs.ACLResources[resource]
	if !ok {
		if _, swapped := structs.ACLResources[action]; swapped {
			return fmt.Errorf("unknown resource %q: the action comes first, as in `hive auth can-i %s %s`", resource, resource, action)
		}
		return fmt.Errorf("unknown resource %q: use one of %s", resource, strings.Join(structs.ACLResourceNames(), ", "))
	}
	if !structs.ValidACLAction(resource, action) {
		return fmt.Errorf("%q is not an action on %s: use one of %s", action, resource, strings.Join(acts, ", "))
	}
	return nil
}

func subjectOrYou(as string) string {
	if as == "" {
		return "you"
	}
	return as
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// where says which objects a can-i question is about.
func where(ns, name string) string {
	var s string
	switch ns {
	case "":
		s = " (cluster-wide)"
	case structs.ACLWildcard:
		s = " in every namespace"
	default:
		s = " in namespace " + ns
	}
	if name != "" {
		s = " named " + name + s
	}
	return s
}

func listPermissions(cmd *cobra.Command, g *globals, as, format string) error {
	c, err := g.client()
	if err != nil {
		return err
	}
	resp, err := c.ACL().Permissions(as)
	if err != nil {
		return fmt.Errorf("listing the permissions of %s: %w", subjectOrYou(as), err)
	}
	w := cmd.OutOrStdout()
	if format == "json" {
		if resp.Permissions == nil {
			resp.Permissions = []structs.Permission{}
		}
		return printJSON(w, resp)
	}
	if len(resp.Permissions) == 0 {
		fmt.Fprintf(cmd.ErrOrStderr(), "%s may do nothing: no binding gives it a role.\n", orDefault(resp.Subject, subjectOrYou(as)))
	}
	t := newTable(w, "RESOURCE", "ACTIONS", "SCOPE", "ROLE", "BINDING")
	for _, p := range resp.Permissions {
		t.row(p.Resource, strings.Join(p.Actions, ","), orDefault(p.Scope, "global"), orDash(p.Role), orDash(p.Binding))
	}
	return t.flush()
}
