package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hivesec/hive/api"
	"github.com/hivesec/hive/structs"
)

const netpolLong = `Network policies decide what allocations may talk to, with Kubernetes
NetworkPolicy semantics: a policy selects allocations of its namespace by
their labels (job and group labels, plus hive.io/job and hive.io/group); an
allocation selected by any policy of a direction (ingress or egress) gets
only the traffic some policy of that direction allows, and allows add up.
Replies to allowed connections always pass.

Policies are written in HCL and applied with ` + "`hive apply -f FILE`" + ` (see its
help for the format); these commands list, show and delete them. Cluster-wide
admin policies, evaluated before these, are managed with ` + "`hive admin-netpol`" + `;
a namespace created or updated with --isolation gets a generated policy
(` + structs.NamespaceIsolationPolicyName + `) that admits only its own allocations.`

func newNetpolCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "netpol",
		Aliases: []string{"network-policy"},
		Short:   "List, show and delete network policies",
		Long:    netpolLong,
	}
	cmd.AddCommand(newNetpolListCmd(g), newNetpolGetCmd(g), newNetpolDeleteCmd(g))
	return cmd
}

// parseNetpolRef splits NAMESPACE/NAME, or takes NAME in the namespace of
// -n; -n and a different NAMESPACE/ are refused rather than one winning.
func parseNetpolRef(cmd *cobra.Command, arg, nsFlag string) (ns, name string, err error) {
	ns, name = nsFlag, arg
	if before, after, ok := strings.Cut(arg, "/"); ok {
		ns, name = before, after
		if f := cmd.Flags().Lookup("namespace"); f != nil && f.Changed && nsFlag != ns {
			return "", "", fmt.Errorf("network policy %q is in namespace %s but -n says %s: give the namespace once", arg, ns, nsFlag)
		}
	}
	const use = "use NAMESPACE/NAME, such as shop/allow-web, or NAME with -n NAMESPACE"
	if err := structs.ValidateName("namespace", ns); err != nil {
		return "", "", fmt.Errorf("invalid network policy %q: %w; %s", arg, err, use)
	}
	if err := structs.ValidateName("network policy", name); err != nil {
		return "", "", fmt.Errorf("invalid network policy %q: %w; %s", arg, err, use)
	}
	return ns, name, nil
}

func netpolNamespaceFlag(cmd *cobra.Command) *string {
	s := new(string)
	cmd.Flags().StringVarP(s, "namespace", "n", structs.DefaultNamespace, "namespace of a policy given as NAME (NAMESPACE/NAME names its own)")
	return s
}

func newNetpolListCmd(g *globals) *cobra.Command {
	var ns string
	var all bool
	cmd := listCmd(g, "List the network policies of a namespace, or of all with -A", "network policies",
		func(c *api.Client) ([]structs.NetworkPolicy, error) {
			want := ns
			if all {
				want = ""
			}
			list, _, err := c.NetworkPolicies().List(want, nil)
			var ae *api.Error
			if all && errors.As(err, &ae) && ae.StatusCode == http.StatusForbidden {
				return nil, fmt.Errorf("%w; listing every namespace takes netpol:list granted globally: pass -n NAMESPACE to list one", err)
			}
			return list, err
		},
		func(w io.Writer, list []structs.NetworkPolicy) error {
			t := newTable(w, "NAMESPACE", "NAME", "SELECTOR", "TYPES", "INGRESS", "EGRESS", "AUDIT")
			for _, p := range list {
				t.row(p.Namespace, p.Name, fmtSelector(&p.Selector), fmtPolicyTypes(&p), len(p.Ingress), len(p.Egress), p.Audit)
			}
			return t.flush()
		})
	cmd.Example = "  hive netpol ls -n shop\n  hive netpol ls -A -o json"
	cmd.Flags().StringVarP(&ns, "namespace", "n", structs.DefaultNamespace, "namespace to list")
	cmd.Flags().BoolVarP(&all, "all-namespaces", "A", false, "list every namespace's policies (needs netpol:list granted globally)")
	prev := cmd.RunE
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if all && cmd.Flags().Changed("namespace") {
			return errors.New("give -n NAMESPACE or -A, not both")
		}
		if err := structs.ValidateName("namespace", ns); err != nil {
			return err
		}
		return prev(cmd, args)
	}
	return cmd
}

func newNetpolGetCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "get NAMESPACE/NAME",
		Short:   "Show one network policy and its rules",
		Args:    exactArgs("NAMESPACE/NAME"),
		Example: "  hive netpol get shop/allow-web\n  hive netpol get allow-web -n shop -o json",
	}
	out := outputFlag(cmd)
	nsFlag := netpolNamespaceFlag(cmd)
	var ns, name string
	cmd.RunE = readRunE(g, out,
		func(args []string) (err error) {
			ns, name, err = parseNetpolRef(cmd, args[0], *nsFlag)
			return err
		},
		func(c *api.Client, _ []string) (*structs.NetworkPolicy, error) {
			p, _, err := c.NetworkPolicies().Info(ns, name, nil)
			if err != nil {
				return nil, fmt.Errorf("reading network policy %s/%s: %w", ns, name, err)
			}
			return p, nil
		},
		printNetpol)
	return cmd
}

func newNetpolDeleteCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "delete NAMESPACE/NAME",
		Aliases: []string{"rm"},
		Short:   "Delete a network policy",
		Args:    exactArgs("NAMESPACE/NAME"),
	}
	nsFlag := netpolNamespaceFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		ns, name, err := parseNetpolRef(cmd, args[0], *nsFlag)
		if err != nil {
			return err
		}
		c, err := g.client()
		if err != nil {
			return err
		}
		if err := c.NetworkPolicies().Delete(ns, name); err != nil {
			return fmt.Errorf("deleting network policy %s/%s: %w", ns, name, err)
		}
		fmt.Fprintf(cmd.OutOrStdout(), "Deleted network policy %s/%s\n", ns, name)
		return nil
	}
	return cmd
}

func newAdminNetpolCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "admin-netpol",
		Aliases: []string{"anp", "admin-network-policy"},
		Short:   "List, show and delete cluster-wide admin network policies",
		Long: `Admin network policies are cluster-wide and come before namespaces' network
policies, as Kubernetes AdminNetworkPolicy: the rules of all of them are tried
in ascending priority (0 first; ties by name, then rule order), and the first
rule that matches a connection decides it. Allow and deny are final; pass
hands the connection to the namespace's network policies.

They are written in HCL and applied with ` + "`hive apply -f FILE`" + `; changing them
needs netpol/admin granted globally.`,
	}
	cmd.AddCommand(
		listCmd(g, "List admin network policies, in the order they are evaluated", "admin network policies",
			func(c *api.Client) ([]structs.AdminNetworkPolicy, error) {
				list, _, err := c.AdminNetworkPolicies().List(nil)
				sort.SliceStable(list, func(i, j int) bool {
					if list[i].Priority != list[j].Priority {
						return list[i].Priority < list[j].Priority
					}
					return list[i].Name < list[j].Name
				})
				return list, err
			},
			func(w io.Writer, list []structs.AdminNetworkPolicy) error {
				t := newTable(w, "PRIORITY", "NAME", "NAMESPACES", "SELECTOR", "INGRESS", "EGRESS")
				for _, p := range list {
					pods := "(all)"
					if p.Subject.PodSelector != nil {
						pods = fmtSelector(p.Subject.PodSelector)
					}
					t.row(p.Priority, p.Name, fmtSelector(&p.Subject.NamespaceSelector), pods, len(p.Ingress), len(p.Egress))
				}
				return t.flush()
			}),
		getCmd(g, "admin network policy", "Show one admin network policy and its rules",
			func(name string) error { return structs.ValidateName("admin network policy", name) },
			func(c *api.Client, name string) (*structs.AdminNetworkPolicy, error) {
				p, _, err := c.AdminNetworkPolicies().Info(name, nil)
				return p, err
			},
			printAdminNetpol),
		deleteCmd(g, "admin network policy", "NAME", "Delete an admin network policy",
			func(name string) error { return structs.ValidateName("admin network policy", name) },
			func(c *api.Client, name string) error { return c.AdminNetworkPolicies().Delete(name) }),
	)
	return cmd
}

// fmtSelector prints a selector as "k=v, k In (a,b), k Exists", or
// "(all)" for the empty one.
func fmtSelector(s *structs.LabelSelector) string {
	if s.Empty() {
		return "(all)"
	}
	keys := make([]string, 0, len(s.MatchLabels))
	for k := range s.MatchLabels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys)+len(s.MatchExpressions))
	for _, k := range keys {
		parts = append(parts, k+"="+s.MatchLabels[k])
	}
	for _, e := range s.MatchExpressions {
		switch e.Operator {
		case structs.SelectorOpIn, structs.SelectorOpNotIn:
			parts = append(parts, fmt.Sprintf("%s %s (%s)", e.Key, e.Operator, strings.Join(e.Values, ",")))
		default:
			parts = append(parts, e.Key+" "+e.Operator)
		}
	}
	return strings.Join(parts, ", ")
}

// fmtPolicyTypes prints the directions a policy isolates, with the
// Kubernetes defaults applied when it names none.
func fmtPolicyTypes(p *structs.NetworkPolicy) string {
	in, eg := p.PolicyDirections()
	var out []string
	if in {
		out = append(out, structs.PolicyTypeIngress)
	}
	if eg {
		out = append(out, structs.PolicyTypeEgress)
	}
	return strings.Join(out, ",")
}

