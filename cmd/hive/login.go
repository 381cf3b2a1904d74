package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hivesec/hive/api"
	"github.com/hivesec/hive/structs"
)

func newLoginCmd(g *globals) *cobra.Command {
	var (
		user, ttl string
		fromStdin bool
	)
	cmd := &cobra.Command{
		Use:   "login [--user NAME] [--password-stdin] [--ttl 12h]",
		Short: "Log in with a user name and password and save the session",
		Long: `Log in to the cluster as a user and save the session token in the CLI config
file (~/.hive/config, or HIVE_CONFIG), so that later commands use it. The file
is written with mode 0600 (its directory 0700) and keeps its other settings;
when it has no address or ca_cert yet, the ones this login used are saved too.

The password is typed at the terminal without echo. Scripts pass it on
standard input with --password-stdin (one line), never as an argument, where
it would show in ps output and the shell history. Neither the password nor
the token is printed.

A session lasts --ttl (12h by default, at most 168h); ` + "`hive logout`" + ` ends it
early. --token and HIVE_TOKEN take precedence over the saved session.`,
		Example: `  hive login --user alice
  printf '%s\n' "$ALICE_PASSWORD" | hive login --user alice --password-stdin --ttl 1h`,
		Args: exactArgs(),
	}
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		d, err := time.ParseDuration(ttl)
		if err != nil || d <= 0 || d > structs.MaxSessionTTL {
			return fmt.Errorf("invalid --ttl %q: use a positive duration of at most %s, such as 8h", ttl, fmtDuration(structs.MaxSessionTTL))
		}
		path := configPath()
		if path == "" {
			return errors.New("no home directory to save the session in: set HIVE_CONFIG to the CLI config file to use")
		}
		cfg, file, err := g.config()
		if err != nil {
			return err
		}
		sr := newSecretReader(cmd, fromStdin)
		if user == "" {
			if fromStdin {
				return errors.New("--password-stdin needs --user NAME: standard input carries only the password")
			}
			if user, err = sr.user(); err != nil {
				return err
			}
		}
		if err := structs.ValidateACLName("user", user); err != nil {
			return err
		}
		c, err := api.NewClient(cfg)
		if err != nil {
			return err
		}
		password, err := sr.secret("Password: ", "password")
		if err != nil {
			return err
		}
		tok, err := c.ACL().Login(structs.LoginRequest{User: user, Password: password, TTL: d.String()})
		if err != nil {
			var ae *api.Error
			if errors.As(err, &ae) {
				// Not wrapped: the generic hints about the token in use
				// ("log in", "lacks the permission") would only confuse
				// when a wrong password or a lockout is the answer.
				return fmt.Errorf("logging in as %s: %s (HTTP %d)", user, ae.Message, ae.StatusCode)
			}
			return fmt.Errorf("logging in as %s: %w", user, err)
		}
		if err := saveSession(path, file, cfg, c, tok.Secret); err != nil {
			// Do not leave a live session nobody holds.
			if rc, cerr := clientWithToken(cfg, tok.Secret); cerr == nil {
				_ = rc.ACL().Logout()
			}
			return fmt.Errorf("%w; the new session was ended again, log in once this is fixed", err)
		}
		msg := "Logged in as " + user
		if !tok.Token.ExpiresAt.IsZero() {
			msg += "; session expires at " + fmtTime(tok.Token.ExpiresAt)
		}
		fmt.Fprintln(cmd.OutOrStdout(), msg+".")
		ew := cmd.ErrOrStderr()
		fmt.Fprintf(ew, "Session token saved in %s.\n", path)
		if g.token != "" || os.Getenv(api.EnvToken) != "" {
			fmt.Fprintln(ew, "Warning: --token or HIVE_TOKEN is set and takes precedence over the saved session; drop it to act as "+user+".")
		}
		return nil
	}
	f := cmd.Flags()
	f.StringVar(&user, "user", "", "user to log in as (asked for at the terminal when not given)")
	f.BoolVar(&fromStdin, "password-stdin", false, "read the password from the first line of standard input")
	f.StringVar(&ttl, "ttl", fmtDuration(structs.DefaultSessionTTL), "how long the session lasts, at most "+fmtDuration(structs.MaxSessionTTL))
	return cmd
}

// saveSession writes secret into the CLI config at path, keeping the
// file's other keys, and records the address and CA the login used when
// the file has none, so the token is sent where it belongs.
func saveSession(path string, file map[string]string, cfg *api.Config, c *api.Client, secret string) error {
	kv := make(map[string]string, len(file)+1)
	for k, v := range file {
		kv[k] = v
	}
	kv[configToken] = secret
	if kv[configAddress] == "" {
		kv[configAddress] = c.Address()
	}
	if kv[configCACert] == "" && cfg.CACertFile != "" {
		ca, err := filepath.Abs(cfg.CACertFile)
		if err != nil {
			return fmt.Errorf("saving the session: %w", err)
		}
		kv[configCACert] = ca
	}
	if err := writeCLIConfig(path, kv); err != nil {
		return fmt.Errorf("saving the session in %s: %w", path, err)
	}
	return nil
}

