package main

import (
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/hivesec/hive/api"
	"github.com/hivesec/hive/structs"
)

func newJoinTokenCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "join-token",
		Short: "Manage join tokens, which let nodes join the cluster",
		Long: `Join tokens let nodes join the cluster as a worker or a manager. A token
pins the cluster CA, so a joining node can tell the real cluster from an
impostor. Its secret is shown once, when it is created; only its hash is kept.

Join tokens are not API tokens: those, which people and scripts call the API
with, are managed with ` + "`hive token`" + `.`,
	}
	cmd.AddCommand(newJoinTokenCreateCmd(g), newJoinTokenListCmd(g), newJoinTokenRevokeCmd(g), newJoinTokenRotateCmd(g))
	return cmd
}

func parseRole(s string) (structs.Role, error) {
	r := structs.Role(s)
	if !r.Valid() {
		return "", fmt.Errorf("invalid role %q: use %s or %s", s, structs.RoleWorker, structs.RoleManager)
	}
	return r, nil
}

func newJoinTokenCreateCmd(g *globals) *cobra.Command {
	var (
		role, ttl, desc string
		uses            int
	)
	cmd := &cobra.Command{
		Use:   "create --role worker|manager",
		Short: "Create a join token (its secret is printed once)",
		Long: `Create a join token. The token alone goes to standard output, so that
TOKEN=$(hive join-token create --role worker) works; details and a reminder that
it is shown only once go to standard error. -o json prints the API answer.`,
		Example: `  hive join-token create --role worker --ttl 1h --uses 1 > worker.token
  hive join 10.0.0.1 --token "$(cat worker.token)" --data-dir /var/lib/hive --advertise 10.0.0.4`,
		Args: exactArgs(),
	}
	out := outputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := checkOutput(*out); err != nil {
			return err
		}
		if role == "" {
			return fmt.Errorf("missing --role: use --role %s or --role %s", structs.RoleWorker, structs.RoleManager)
		}
		r, err := parseRole(role)
		if err != nil {
			return err
		}
		req := structs.JoinTokenCreateRequest{Role: r, MaxUses: uses, Description: desc}
		if ttl != "" {
			d, err := time.ParseDuration(ttl)
			if err != nil || d <= 0 {
				return fmt.Errorf("invalid --ttl %q: use a positive duration such as 30m, 1h or 72h", ttl)
			}
			req.TTL = d.String()
		}
		if uses < 0 {
			return fmt.Errorf("invalid --uses %d: use a positive number, or 0 for unlimited", uses)
		}
		c, err := g.client()
		if err != nil {
			return err
		}
		resp, err := c.JoinTokens().Create(req)
		if err != nil {
			return fmt.Errorf("creating %s join token: %w", r, err)
		}
		if err := printIssued(cmd.OutOrStdout(), *out, resp, resp.Token); err != nil {
			return err
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "Created %s join token %s (expires: %s, uses: %s).\n",
			resp.Info.Role, resp.Info.ID, fmtExpiry(resp.Info.ExpiresAt), fmtUses(resp.Info))
		warnShownOnce(cmd.ErrOrStderr())
		return nil
	}
	f := cmd.Flags()
	f.StringVar(&role, "role", "", "role of the nodes that join with it: worker or manager (required)")
	f.StringVar(&ttl, "ttl", "", "lifetime, such as 1h or 72h (default: the server's)")
	f.IntVar(&uses, "uses", 0, "how many nodes may join with it (0: unlimited)")
	f.StringVar(&desc, "description", "", "what the token is for")
	return cmd
}

func warnShownOnce(w io.Writer) {
	fmt.Fprintln(w, "Warning: the token is shown only this once; store it securely now. Anyone who has it can join a node to the cluster.")
}

func fmtExpiry(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return fmtTime(t)
}

func fmtUses(t structs.JoinTokenPublic) string {
	if t.MaxUses > 0 {
		return fmt.Sprintf("%d/%d", t.Uses, t.MaxUses)
	}
	return strconv.Itoa(t.Uses) + "/unlimited"
}

// tokenStatus says whether t can still be used at now.
func tokenStatus(t structs.JoinTokenPublic, now time.Time) string {
	switch {
	case t.Revoked:
		return "revoked"
	case !t.ExpiresAt.IsZero() && !now.Before(t.ExpiresAt):
		return "expired"
	case t.MaxUses > 0 && t.Uses >= t.MaxUses:
		return "used up"
	}
	return "active"
}

func newJoinTokenListCmd(g *globals) *cobra.Command {
	return listCmd(g, "List join tokens (without their secrets)", "join tokens",
		func(c *api.Client) ([]structs.JoinTokenPublic, error) {
			list, _, err := c.JoinTokens().List(nil)
			return list, err
		},
		func(w io.Writer, list []structs.JoinTokenPublic) error {
			now := time.Now()
			t := newTable(w, "ID", "ROLE", "DEFAULT", "USES", "EXPIRES", "STATUS")
			for _, tok := range list {
				t.row(tok.ID, tok.Role, tok.Default, fmtUses(tok), fmtExpiry(tok.ExpiresAt), tokenStatus(tok, now))
			}
			return t.flush()
		})
}

func newJoinTokenRevokeCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "revoke ID",
		Short:   "Revoke a join token; nodes that joined with it stay",
		Example: "  hive join-token ls\n  hive join-token revoke 6f1c2a9e",
		Args:    exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			if err := c.JoinTokens().Revoke(args[0]); err != nil {
				return fmt.Errorf("revoking join token %s: %w", args[0], err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Revoked join token %s\n", args[0])
			return nil
		},
	}
}

func newJoinTokenRotateCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rotate worker|manager",
		Short: "Replace the default join token of a role",
		Long: `Replace the default join token of a role with a new one. The new token goes
to standard output; -o json prints the API answer, whose "rotated" field is
the token that was replaced.`,
		Example: `  hive join-token rotate worker > worker.token`,
		Args:    exactArgs("ROLE"),
	}
	out := outputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := checkOutput(*out); err != nil {
			return err
		}
		r, err := parseRole(args[0])
		if err != nil {
			return err
		}
		c, err := g.client()
		if err != nil {
			return err
		}
		resp, err := c.JoinTokens().Rotate(r)
		if err != nil {
			return fmt.Errorf("rotating the %s join token: %w", r, err)
		}
		if err := printIssued(cmd.OutOrStdout(), *out, resp, resp.Token); err != nil {
			return err
		}
		ew := cmd.ErrOrStderr()
		fmt.Fprintf(ew, "New default %s join token %s.\n", r, resp.Info.ID)
		if old := resp.Old; old != nil {
			state := "no longer the default"
			if old.Revoked {
				state = "revoked"
			}
			fmt.Fprintf(ew, "Old default token %s is %s.\n", old.ID, state)
		}
		warnShownOnce(ew)
		return nil
	}
	return cmd
}
