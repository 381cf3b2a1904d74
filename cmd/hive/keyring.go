package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hivesec/hive/api"
	"github.com/hivesec/hive/server"
	"github.com/hivesec/hive/structs"
)

const keyringLong = `Every secret version is encrypted with a data key of its own, and the data
key is wrapped by the cluster's active root key. Root keys are themselves
wrapped by the managers' unseal key, which is never in Raft or a snapshot.

Rotating makes a new active root key. The leader then re-wraps every
version's data key under it in the background (the values are not
re-encrypted) and deletes the old root key once no version uses it. The
leader also rotates on its own every --root-key-rotation (720h by default),
given to the managers at start.`

func newKeyringStatusCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the root keys and whether the addressed manager is locked",
		Long: `Show the secrets root keys, how many secret versions each wraps, how many
still wait to be re-wrapped after a rotation, and whether the manager at
--address (HIVE_ADDR) is locked. Each manager answers for itself: with
autolock, a restarted manager stays locked until ` + "`hive operator unlock`" + `.`,
		Example: `  hive operator keyring status
  hive operator keyring status --address 10.0.0.2 -o json`,
		Args: exactArgs(),
	}
	out := outputFlag(cmd)
	var addr string // the manager that answered, for the table
	cmd.RunE = readRunE(g, out, nil,
		func(c *api.Client, _ []string) (*structs.KeyringStatus, error) {
			addr = c.Address()
			st, err := c.Operator().KeyringStatus()
			if err != nil {
				return nil, fmt.Errorf("reading the keyring status of %s: %w", addr, err)
			}
			if st.Keys == nil {
				st.Keys = []structs.RootKeyInfo{}
			}
			return st, nil
		},
		func(w io.Writer, st *structs.KeyringStatus) error { return printKeyringStatus(w, addr, st) })
	return cmd
}

func printKeyringStatus(w io.Writer, addr string, st *structs.KeyringStatus) error {
	lock := "unlocked"
	if st.Sealed {
		lock = "locked: it serves no secrets until `hive operator unlock`"
	}
	t := newTable(w)
	t.row("Manager", addr)
	t.row("Keyring", lock)
	t.row("Pending", fmt.Sprintf("%d secret version(s) to re-wrap", st.Pending))
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	if len(st.Keys) == 0 {
		fmt.Fprintln(w, "No root key yet: the leader makes the first when the first secret is written.")
		return nil
	}
	t = newTable(w, "ID", "STATE", "CREATED", "VERSIONS")
	for _, k := range st.Keys {
		t.row(k.ID, k.State, fmtTime(k.CreatedAt), k.Versions)
	}
	return t.flush()
}

func newKeyringRotateCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "rotate",
		Short: "Make a new active root key and re-wrap every secret under it",
		Long: `Make a new active root key. New secret versions are encrypted under it at
once; the leader re-wraps the data keys of the existing versions in the
background and deletes the old root key when it is done.
` + "`hive operator keyring status`" + ` shows the progress.`,
		Example: "  hive operator keyring rotate\n  hive operator keyring status",
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			st, err := c.Operator().KeyringRotate()
			if err != nil {
				return fmt.Errorf("rotating the root key: %w", err)
			}
			active := "a new root key"
			for _, k := range st.Keys {
				if k.State == structs.RootKeyActive {
					active = "root key " + k.ID
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Rotated the secrets root key: %s is active; %d secret version(s) are being re-wrapped under it in the background (see `hive operator keyring status`).\n", active, st.Pending)
			return nil
		},
	}
}

func newKeyringRotateUnsealCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "rotate-unseal",
		Short: "Re-wrap the root keys, the CA key and the gossip keys under a new unseal key",
		Long: `Make a new unseal key and re-wrap under it everything the old one sealed: the
secrets root keys, the CA private key and the gossip keyring. The leader
first gives the new key to every manager over mutual TLS (each keeps it in
<data-dir>/keystore/unseal.key.next, or only in memory when autolocked) and
commits the re-wrapped records only when all have it; each manager then
switches to it. If a manager is down the rotation is refused and nothing
changes.

For an autolocked cluster the new unlock key is printed once: keep it, the
old one no longer unlocks anything.`,
		Example: "  hive operator keyring rotate-unseal",
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			out, err := c.Operator().RotateUnseal()
			if err != nil {
				return fmt.Errorf("rotating the unseal key: %w", err)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "Unseal key rotated to %s on %d managers.\n", out.KeyID, out.Managers)
			if out.UnlockKey != "" {
				printUnlockKey(cmd.OutOrStdout(), cmd.ErrOrStderr(), out.UnlockKey)
			}
			return nil
		},
	}
}

