package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hivesec/hive/api"
)

// globals holds the flags every API command shares.
type globals struct {
	address string
	token   string
	caCert  string
}

// client builds an API client from the CLI config file, overridden by the
// environment, overridden by flags.
func (g *globals) client() (*api.Client, error) {
	cfg, _, err := g.config()
	if err != nil {
		return nil, err
	}
	return api.NewClient(cfg)
}

// config resolves the client settings (file < environment < flags) and
// also returns the config file's own keys, for the commands that rewrite
// it (login, logout).
func (g *globals) config() (*api.Config, map[string]string, error) {
	cfg := api.DefaultConfig()
	file, err := readCLIConfig(configPath())
	if err != nil {
		return nil, nil, err
	}
	if os.Getenv(api.EnvAddress) == "" && file[configAddress] != "" {
		cfg.Address = file[configAddress]
	}
	if cfg.Token == "" {
		cfg.Token = file[configToken]
	}
	if cfg.CACertFile == "" {
		cfg.CACertFile = file[configCACert]
	}
	if g.address != "" {
		cfg.Address = g.address
	}
	if g.token != "" {
		cfg.Token = g.token
	}
	if g.caCert != "" {
		cfg.CACertFile = g.caCert
	}
	return cfg, file, nil
}

const rootLong = `Hive is a secure cluster manager: one binary that runs as a manager (Raft
member, API server, scheduler), as a worker (runs containers, enforces network
policy), and as this command-line client.

Managers form a Raft cluster and serve an HTTPS API on port 7400. Nodes join
with a join token that pins the cluster CA; node certificates are short-lived
and renewed automatically.

The client commands talk to a manager's API. They read these environment
variables, which the global flags override:

  HIVE_ADDR     API address (default https://127.0.0.1:7400; "host" and
                "host:port" mean https, port 7400 when omitted)   --address
  HIVE_TOKEN    API token, sent as a bearer token                 --token
  HIVE_CACERT   PEM file with the cluster CA certificate; on a
                manager it is <data-dir>/bootstrap/ca.pem         --ca-cert

Lowest in priority is the config file ~/.hive/config (HIVE_CONFIG names
another), "key=value" lines with the keys address, token and ca_cert;
` + "`hive dev`" + ` writes it, ` + "`hive login`" + ` saves its session token in it and
` + "`hive logout`" + ` takes it out again.

Read commands print an aligned table, or the API objects as JSON with -o json.`

func newRootCmd() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:           "hive",
		Short:         "Hive secure cluster manager",
		Long:          rootLong,
		SilenceUsage:  true,
		SilenceErrors: true, // run prints the error once
	}
	pf := root.PersistentFlags()
	pf.StringVar(&g.address, "address", "", "API address of a manager (overrides HIVE_ADDR)")
	pf.StringVar(&g.token, "token", "", "API token (overrides HIVE_TOKEN)")
	pf.StringVar(&g.caCert, "ca-cert", "", "cluster CA certificate file (overrides HIVE_CACERT)")

	root.AddCommand(
		newInitCmd(),
		newJoinCmd(),
		newDevCmd(),
		newNodeCmd(g),
		newJobCmd(g),
		newEvalCmd(g),
		newAllocCmd(g),
		newImageCmd(g),
		newOperatorCmd(g),
		newNamespaceCmd(g),
		newSecretCmd(g),
		newJoinTokenCmd(g),
		newEventCmd(g),
		newStatusCmd(g),
		newLoginCmd(g),
		newLogoutCmd(g),
		newWhoAmICmd(g),
		newTokenCmd(g),
		newUserCmd(g),
		newGroupCmd(g),
		newRoleCmd(g),
		newBindingCmd(g),
		newApplyCmd(g),
		newNetpolCmd(g),
		newAdminNetpolCmd(g),
		newServiceAccountCmd(g),
		newAuthCmd(g),
		newAuditCmd(),
		newSecretExecCmd(),
	)
	return root
}

// exactArgs is cobra.ExactArgs with an error that names the arguments the
// command wants.
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) == len(names) {
			for i, a := range args {
				if strings.TrimSpace(a) == "" {
					return fmt.Errorf("%s: %s must not be empty", cmd.CommandPath(), names[i])
				}
			}
			return nil
		}
		want := "no arguments"
		if len(names) > 0 {
			want = strings.Join(names, " ")
		}
		return fmt.Errorf("%s takes %s, got %d argument(s); usage: %s", cmd.CommandPath(), want, len(args), cmd.UseLine())
	}
}