// fmtPeer says what one peer matches. In a namespace policy a pod selector
// alone reaches the policy's own namespace; in an admin policy, any.
func fmtPeer(p *structs.NetpolPeer, admin bool) string {
	switch {
	case p.IPBlock != nil:
		s := p.IPBlock.CIDR
		if len(p.IPBlock.Except) > 0 {
			s += " except " + strings.Join(p.IPBlock.Except, ", ")
		}
		return s
	case p.NamespaceSelector == nil && admin:
		return "allocations " + fmtSelector(p.PodSelector) + " in every namespace"
	case p.NamespaceSelector == nil:
		return "allocations " + fmtSelector(p.PodSelector) + " in this namespace"
	case p.PodSelector == nil:
		return "every allocation in namespaces " + fmtSelector(p.NamespaceSelector)
	}
	return "allocations " + fmtSelector(p.PodSelector) + " in namespaces " + fmtSelector(p.NamespaceSelector)
}

func fmtPeers(peers []structs.NetpolPeer, admin bool) string {
	if len(peers) == 0 {
		return "anywhere"
	}
	parts := make([]string, len(peers))
	for i := range peers {
		parts[i] = fmtPeer(&peers[i], admin)
	}
	return strings.Join(parts, "; ")
}

func fmtPorts(ports []structs.NetpolPort) string {
	if len(ports) == 0 {
		return "every port"
	}
	parts := make([]string, len(ports))
	for i, p := range ports {
		parts[i] = fmt.Sprintf("%s/%d", p.ProtocolName(), p.Port)
		if p.EndPort != 0 {
			parts[i] += fmt.Sprintf("-%d", p.EndPort)
		}
	}
	return strings.Join(parts, ", ")
}

func printNetpol(w io.Writer, p *structs.NetworkPolicy) error {
	t := newTable(w)
	t.row("Name", p.Name)
	t.row("Namespace", p.Namespace)
	t.row("Selector", fmtSelector(&p.Selector))
	t.row("Policy Types", fmtPolicyTypes(p))
	t.row("Audit", map[bool]string{true: "yes: denied flows are logged, not dropped", false: "no"}[p.Audit])
	t.row("Create Index", p.CreateIndex)
	t.row("Modify Index", p.ModifyIndex)
	if err := t.flush(); err != nil {
		return err
	}
	in, eg := p.PolicyDirections()
	printRules := func(title string, isolated bool, n int, rule func(int) (string, string)) {
		switch {
		case !isolated:
			return
		case n == 0:
			fmt.Fprintf(w, "\n%s: none, so every connection is denied\n", title)
			return
		}
		fmt.Fprintf(w, "\n%s:\n", title)
		for i := 0; i < n; i++ {
			peers, ports := rule(i)
			fmt.Fprintf(w, "  %d. %s\n     ports: %s\n", i+1, peers, ports)
		}
	}
	printRules("Ingress (allowed from)", in, len(p.Ingress), func(i int) (string, string) {
		return fmtPeers(p.Ingress[i].From, false), fmtPorts(p.Ingress[i].Ports)
	})
	printRules("Egress (allowed to)", eg, len(p.Egress), func(i int) (string, string) {
		return fmtPeers(p.Egress[i].To, false), fmtPorts(p.Egress[i].Ports)
	})
	return nil
}

func printAdminNetpol(w io.Writer, p *structs.AdminNetworkPolicy) error {
	t := newTable(w)
	t.row("Name", p.Name)
	t.row("Priority", p.Priority)
	t.row("Namespaces", fmtSelector(&p.Subject.NamespaceSelector))
	pods := "(all)"
	if p.Subject.PodSelector != nil {
		pods = fmtSelector(p.Subject.PodSelector)
	}
	t.row("Allocations", pods)
	t.row("Create Index", p.CreateIndex)
	t.row("Modify Index", p.ModifyIndex)
	if err := t.flush(); err != nil {
		return err
	}
	for _, d := range []struct {
		title string
		rules []structs.AdminNetpolRule
	}{{"Ingress rules (from)", p.Ingress}, {"Egress rules (to)", p.Egress}} {
		if len(d.rules) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n%s:\n", d.title)
		for i, r := range d.rules {
			name := ""
			if r.Name != "" {
				name = " (" + r.Name + ")"
			}
			fmt.Fprintf(w, "  %d. %s%s: %s\n     ports: %s\n", i+1, strings.ToLower(r.ActionName()), name, fmtPeers(r.Peers, true), fmtPorts(r.Ports))
		}
	}
	return nil
}