// maxUnlockKeyFile bounds what --key-file reads: a key is under 100 bytes.
const maxUnlockKeyFile = 4 << 10

func newUnlockCmd(g *globals) *cobra.Command {
	var keyFile string
	var keyStdin bool
	cmd := &cobra.Command{
		Use:   "unlock [--key-file PATH | --key-stdin]",
		Short: "Give a locked manager of an autolocked cluster the unlock key",
		Long: `A cluster created with ` + "`hive init --autolock`" + ` keeps its unseal key on no
manager's disk. A manager that restarts comes up locked: it serves no
secrets and signs no certificates until it is given the cluster's unlock
key, the HIVEUNLOCK1-... key init printed once. Each manager is unlocked on
its own: point --address (HIVE_ADDR) at it. Unlocking takes the
operator:keyring permission.

The key is typed at the terminal without echo, read from --key-file, or read
as one line of standard input with --key-stdin; never give it as an
argument, which ps and the shell history would show. A wrong key is refused,
and the manager counts and audits the attempt.

To start a manager unlocked instead, give it --unlock-key-file at start (a
file on a tmpfs, say).`,
		Example: `  hive operator unlock --address https://10.0.0.2:7400
  hive operator unlock --address 10.0.0.3 --key-file /run/hive/unlock.key
  vault kv get -field=key secret/hive/unlock | hive operator unlock --key-stdin`,
		Args: exactArgs(),
	}
	cmd.Flags().StringVar(&keyFile, "key-file", "", "read the unlock key from this file (mode 0600, ideally on a tmpfs)")
	cmd.Flags().BoolVar(&keyStdin, "key-stdin", false, "read the unlock key as one line of standard input")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if keyFile != "" && keyStdin {
			return errors.New("--key-file and --key-stdin both give the key: use one")
		}
		// The client first, so a configuration error does not come after
		// the key was typed.
		c, err := g.client()
		if err != nil {
			return err
		}
		var key string
		if keyFile != "" {
			key, err = readUnlockKeyFile(cmd.ErrOrStderr(), keyFile)
		} else {
			sr := newSecretReader(cmd, keyStdin)
			sr.stdinFlag = "--key-stdin"
			key, err = sr.secret("Unlock key: ", "unlock key")
		}
		if err != nil {
			return err
		}
		key = strings.TrimSpace(key)
		// Checked here too, so that a token or password pasted by mistake
		// never leaves this host. The errors do not show the key.
		if _, err := server.DecodeUnlockKey(key); err != nil {
			return fmt.Errorf("not an unlock key: %w", err)
		}
		if _, err := c.Operator().Unlock(key); err != nil {
			return unlockError(c, err)
		}
		fmt.Fprintf(cmd.OutOrStdout(), "Unlocked the manager at %s: it serves secrets and signs certificates again.\n", c.Address())
		return nil
	}
	return cmd
}

func unlockError(c *api.Client, err error) error {
	var ae *api.Error
	if errors.As(err, &ae) && ae.Code == "wrong_key" {
		return fmt.Errorf("unlocking the manager at %s: the key was refused: %w", c.Address(), err)
	}
	return fmt.Errorf("unlocking the manager at %s: %w", c.Address(), err)
}

// readUnlockKeyFile reads --key-file, warning when others may read it.
func readUnlockKeyFile(stderr io.Writer, path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("--key-file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("--key-file: %w", err)
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("--key-file %s is not a regular file", path)
	}
	if st.Mode().Perm()&0o077 != 0 {
		fmt.Fprintf(stderr, "Warning: %s has mode %04o; other users may read the unlock key: chmod 600 it\n", path, st.Mode().Perm())
	}
	b, err := io.ReadAll(io.LimitReader(f, maxUnlockKeyFile+1))
	if err != nil {
		return "", fmt.Errorf("--key-file %s: %w", path, err)
	}
	if len(b) > maxUnlockKeyFile {
		return "", fmt.Errorf("--key-file %s is too large to hold an unlock key", path)
	}
	key := strings.TrimSpace(string(b))
	if key == "" {
		return "", fmt.Errorf("--key-file %s is empty", path)
	}
	return key, nil
}
