package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hivesec/hive/acl"
	"github.com/hivesec/hive/api"
	"github.com/hivesec/hive/structs"
)

func newRoleCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "role",
		Short: "Manage roles: named sets of rules that bindings give out",
		Long: `A role is a named list of rules; a rule allows some actions on some resources
within a scope. A role does nothing until a binding gives it to users, groups
or service accounts (` + "`hive binding`" + `).

The built-in roles admin, developer and viewer exist in every cluster and
cannot be changed. Roles and bindings can also be kept in a file and applied
with ` + "`hive apply -f`" + `.`,
	}
	cmd.AddCommand(newRoleCreateCmd(g), newRoleListCmd(g), newRoleGetCmd(g), newRoleDeleteCmd(g))
	return cmd
}

const ruleSpecHelp = "use RESOURCES:ACTIONS[@SCOPE], such as job,alloc:read,list@namespace:web"

// parseRuleSpec parses a --rule value, RESOURCES:ACTIONS[@SCOPE], where
// RESOURCES and ACTIONS are comma-separated and SCOPE is "global" (the
// default), "namespace:NS", "namespace:*" or "KIND:NS/NAME".
func parseRuleSpec(spec string) (structs.ACLRule, error) {
	bad := func(format string, args ...any) (structs.ACLRule, error) {
		return structs.ACLRule{}, fmt.Errorf("invalid --rule %q: %s; %s", spec, fmt.Sprintf(format, args...), ruleSpecHelp)
	}
	body, scope, scoped := strings.Cut(spec, "@")
	if strings.Contains(scope, "@") {
		return bad("more than one '@'")
	}
	scope = strings.TrimSpace(scope)
	if scoped && scope == "" {
		return bad("no scope after '@' (leave the '@' out for a global rule)")
	}
	res, acts, ok := strings.Cut(body, ":")
	if !ok {
		return bad("no ':' between the resources and the actions")
	}
	if strings.Contains(acts, ":") {
		return bad("more than one ':' before the scope (a scope goes after '@')")
	}
	resources, err := splitRuleList(res)
	if err != nil {
		return bad("resources: %v", err)
	}
	actions, err := splitRuleList(acts)
	if err != nil {
		return bad("actions: %v", err)
	}
	if scope == "" {
		scope = "global"
	}
	rule := structs.ACLRule{Resources: resources, Actions: actions, Scope: scope}
	if err := rule.Validate(); err != nil {
		return structs.ACLRule{}, fmt.Errorf("invalid --rule %q: %w", spec, err)
	}
	return rule, nil
}

func splitRuleList(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("none given")
	}
	parts := strings.Split(s, ",")
	for i, p := range parts {
		parts[i] = strings.TrimSpace(p)
		if parts[i] == "" {
			return nil, fmt.Errorf("an empty name in %q", s)
		}
	}
	return parts, nil
}

// checkNotBuiltin refuses to change a built-in role, before asking the
// server, with a message that says what to do instead.
func checkNotBuiltin(name, doing string) error {
	for _, r := range acl.BuiltinRoles() {
		if r.Name == name {
			return fmt.Errorf("role %q is built in and cannot be %s; define a role with another name, or bind %s as it is", name, doing, name)
		}
	}
	return nil
}