func clientWithToken(cfg *api.Config, token string) (*api.Client, error) {
	c := *cfg
	c.Token = token
	return api.NewClient(&c)
}

func newLogoutCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "logout",
		Short: "End the session: revoke its token and remove it from the CLI config",
		Long: `End the current login session: the server revokes the session token the CLI
calls with, and when it is the one ` + "`hive login`" + ` saved in the CLI config file,
it is removed from the file (the file's other settings stay). A session that
had already expired or been revoked is simply removed.

Only login sessions are ended this way. If the token in use is an API,
service account or bootstrap token (from --token, HIVE_TOKEN, or the config
` + "`hive dev`" + ` writes), logout refuses rather than revoke a credential that
something else may depend on; revoke it on purpose with ` + "`hive token revoke`" + `.`,
		Example: `  hive logout`,
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, file, err := g.config()
			if err != nil {
				return err
			}
			path := configPath()
			if cfg.Token == "" {
				return fmt.Errorf("not logged in: no token in --token, HIVE_TOKEN or the CLI config %s", path)
			}
			fromFile := file[configToken] == cfg.Token
			c, err := api.NewClient(cfg)
			if err != nil {
				return err
			}
			ended := func(err error) bool {
				var ae *api.Error
				if errors.As(err, &ae) && ae.StatusCode == http.StatusUnauthorized {
					fmt.Fprintln(cmd.ErrOrStderr(), "The session had already ended: "+ae.Message+".")
					return true
				}
				return false
			}
			who, err := c.ACL().WhoAmI()
			switch {
			case err != nil && !ended(err):
				return fmt.Errorf("logging out: asking the API which token is in use: %w", err)
			case err == nil && (who.Token == nil || who.Token.Kind != structs.TokenKindSession):
				kind, acc := "node", "ACCESSOR"
				if who.Token != nil {
					kind, acc = orDefault(who.Token.Kind, "unknown"), who.Token.AccessorID
				}
				return fmt.Errorf("the token in use (%s, kind %s) is not a login session, so logout leaves it alone; "+
					"to revoke it on purpose run `hive token revoke %s`", who.Subject, kind, acc)
			case err == nil:
				if err := c.ACL().Logout(); err != nil && !ended(err) {
					return fmt.Errorf("logging out: %w", err)
				}
			}
			w := cmd.OutOrStdout()
			if !fromFile {
				fmt.Fprintln(w, "Logged out. The session token came from --token or HIVE_TOKEN; the CLI config was left as it is.")
				return nil
			}
			kv := make(map[string]string, len(file))
			for k, v := range file {
				if k != configToken {
					kv[k] = v
				}
			}
			if err := writeCLIConfig(path, kv); err != nil {
				return fmt.Errorf("the session was ended, but removing it from %s failed: %w", path, err)
			}
			fmt.Fprintf(w, "Logged out; removed the session token from %s.\n", path)
			return nil
		},
	}
}

func newWhoAmICmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "whoami",
		Short: "Show who the CLI acts as: subject, groups and token",
		Long: `Show the identity the API sees for the credentials in use: the subject
("user:alice", "sa:web/ci"), the groups it acts as, and the token it called
with. ` + "`hive auth can-i --list`" + ` shows what that identity may do.`,
		Example: `  hive whoami
  hive whoami -o json`,
		Args: exactArgs(),
	}
	out := outputFlag(cmd)
	cmd.RunE = readRunE(g, out, nil,
		func(c *api.Client, _ []string) (*structs.WhoAmI, error) {
			who, err := c.ACL().WhoAmI()
			if err != nil {
				return nil, fmt.Errorf("asking the API who you are: %w", err)
			}
			return who, nil
		},
		printWhoAmI)
	return cmd
}

func printWhoAmI(w io.Writer, who *structs.WhoAmI) error {
	var groups []string
	for _, s := range who.Subjects {
		if s != who.Subject {
			groups = append(groups, s)
		}
	}
	t := newTable(w)
	t.row("Subject", orDash(who.Subject))
	t.row("Groups", orDash(strings.Join(groups, ", ")))
	if tok := who.Token; tok != nil {
		t.row("Token", tok.AccessorID)
		t.row("Token Kind", orDash(tok.Kind))
		if tok.Name != "" {
			t.row("Token Name", tok.Name)
		}
		if tok.Role != "" {
			t.row("Token Role", tokenRole(*tok))
		}
		t.row("Expires", fmtExpiry(tok.ExpiresAt))
	}
	if who.Node != "" {
		t.row("Node", who.Node)
	}
	return t.flush()
}

// fmtDuration prints whole hours as "168h" rather than "168h0m0s".
func fmtDuration(d time.Duration) string {
	if d%time.Hour == 0 {
		return fmt.Sprintf("%dh", d/time.Hour)
	}
	return d.String()
}
