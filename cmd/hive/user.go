package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hivesec/hive/api"
	"github.com/hivesec/hive/structs"
)

func newUserCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "user",
		Short: "Create, list and delete users and change their passwords",
		Long: `Users are people who log in with a password (` + "`hive login`" + `). A user can do
nothing until a binding gives it a role, directly ("user:alice") or through
a group; ` + "`hive user create --role`" + ` makes such a binding at once.

Passwords are typed without echo, or given on standard input with
--password-stdin; never as arguments.`,
	}
	cmd.AddCommand(newUserCreateCmd(g), newUserListCmd(g), newUserGetCmd(g), newUserDeleteCmd(g), newUserPasswdCmd(g))
	return cmd
}

// userBinding is the binding `user create --role` makes.
func userBinding(user, role, ns string) *structs.ACLBinding {
	name := "user-" + user + "-" + role
	if ns != "" {
		name += "-" + ns
	}
	return &structs.ACLBinding{Name: name, Role: role, Subjects: []string{structs.UserSubject(user)}, Namespace: ns}
}

func newUserCreateCmd(g *globals) *cobra.Command {
	var (
		role      string
		fromStdin bool
	)
	cmd := &cobra.Command{
		Use:   "create NAME [--password-stdin] [--role ROLE [-n NS]]",
		Short: "Create a user with a password, optionally with a role",
		Long: `Create a user. The password is typed twice without echo, or read from the
first line of standard input with --password-stdin.

With --role the user is also given that role, globally or with -n in one
namespace, through a binding named user-NAME-ROLE (user-NAME-ROLE-NS with -n)
that the server makes together with the user: both exist, or neither.

The bootstrap admin token from ` + "`hive init`" + ` creates one user and is then used
up, so create the first administrator with --role admin.`,
		Example: `  HIVE_TOKEN=$(cat /var/lib/hive/bootstrap/admin.token) hive user create root --role admin
  hive user create alice --role developer -n web
  printf '%s\n' "$PW" | hive user create ci-bot --password-stdin`,
		Args: exactArgs("NAME"),
	}
	ns := namespaceScopeFlag(cmd, "give --role in this namespace only (default: global)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		name := args[0]
		if err := structs.ValidateACLName("user", name); err != nil {
			return err
		}
		var b *structs.ACLBinding
		switch {
		case role != "":
			if err := structs.ValidateACLName("role", role); err != nil {
				return fmt.Errorf("--role: %w", err)
			}
			b = userBinding(name, role, *ns)
			if err := b.Validate(); err != nil {
				var fe *structs.FieldError
				if errors.As(err, &fe) {
					err = fe.Err
				}
				return fmt.Errorf("--role %s: %w (the user's binding is named user-NAME-ROLE[-NS])", role, err)
			}
		case *ns != "":
			return fmt.Errorf("-n %s needs --role: it says where the role applies", *ns)
		}
		c, err := g.client()
		if err != nil {
			return err
		}
		password, err := newSecretReader(cmd, fromStdin).newSecret("Password: ", "password")
		if err != nil {
			return err
		}
		// The role travels with the user, so that both are made in one
		// write: the bootstrap token is good for one user creation only,
		// and the first administrator must get its role in that call.
		req := structs.UserRequest{Password: password, Role: role, Namespace: *ns}
		if _, err := c.ACL().Users().Create(name, req); err != nil {
			return fmt.Errorf("creating user %s: %w", name, err)
		}
		w := cmd.OutOrStdout()
		fmt.Fprintf(w, "Created user %s\n", name)
		if b != nil {
			fmt.Fprintf(w, "Gave role %s to %s %s (binding %s)\n", role, b.Subjects[0], whereBinding(b.Namespace), b.Name)
		}
		return nil
	}
	f := cmd.Flags()
	f.BoolVar(&fromStdin, "password-stdin", false, "read the password from the first line of standard input")
	f.StringVar(&role, "role", "", "give the user this role through a binding")
	return cmd
}

// whereBinding says where a binding applies.
func whereBinding(ns string) string {
	if ns == "" {
		return "globally"
	}
	return "in namespace " + ns
}

