package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/spf13/cobra"

	"github.com/hivesec/hive/acl"
	"github.com/hivesec/hive/jobspec"
)

// maxApplyFile bounds what apply reads: these files are small, and reading
// a device or a huge file by mistake should fail, not hang or swap.
const maxApplyFile = 4 << 20

func newApplyCmd(g *globals) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "apply -f FILE",
		Short: "Create or replace the roles, bindings and network policies declared in an HCL file",
		Long: `Apply a file of role, binding, network policy and admin network policy
declarations: every role is created or replaced first, then every binding,
then the network policies and the admin network policies, each kind in file
order, so a binding may name a role from the same file. -f - reads the file
from standard input.

The whole file is parsed and checked before anything is sent; every problem
is reported with its file:line:col. Applying stops at the first object the
server refuses, naming it; the objects before it stay applied, and applying
the file again is safe.

  role "deployer" {
    description = "deploys web"
    rule {
      resources = ["job", "alloc"]
      actions   = ["read", "list", "create"]
      scope     = "namespace:web"   # optional; global by default
    }
  }

  binding "alice-deploys" {
    role      = "deployer"
    subjects  = ["user:alice", "group:ops"]
    namespace = "web"                # optional; global by default
  }

A network policy selects allocations of its namespace by their labels (the
job's and group's labels = {...}, and hive.io/job, hive.io/group) and lists
what may reach them (ingress) or what they may reach (egress); see
` + "`hive netpol --help`" + ` for the semantics.

  network_policy "allow-web" {
    namespace    = "web"             # default "default"
    selector {                       # absent or empty: every allocation
      match_labels = { app = "web" }
      match_expressions {
        key      = "tier"
        operator = "In"              # In, NotIn, Exists, DoesNotExist
        values   = ["front"]
      }
    }
    policy_types = ["Ingress"]       # optional; inferred as in Kubernetes
    ingress {
      from {
        pod_selector { match_labels = { app = "lb" } }
        namespace_selector { match_labels = { team = "web" } }
      }
      from {
        ip_block {
          cidr   = "10.0.0.0/8"
          except = ["10.1.0.0/16"]
        }
      }
      ports {
        protocol = "TCP"             # TCP (default), UDP or SCTP
        port     = 80
        end_port = 90                # optional: a range
      }
    }
    egress {
      to { ... }                     # as from
      ports { ... }
    }
    audit = false                    # true: log what would be denied, deny nothing
  }

  admin_network_policy "deny-metadata" {
    priority = 10                    # 0 (evaluated first) to 1000
    subject {
      namespace_selector {}          # empty: every namespace
      pod_selector { match_labels = { app = "web" } }   # optional
    }
    egress {
      name   = "metadata"
      action = "deny"                # allow, deny or pass
      peers {
        ip_block { cidr = "169.254.169.254/32" }
      }
      ports { ... }                  # optional
    }
  }`,
		Example: `  hive apply -f rbac.hcl
  hive apply -f network-policies.hcl
  cat rbac.hcl | hive apply -f -`,
		Args: exactArgs(),
	}
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if file == "" {
			return errors.New("missing -f FILE: the HCL file of roles, bindings and network policies to apply, or - for standard input")
		}
		name, src, err := readApplyFile(cmd, file)
		if err != nil {
			return err
		}
		spec, netpols, err := parseApplyFile(name, src)
		if err != nil {
			return fmt.Errorf("nothing was applied; %s has problems:\n%w", name, err)
		}
		total := len(spec.Roles) + len(spec.Bindings) + len(netpols.Policies) + len(netpols.AdminPolicies)
		if total == 0 {
			fmt.Fprintf(cmd.ErrOrStderr(), "%s declares no roles, bindings or network policies; nothing to apply.\n", name)
			return nil
		}
		c, err := g.client()
		if err != nil {
			return err
		}
		w := cmd.OutOrStdout()
		done := 0
		failed := func(kind, obj string, err error) error {
			return fmt.Errorf("applying %s/%s: %w (%d of %d objects were applied before it; the rest were not)", kind, obj, err, done, total)
		}
		for _, r := range spec.Roles {
			if err := c.ACL().Roles().Put(r); err != nil {
				return failed("role", r.Name, err)
			}
			done++
			fmt.Fprintf(w, "role/%s applied\n", r.Name)
		}
		for _, b := range spec.Bindings {
			if err := c.ACL().Bindings().Put(b); err != nil {
				return failed("binding", b.Name, err)
			}
			done++
			fmt.Fprintf(w, "binding/%s applied\n", b.Name)
		}
		for _, p := range netpols.Policies {
			if _, err := c.NetworkPolicies().Put(p); err != nil {
				return failed(jobspec.NetworkPolicyBlock, p.Namespace+"/"+p.Name, err)
			}
			done++
			fmt.Fprintf(w, "%s/%s/%s applied\n", jobspec.NetworkPolicyBlock, p.Namespace, p.Name)
		}
		for _, p := range netpols.AdminPolicies {
			if _, err := c.AdminNetworkPolicies().Put(p); err != nil {
				return failed(jobspec.AdminNetworkPolicyBlock, p.Name, err)
			}
			done++
			fmt.Fprintf(w, "%s/%s applied\n", jobspec.AdminNetworkPolicyBlock, p.Name)
		}
		return nil
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "HCL file to apply, or - for standard input (required)")
	return cmd
}

