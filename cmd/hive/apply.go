package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/hivesec/hive/acl"
)

// maxApplyFile bounds what apply reads: role files are small, and reading
// a device or a huge file by mistake should fail, not hang or swap.
const maxApplyFile = 4 << 20

func newApplyCmd(g *globals) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "apply -f FILE",
		Short: "Create or replace the roles and bindings declared in an HCL file",
		Long: `Apply a file of role and binding declarations: every role is created or
replaced first, then every binding, in file order, so a binding may name a
role from the same file. -f - reads the file from standard input.

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
  }`,
		Example: `  hive apply -f rbac.hcl
  cat rbac.hcl | hive apply -f -`,
		Args: exactArgs(),
	}
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if file == "" {
			return errors.New("missing -f FILE: the HCL file of roles and bindings to apply, or - for standard input")
		}
		name, src, err := readApplyFile(cmd, file)
		if err != nil {
			return err
		}
		spec, err := acl.ParseFile(name, src)
		if err != nil {
			return fmt.Errorf("nothing was applied; %s has problems:\n%w", name, err)
		}
		total := len(spec.Roles) + len(spec.Bindings)
		if total == 0 {
			fmt.Fprintf(cmd.ErrOrStderr(), "%s declares no roles or bindings; nothing to apply.\n", name)
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
		return nil
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "HCL file to apply, or - for standard input (required)")
	return cmd
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
