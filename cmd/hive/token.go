package main

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/hivesec/hive/api"
	"github.com/hivesec/hive/structs"
)

func newTokenCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Create, list and revoke API tokens",
		Long: `API tokens authenticate people and scripts to the API (--token, HIVE_TOKEN or
the CLI config). A token created here acts as its creator, or, with --role,
holds only that role (globally or in one namespace), which its creator must
hold too. Sessions from ` + "`hive login`" + ` and service account tokens from
` + "`hive sa token`" + ` are listed here as well.

A token's secret is shown once, when it is created; the server keeps only its
hash and refers to it by its accessor ID.

Join tokens, which let nodes join the cluster, are managed with
` + "`hive join-token`" + `.`,
	}
	cmd.AddCommand(newTokenCreateCmd(g), newTokenListCmd(g), newTokenRevokeCmd(g))
	return cmd
}

// parseTTL checks a --ttl value. An empty value and "0" mean "none": the
// result is "", which the API reads as no expiry.
func parseTTL(flag, s string) (string, error) {
	if s == "" || s == "0" {
		return "", nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return "", fmt.Errorf("invalid %s %q: use a positive duration such as 30m, 24h or 720h, or 0 for no expiry", flag, s)
	}
	if d == 0 {
		return "", nil
	}
	return d.String(), nil
}

// namespaceScopeFlag adds -n for commands where no namespace means
// "global", unlike the job commands' -n, which defaults to "default".
func namespaceScopeFlag(cmd *cobra.Command, usage string) *string {
	s := new(string)
	cmd.Flags().StringVarP(s, "namespace", "n", "", usage)
	return s
}

func newTokenCreateCmd(g *globals) *cobra.Command {
	var name, ttl, role string
	cmd := &cobra.Command{
		Use:   "create [--name NAME] [--ttl 24h] [--role ROLE [-n NS]]",
		Short: "Create an API token (its secret is printed once)",
		Long: `Create an API token. Without --role it acts as you (with all your bindings);
with --role it holds only that role, globally or, with -n, in one namespace.
You must hold whatever the role grants there yourself.

The token expires after --ttl (24h by default; 0 for never). The secret alone
goes to standard output, so that TOKEN=$(hive token create ...) works;
details and a reminder that it is shown only once go to standard error.
-o json prints the API answer, secret included.`,
		Example: `  hive token create --name ci-deploy --role deployer -n web --ttl 720h > deploy.token
  HIVE_TOKEN=$(cat deploy.token) hive job status -n web`,
		Args: exactArgs(),
	}
	out := outputFlag(cmd)
	ns := namespaceScopeFlag(cmd, "confine --role to this namespace (default: global)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := checkOutput(*out); err != nil {
			return err
		}
		t, err := parseTTL("--ttl", ttl)
		if err != nil {
			return err
		}
		req := structs.TokenCreateRequest{Name: name, TTL: t, Role: role, Namespace: *ns}
		if role == "" && *ns != "" {
			return fmt.Errorf("-n %s needs --role: a token without a role acts as you everywhere; give the role it should hold in %s", *ns, *ns)
		}
		if role != "" {
			if err := structs.ValidateACLName("role", role); err != nil {
				return err
			}
		}
		if *ns != "" {
			if err := structs.ValidateName("namespace", *ns); err != nil {
				return err
			}
		}
		c, err := g.client()
		if err != nil {
			return err
		}
		tok, err := c.ACL().Tokens().Create(req)
		if err != nil {
			if role == string(structs.RoleWorker) || role == string(structs.RoleManager) {
				return fmt.Errorf("creating API token: %w (join tokens for nodes are created with `hive join-token create --role %s`)", err, role)
			}
			return fmt.Errorf("creating API token: %w", err)
		}
		if err := printIssued(cmd.OutOrStdout(), *out, tok, tok.Secret); err != nil {
			return err
		}
		printTokenCreated(cmd.ErrOrStderr(), "API token", tok.Token)
		return nil
	}
	f := cmd.Flags()
	f.StringVar(&name, "name", "", "what the token is for, shown in listings")
	f.StringVar(&ttl, "ttl", "24h", "lifetime, such as 1h or 720h; 0 for no expiry")
	f.StringVar(&role, "role", "", "hold only this role instead of acting as you")
	return cmd
}

// printIssued prints a new token's secret alone, so that
// TOKEN=$(hive ... create) works, or with -o json (format) the whole API
// answer, resp.
func printIssued(w io.Writer, format string, resp any, secret string) error {
	if format == "json" {
		return printJSON(w, resp)
	}
	_, err := fmt.Fprintln(w, secret)
	return err
}

// printTokenCreated describes a new token on w (standard error) and warns
// that its secret is not shown again.
func printTokenCreated(w io.Writer, what string, t structs.TokenInfo) {
	// A token limited to a role has no subject of its own: it acts only
	// with the role.
	holder, power := "for "+orDash(t.Subject), "act as "+orDash(t.Subject)
	if t.Role != "" {
		holder, power = "holding role "+tokenRole(t), "do what role "+tokenRole(t)+" allows"
		if t.Subject != "" {
			holder = "for " + t.Subject + ", " + holder
		}
	}
	fmt.Fprintf(w, "Created %s %s %s (expires: %s).\n", what, t.AccessorID, holder, fmtExpiry(t.ExpiresAt))
	fmt.Fprintf(w, "Warning: the secret is shown only this once; store it securely now. Anyone who has it can %s.\n", power)
}

// tokenRole prints a token's role as "role" or "role in ns".
func tokenRole(t structs.TokenInfo) string {
	if t.Role == "" || t.Namespace == "" {
		return t.Role
	}
	return t.Role + " in " + t.Namespace
}

func newTokenListCmd(g *globals) *cobra.Command {
	var subject string
	cmd := listCmd(g, "List API tokens (without their secrets)", "API tokens",
		func(c *api.Client) ([]structs.TokenInfo, error) {
			list, _, err := c.ACL().Tokens().List(subject, nil)
			return list, err
		},
		func(w io.Writer, list []structs.TokenInfo) error {
			t := newTable(w, "ACCESSOR", "NAME", "KIND", "SUBJECT", "ROLE", "NAMESPACE", "CREATED", "EXPIRES")
			for _, tok := range list {
				t.row(tok.AccessorID, orDash(tok.Name), tok.Kind, orDash(tok.Subject), orDash(tok.Role), orDash(tok.Namespace), fmtTime(tok.CreatedAt), fmtExpiry(tok.ExpiresAt))
			}
			return t.flush()
		})
	cmd.Long = `List API tokens: sessions, tokens made with ` + "`hive token create`" + ` and service
account tokens, by accessor ID. Secrets are never shown. --subject keeps the
tokens of one subject ("user:alice", "sa:web/ci").`
	cmd.Example = `  hive token ls
  hive token ls --subject user:alice -o json`
	cmd.Flags().StringVar(&subject, "subject", "", "only the tokens of this subject, such as user:alice")
	return cmd
}

func newTokenRevokeCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke ACCESSOR",
		Short: "Revoke an API token by its accessor ID",
		Long: `Revoke an API token. It stops working at once, on every manager. Find the
accessor ID with ` + "`hive token ls`" + `.`,
		Example: `  hive token revoke 0b6e2c4d-8f1a-4c3e-9d2b-7a5f6e8c9d01`,
		Args:    exactArgs("ACCESSOR"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			if err := c.ACL().Tokens().Revoke(args[0]); err != nil {
				return fmt.Errorf("revoking API token %s: %w", args[0], err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Revoked API token %s\n", args[0])
			return nil
		},
	}
}