// parseApplyFile reads one file with two parsers: the network policy
// blocks are jobspec's, the rest (roles and bindings) the acl package's.
// The acl parser sees the file with the policy blocks blanked out, every
// byte but the line breaks turned into a space, so the positions it
// reports stay those of the file. Problems from both come back together,
// in file order.
func parseApplyFile(name string, src []byte) (*acl.Spec, *jobspec.NetworkPolicies, error) {
	f, diags := hclsyntax.ParseConfig(src, name, hcl.InitialPos)
	if diags.HasErrors() {
		// A syntax error: both parsers would report it; one is enough.
		_, err := jobspec.ParseNetworkPolicies(name, src)
		return nil, nil, err
	}
	rest := bytes.Clone(src)
	for _, b := range f.Body.(*hclsyntax.Body).Blocks {
		if b.Type != jobspec.NetworkPolicyBlock && b.Type != jobspec.AdminNetworkPolicyBlock {
			continue
		}
		r := b.Range()
		for i := r.Start.Byte; i < r.End.Byte && i < len(rest); i++ {
			if rest[i] != '\n' {
				rest[i] = ' '
			}
		}
	}
	spec, aerr := acl.ParseFile(name, rest)
	netpols, nerr := jobspec.ParseNetworkPolicies(name, src)
	if aerr == nil && nerr == nil {
		return spec, netpols, nil
	}
	type problem struct {
		line, col int
		text      string
	}
	var ps []problem
	var ae *acl.Error
	if errors.As(aerr, &ae) {
		for _, p := range ae.Problems() {
			ps = append(ps, problem{p.Line, p.Col, p.String()})
		}
	} else if aerr != nil {
		ps = append(ps, problem{text: aerr.Error()})
	}
	var je *jobspec.Error
	if errors.As(nerr, &je) {
		for _, p := range je.Problems() {
			ps = append(ps, problem{p.Line, p.Col, p.String()})
		}
	} else if nerr != nil {
		ps = append(ps, problem{text: nerr.Error()})
	}
	sort.SliceStable(ps, func(i, j int) bool {
		if ps[i].line != ps[j].line {
			return ps[i].line < ps[j].line
		}
		return ps[i].col < ps[j].col
	})
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.text
	}
	return nil, nil, errors.New(strings.Join(lines, "\n"))
}

// readApplyFile reads path, or standard input for "-", and returns the
// name to use in messages.
func readApplyFile(cmd *cobra.Command, path string) (string, []byte, error) {
	var (
		r    io.Reader
		name = path
	)
	if path == "-" {
		r, name = cmd.InOrStdin(), "<stdin>"
	} else {
		f, err := os.Open(path)
		if err != nil {
			return "", nil, fmt.Errorf("reading the file to apply: %w", err)
		}
		defer f.Close()
		r = f
	}
	src, err := io.ReadAll(io.LimitReader(r, maxApplyFile+1))
	if err != nil {
		return "", nil, fmt.Errorf("reading %s: %w", name, err)
	}
	if len(src) > maxApplyFile {
		return "", nil, fmt.Errorf("%s is larger than %d MiB; is it the right file?", name, maxApplyFile>>20)
	}
	return name, src, nil
}
