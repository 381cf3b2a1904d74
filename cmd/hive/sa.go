package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hivesec/hive/api"
	"github.com/hivesec/hive/structs"
)

func newServiceAccountCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "sa",
		Aliases: []string{"serviceaccount"},
		Short:   "Manage service accounts, the identities of workloads and automation",
		Long: `A service account is a non-human identity that lives in a namespace, for CI
jobs, controllers and scripts. Its subject is "sa:NAMESPACE/NAME"; give it a
role with a binding, and authenticate as it with a token from ` + "`hive sa token`" + `.
Service accounts are named NAMESPACE/NAME on the command line.`,
	}
	cmd.AddCommand(newSACreateCmd(g), newSAListCmd(g), newSADeleteCmd(g), newSATokenCmd(g))
	return cmd
}

// parseSAName splits NAMESPACE/NAME and checks both parts.
func parseSAName(s string) (ns, name string, err error) {
	ns, name, ok := strings.Cut(s, "/")
	if !ok {
		return "", "", fmt.Errorf("invalid service account %q: use NAMESPACE/NAME, such as web/ci", s)
	}
	if err := structs.ValidateName("namespace", ns); err != nil {
		return "", "", fmt.Errorf("invalid service account %q: %w", s, err)
	}
	if err := structs.ValidateACLName("service account", name); err != nil {
		return "", "", fmt.Errorf("invalid service account %q: %w", s, err)
	}
	return ns, name, nil
}

func newSACreateCmd(g *globals) *cobra.Command {
	var desc string
	cmd := &cobra.Command{
		Use:   "create NAMESPACE/NAME [--description TEXT]",
		Short: "Create a service account",
		Long: `Create a service account in a namespace. It can do nothing until a binding
gives its subject, sa:NAMESPACE/NAME, a role.`,
		Example: `  hive sa create web/ci --description "deploys from CI"
  hive binding create web-ci --role developer --subject sa:web/ci -n web
  hive sa token web/ci --ttl 720h > ci.token`,
		Args: exactArgs("NAMESPACE/NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ns, name, err := parseSAName(args[0])
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			if _, err := c.ACL().ServiceAccounts().Create(ns, name, structs.ServiceAccountRequest{Description: desc}); err != nil {
				return fmt.Errorf("creating service account %s/%s: %w", ns, name, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Created service account %s/%s (subject %s)\n", ns, name, structs.ServiceAccountSubject(ns, name))
			return nil
		},
	}
	cmd.Flags().StringVar(&desc, "description", "", "what the service account is for")
	return cmd
}

func newSAListCmd(g *globals) *cobra.Command {
	var ns string
	cmd := listCmd(g, "List service accounts", "service accounts",
		func(c *api.Client) ([]structs.ServiceAccount, error) {
			list, _, err := c.ACL().ServiceAccounts().List(ns, nil)
			return list, err
		},
		func(w io.Writer, list []structs.ServiceAccount) error {
			t := newTable(w, "NAMESPACE", "NAME", "CREATED", "DESCRIPTION")
			for _, sa := range list {
				t.row(sa.Namespace, sa.Name, fmtTime(sa.CreatedAt), orDash(sa.Description))
			}
			return t.flush()
		})
	cmd.Example = "  hive sa ls\n  hive sa ls -n web -o json"
	cmd.Flags().StringVarP(&ns, "namespace", "n", "", "only service accounts in this namespace (default: all)")
	return cmd
}

func newSADeleteCmd(g *globals) *cobra.Command {
	cmd := deleteCmd(g, "service account", "NAMESPACE/NAME", "Delete a service account; its tokens stop working",
		func(s string) error {
			_, _, err := parseSAName(s)
			return err
		},
		func(c *api.Client, s string) error {
			ns, name, _ := parseSAName(s) // check has accepted s
			return c.ACL().ServiceAccounts().Delete(ns, name)
		})
	cmd.Example = "  hive sa delete web/ci"
	return cmd
}

func newSATokenCmd(g *globals) *cobra.Command {
	var (
		name, ttl string
		rotate    bool
		grace     time.Duration
	)
	cmd := &cobra.Command{
		Use:   "token NAMESPACE/NAME [--ttl 24h] [--name NAME] [--rotate [--grace 1h]]",
		Short: "Issue a token for a service account (its secret is printed once)",
		Long: `Issue a token that authenticates as the service account. The secret alone
goes to standard output; details go to standard error; -o json prints the API
answer, secret included. The token expires after --ttl (24h by default; 0 for
never).

--rotate also retires the account's earlier tokens: they keep working for
--grace (default 0: they stop at once), long enough to roll the new token
out. Without --rotate earlier tokens are left alone.`,
		Example: `  hive sa token web/ci --ttl 720h > ci.token
  hive sa token web/ci --rotate --grace 1h > ci.token`,
		Args: exactArgs("NAMESPACE/NAME"),
	}
	out := outputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := checkOutput(*out); err != nil {
			return err
		}
		ns, sa, err := parseSAName(args[0])
		if err != nil {
			return err
		}
		t, err := parseTTL("--ttl", ttl)
		if err != nil {
			return err
		}
		req := structs.ServiceAccountTokenRequest{Name: name, TTL: t}
		switch {
		case cmd.Flags().Changed("grace") && !rotate:
			return fmt.Errorf("--grace needs --rotate: it is how long the earlier tokens keep working after a rotation")
		case grace < 0:
			return fmt.Errorf("invalid --grace %s: use 0 or a positive duration such as 1h", grace)
		case rotate:
			req.RotateGrace = grace.String()
		}
		c, err := g.client()
		if err != nil {
			return err
		}
		tok, err := c.ACL().ServiceAccounts().Token(ns, sa, req)
		if err != nil {
			return fmt.Errorf("issuing a token for service account %s/%s: %w", ns, sa, err)
		}
		if err := printIssued(cmd.OutOrStdout(), *out, tok, tok.Secret); err != nil {
			return err
		}
		ew := cmd.ErrOrStderr()
		printTokenCreated(ew, "service account token", tok.Token)
		if rotate {
			when := "now"
			if grace > 0 {
				when = "in " + grace.String()
			}
			fmt.Fprintf(ew, "Earlier tokens of %s stop working %s.\n", structs.ServiceAccountSubject(ns, sa), when)
		}
		return nil
	}
	f := cmd.Flags()
	f.StringVar(&ttl, "ttl", "24h", "lifetime, such as 1h or 720h; 0 for no expiry")
	f.StringVar(&name, "name", "", "what the token is for, shown by hive token ls")
	f.BoolVar(&rotate, "rotate", false, "retire the account's earlier tokens after --grace")
	f.DurationVar(&grace, "grace", 0, "with --rotate, how long earlier tokens keep working")
	return cmd
}