func newRoleCreateCmd(g *globals) *cobra.Command {
	var (
		rules []string
		desc  string
	)
	cmd := &cobra.Command{
		Use:   "create NAME --rule RESOURCES:ACTIONS[@SCOPE]... [--description TEXT]",
		Short: "Create or replace a role",
		Long: `Create a role from one or more --rule flags, or replace the role of that name.

A rule is RESOURCES:ACTIONS[@SCOPE]. RESOURCES and ACTIONS are comma-separated
names, or "*" for all of them (including ones added later, so use it only
where that is meant). SCOPE is where the rule applies:

  global (the default)   everything, cluster-wide objects included
  namespace:NS           objects in namespace NS
  namespace:*            objects in every namespace, nothing cluster-wide
  KIND:NS/NAME           one object, such as job:web/api ("*" for NS or NAME)

A binding in a namespace confines every rule of its role to that namespace.

Resources and their actions:
` + resourceHelp(),
		Example: `  hive role create deployer --description "deploys web" \
      --rule job,alloc:read,list,create,update,stop@namespace:web \
      --rule alloc/logs:read@namespace:web
  hive role create api-reader --rule job:read@job:web/api`,
		Args: exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if err := checkNotBuiltin(name, "changed"); err != nil {
				return err
			}
			if len(rules) == 0 {
				return fmt.Errorf("missing --rule: a role must grant something; %s", ruleSpecHelp)
			}
			role := &structs.ACLRole{Name: name, Description: desc}
			for _, spec := range rules {
				r, err := parseRuleSpec(spec)
				if err != nil {
					return err
				}
				role.Rules = append(role.Rules, r)
			}
			if err := role.Validate(); err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			if err := c.ACL().Roles().Put(role); err != nil {
				return fmt.Errorf("saving role %s: %w", name, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Saved role %s (%s)\n", name, plural(len(role.Rules), "rule"))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&rules, "rule", nil, "a rule, RESOURCES:ACTIONS[@SCOPE] (repeatable)")
	f.StringVar(&desc, "description", "", "what the role is for")
	return cmd
}

// resourceHelp lists every resource with its actions, for help texts.
func resourceHelp() string {
	var b strings.Builder
	width := 0
	for _, r := range structs.ACLResourceNames() {
		width = max(width, len(r))
	}
	for _, r := range structs.ACLResourceNames() {
		fmt.Fprintf(&b, "  %-*s %s\n", width, r, strings.Join(structs.ACLResources[r], ", "))
	}
	return strings.TrimRight(b.String(), "\n")
}

func ruleScope(r structs.ACLRule) string {
	if r.Scope == "" {
		return "global"
	}
	return r.Scope
}

func newRoleListCmd(g *globals) *cobra.Command {
	cmd := listCmd(g, "List roles, built-in ones included", "roles",
		func(c *api.Client) ([]structs.ACLRole, error) {
			list, _, err := c.ACL().Roles().List(nil)
			return list, err
		},
		func(w io.Writer, list []structs.ACLRole) error {
			t := newTable(w, "NAME", "BUILT-IN", "RULES", "DESCRIPTION")
			for _, r := range list {
				t.row(r.Name, r.BuiltIn, len(r.Rules), orDash(r.Description))
			}
			return t.flush()
		})
	cmd.Example = "  hive role ls\n  hive role ls -o json"
	return cmd
}

func newRoleGetCmd(g *globals) *cobra.Command {
	cmd := getCmd(g, "role", "Show a role and its rules", aclName("role"),
		func(c *api.Client, name string) (*structs.ACLRole, error) {
			r, _, err := c.ACL().Roles().Info(name, nil)
			return r, err
		},
		func(w io.Writer, r *structs.ACLRole) error {
			t := newTable(w)
			t.row("Name", r.Name)
			t.row("Description", orDash(r.Description))
			t.row("Built-in", r.BuiltIn)
			if err := t.flush(); err != nil {
				return err
			}
			fmt.Fprintln(w)
			t = newTable(w, "RESOURCES", "ACTIONS", "SCOPE")
			for _, rule := range r.Rules {
				t.row(strings.Join(rule.Resources, ","), strings.Join(rule.Actions, ","), ruleScope(rule))
			}
			return t.flush()
		})
	cmd.Example = `  hive role get developer
  hive role get deployer -o json`
	return cmd
}

func newRoleDeleteCmd(g *globals) *cobra.Command {
	cmd := deleteCmd(g, "role", "NAME", "Delete a role",
		func(name string) error {
			if err := structs.ValidateACLName("role", name); err != nil {
				return err
			}
			return checkNotBuiltin(name, "deleted")
		},
		func(c *api.Client, name string) error { return c.ACL().Roles().Delete(name) })
	cmd.Long = `Delete a role. Look for the bindings that give it out first
(` + "`hive binding ls`" + `): whoever holds it through them loses what it granted.`
	cmd.Example = "  hive role delete deployer"
	return cmd
}

// plural prints "1 rule", "2 rules".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