func userStatus(u structs.UserInfo) string {
	if u.Disabled {
		return "disabled"
	}
	return "active"
}

func newUserListCmd(g *globals) *cobra.Command {
	cmd := listCmd(g, "List users", "users",
		func(c *api.Client) ([]structs.UserInfo, error) {
			list, _, err := c.ACL().Users().List(nil)
			return list, err
		},
		func(w io.Writer, list []structs.UserInfo) error {
			t := newTable(w, "NAME", "GROUPS", "STATUS", "CREATED")
			for _, u := range list {
				t.row(u.Name, orDash(strings.Join(u.Groups, ",")), userStatus(u), fmtTime(u.CreatedAt))
			}
			return t.flush()
		})
	cmd.Example = "  hive user ls\n  hive user ls -o json"
	return cmd
}

func newUserGetCmd(g *globals) *cobra.Command {
	cmd := getCmd(g, "user", "Show one user", aclName("user"),
		func(c *api.Client, name string) (*structs.UserInfo, error) {
			u, _, err := c.ACL().Users().Info(name, nil)
			return u, err
		},
		func(w io.Writer, u *structs.UserInfo) error {
			t := newTable(w)
			t.row("Name", u.Name)
			t.row("Groups", orDash(strings.Join(u.Groups, ", ")))
			t.row("Status", userStatus(*u))
			t.row("Created", fmtTime(u.CreatedAt))
			return t.flush()
		})
	cmd.Example = "  hive user get alice -o json"
	return cmd
}

func newUserDeleteCmd(g *globals) *cobra.Command {
	cmd := deleteCmd(g, "user", "NAME", "Delete a user; its sessions and tokens stop working", aclName("user"),
		func(c *api.Client, name string) error { return c.ACL().Users().Delete(name) })
	cmd.Long = `Delete a user. Its sessions and API tokens stop working. Bindings and groups
that name it are left as they are; remove it from them with
` + "`hive binding`" + ` and ` + "`hive group remove-member`" + `.`
	cmd.Example = "  hive user delete alice"
	return cmd
}

func newUserPasswdCmd(g *globals) *cobra.Command {
	var fromStdin bool
	cmd := &cobra.Command{
		Use:   "passwd NAME [--password-stdin]",
		Short: "Change a user's password",
		Long: `Change a user's password. Changing your own password asks for the current
one first; an administrator changing someone else's does not. The user's
other sessions end.

With --password-stdin the passwords are lines of standard input: for your
own password the current one, then the new one; for someone else's, only
the new one. At a terminal the new password is typed twice without echo.`,
		Example: `  hive user passwd alice
  printf '%s\n%s\n' "$OLD" "$NEW" | hive user passwd alice --password-stdin`,
		Args: exactArgs("NAME"),
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		name := args[0]
		if err := structs.ValidateACLName("user", name); err != nil {
			return err
		}
		c, err := g.client()
		if err != nil {
			return err
		}
		// The server wants the old password only from the user itself,
		// which it judges by the token's subject: a role-limited token of
		// the user's ("token:ACCESSOR" to whoami) counts as the user too.
		who, err := c.ACL().WhoAmI()
		if err != nil {
			return fmt.Errorf("asking the API who you are (to know whether the current password is needed): %w", err)
		}
		self := structs.UserSubject(name)
		sr := newSecretReader(cmd, fromStdin)
		var req structs.PasswordRequest
		if who.Subject == self || who.Token != nil && who.Token.Subject == self {
			if req.OldPassword, err = sr.secret("Current password: ", "current password"); err != nil {
				return err
			}
		}
		if req.Password, err = sr.newSecret("New password: ", "new password"); err != nil {
			return err
		}
		if err := c.ACL().Users().SetPassword(name, req); err != nil {
			return fmt.Errorf("changing the password of user %s: %w", name, err)
		}
		fmt.Fprintf(cmd.OutOrStdout(), "Changed the password of user %s\n", name)
		return nil
	}
	cmd.Flags().BoolVar(&fromStdin, "password-stdin", false, "read the password(s) from standard input, one a line")
	return cmd
}
