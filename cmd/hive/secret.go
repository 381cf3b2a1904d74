package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/hivesec/hive/api"
	"github.com/hivesec/hive/structs"
)

const secretLong = `Secrets are named sets of KEY=VALUE pairs in a namespace, kept in versions.
The manager that takes a write encrypts each version with a data key of its
own, wrapped by the cluster's root key: Raft, snapshots and the managers'
disks hold only ciphertext (` + "`hive operator keyring`" + ` manages the root key).

A task gets one key of a secret as a file under /run/secrets, as an
environment variable, or both, through a secret block in the job file; the
secret is looked up in the job's namespace:

  task "server" {
    secret "db" {
      name = "db-password"   # the secret
      key  = "password"      # the key inside it
      file = "db.txt"        # /run/secrets/db.txt, mode 0400
      env  = "DB_PASSWORD"
    }
  }

When the secret gets a new version (update, rollback, or a regenerated
--generate key), running tasks get it too: they are restarted unless the
block sets change_mode = "signal" (with change_signal) or "noop".

On the command line a secret is NAMESPACE/NAME, or NAME with -n NAMESPACE
("default" when neither is given). No command prints a secret's values
except ` + "`hive secret get --reveal`" + `, which needs the secret/value:read
permission and is audited.`

func newSecretCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "secret",
		Short: "Create, version, reveal and delete secrets for tasks",
		Long:  secretLong,
		Example: `  hive secret create payments/db-password --generate password=32 --from-literal user=api
  hive secret ls -n payments
  hive secret get payments/db-password
  hive secret get payments/db-password --reveal --key password`,
	}
	cmd.AddCommand(newSecretCreateCmd(g), newSecretListCmd(g), newSecretGetCmd(g), newSecretUpdateCmd(g),
		newSecretVersionsCmd(g), newSecretRollbackCmd(g), newSecretDeleteCmd(g))
	return cmd
}

// secretNamespaceFlag adds -n: the namespace of a secret named without one.
func secretNamespaceFlag(cmd *cobra.Command) *string {
	s := new(string)
	cmd.Flags().StringVarP(s, "namespace", "n", structs.DefaultNamespace, "namespace of a secret given as NAME (NAMESPACE/NAME names its own)")
	return s
}

// parseSecretRef splits NAMESPACE/NAME, or takes NAME in the namespace of
// -n, and checks both parts. -n and a different NAMESPACE/ are refused
// rather than one of them silently winning.
func parseSecretRef(cmd *cobra.Command, arg, nsFlag string) (ns, name string, err error) {
	ns, name = nsFlag, arg
	if before, after, ok := strings.Cut(arg, "/"); ok {
		ns, name = before, after
		if f := cmd.Flags().Lookup("namespace"); f != nil && f.Changed && nsFlag != ns {
			return "", "", fmt.Errorf("secret %q is in namespace %s but -n says %s: give the namespace once", arg, ns, nsFlag)
		}
	}
	const use = "use NAMESPACE/NAME, such as payments/db-password, or NAME with -n NAMESPACE"
	if err := structs.ValidateName("namespace", ns); err != nil {
		return "", "", fmt.Errorf("invalid secret %q: %w; %s", arg, err, use)
	}
	if err := structs.ValidateName("secret", name); err != nil {
		return "", "", fmt.Errorf("invalid secret %q: %w; %s", arg, err, use)
	}
	return ns, name, nil
}

// secretValueFlags are the flags of create and update: the values of the
// new version and the secret's settings.
type secretValueFlags struct {
	literals    []string
	files       []string
	generate    []string
	description string
	labels      []string
	expires     time.Duration
	rotation    time.Duration
	maxVersions int
}

func (f *secretValueFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringArrayVar(&f.literals, "from-literal", nil, "KEY=VALUE: a value given on the command line, where ps and the shell history see it (repeatable)")
	fl.StringArrayVar(&f.files, "from-file", nil, "KEY=PATH: a value read from a file of at most 1 MiB, or from standard input when PATH is - (repeatable)")
	fl.StringArrayVar(&f.generate, "generate", nil, "KEY=LEN: a random value of LEN letters and digits that Hive generates, and regenerates every --rotation-period (repeatable)")
	fl.StringVar(&f.description, "description", "", "what the secret is for")
	fl.StringArrayVar(&f.labels, "label", nil, "label KEY=VALUE (repeatable)")
	fl.DurationVar(&f.expires, "expires", 0, "stop delivering the secret to tasks this long from now, e.g. 720h (default: never)")
	fl.DurationVar(&f.rotation, "rotation-period", 0, "regenerate the --generate keys this often, or raise a rotation-due event for given values, e.g. 24h")
	fl.IntVar(&f.maxVersions, "max-versions", 0, fmt.Sprintf("versions to keep, 1-100 (default %d)", structs.DefaultSecretVersions))
}

// valueFlagsHelp is shared by the help of create and update.
const valueFlagsHelp = `Values come from --from-literal KEY=VALUE, --from-file KEY=PATH (the file's
bytes, unchanged; PATH - reads standard input) and --generate KEY=LEN (LEN
random letters and digits, generated by the manager and never printed); all
three repeat and mix. Prefer --from-file or --generate for anything
sensitive: a --from-literal value shows in ps and the shell history. A
version holds at most 1 MiB of keys and values, and values must be UTF-8
text (base64-encode binary files first). Keys are 1-253 letters, digits, '.',
'_' and '-'.`

// request builds the API request. stdin serves --from-file KEY=-. It never
// puts a value into an error message.
func (f *secretValueFlags) request(stdin io.Reader) (structs.SecretRequest, error) {
	req := structs.SecretRequest{Description: f.description, MaxVersions: f.maxVersions}
	data := map[string]string{}
	gen := map[string]int{}
	from := map[string]string{} // key → the flag that gave it
	size := 0
	add := func(flag, k string) error {
		if err := structs.ValidateSecretKey(k); err != nil {
			return fmt.Errorf("%s: %w", flag, err)
		}
		if prev, dup := from[k]; dup {
			return fmt.Errorf("key %s is given twice (%s and %s): a version holds each key once", k, prev, flag)
		}
		from[k] = flag
		return nil
	}
	for i, kv := range f.literals {
		// The argument may be the value itself, typed without "KEY=":
		// do not show it.
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return req, fmt.Errorf("invalid --from-literal (number %d): use KEY=VALUE; the argument has no KEY= in front", i+1)
		}
		if err := add("--from-literal", k); err != nil {
			return req, err
		}
		if !utf8.ValidString(v) {
			return req, fmt.Errorf("--from-literal %s=...: the value is not UTF-8 text", k)
		}
		data[k] = v
		size += len(k) + len(v)
	}
	usedStdin := false
	for _, kv := range f.files {
		k, path, ok := strings.Cut(kv, "=")
		if !ok || k == "" || path == "" {
			return req, fmt.Errorf("invalid --from-file %q: use KEY=PATH, such as tls.key=./api.key", kv)
		}
		if err := add("--from-file", k); err != nil {
			return req, err
		}
		if path == "-" {
			if usedStdin {
				return req, errors.New("--from-file KEY=- is given twice: standard input holds one value")
			}
			usedStdin = true
		}
		v, err := readSecretFile(k, path, stdin)
		if err != nil {
			return req, err
		}
		data[k] = v
		size += len(k) + len(v)
	}
	for _, kv := range f.generate {
		k, ls, ok := strings.Cut(kv, "=")
		n, err := strconv.Atoi(ls)
		if !ok || k == "" || err != nil || n <= 0 {
			return req, fmt.Errorf("invalid --generate %q: use KEY=LEN, such as password=32", kv)
		}
		if err := add("--generate", k); err != nil {
			return req, err
		}
		gen[k] = n
		size += len(k) + n
	}
	if len(from) == 0 {
		return req, errors.New("no values: give at least one --from-literal KEY=VALUE, --from-file KEY=PATH or --generate KEY=LEN")
	}
	if size > structs.MaxSecretSize {
		return req, fmt.Errorf("the values take %d bytes; a secret version holds at most 1 MiB (%d bytes, keys and values together)", size, structs.MaxSecretSize)
	}
	if len(data) > 0 {
		req.Data = data
	}
	if len(gen) > 0 {
		req.Generate = gen
	}
	labels, err := parseLabels(f.labels)
	if err != nil {
		return req, err
	}
	req.Labels = labels
	if f.expires < 0 || f.rotation < 0 {
		return req, fmt.Errorf("--expires (%s) and --rotation-period (%s) cannot be negative", f.expires, f.rotation)
	}
	if f.expires > 0 {
		req.Expires = f.expires.String()
	}
	if f.rotation > 0 {
		req.RotationPeriod = f.rotation.String()
	}
	if f.maxVersions < 0 {
		return req, fmt.Errorf("invalid --max-versions %d: keep 1-100 versions (default %d)", f.maxVersions, structs.DefaultSecretVersions)
	}
	return req, nil
}

// readSecretFile reads the value of --from-file key=path, refusing one
// over the size limit before sending anything.
func readSecretFile(key, path string, stdin io.Reader) (string, error) {
	tooLarge := func(size string) error {
		src := "the file"
		if path == "-" {
			src = "standard input"
		}
		return fmt.Errorf("--from-file %s=%s: %s holds %s; a secret version holds at most 1 MiB (%d bytes, keys and values together)", key, path, src, size, structs.MaxSecretSize)
	}
	r := stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return "", fmt.Errorf("--from-file %s=%s: %w", key, path, err)
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return "", fmt.Errorf("--from-file %s=%s: %w", key, path, err)
		}
		if st.IsDir() {
			return "", fmt.Errorf("--from-file %s=%s: is a directory; give a file", key, path)
		}
		if st.Mode().IsRegular() && st.Size() > structs.MaxSecretSize {
			return "", tooLarge(fmt.Sprintf("%d bytes", st.Size()))
		}
		r = f
	}
	// Pipes and devices have no size: read one byte past the limit.
	b, err := io.ReadAll(io.LimitReader(r, structs.MaxSecretSize+1))
	if err != nil {
		return "", fmt.Errorf("--from-file %s=%s: %w", key, path, err)
	}
	if len(b) > structs.MaxSecretSize {
		return "", tooLarge("more than 1 MiB")
	}
	if !utf8.Valid(b) {
		return "", fmt.Errorf("--from-file %s=%s: the file is not UTF-8 text; secrets hold text, so base64-encode binary files first (base64 -w0 %s > %s.b64)", key, path, path, path)
	}
	return string(b), nil
}

func newSecretCreateCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "create NAMESPACE/NAME (--from-literal K=V | --from-file K=PATH | --generate K=LEN)...",
		Short: "Create a secret with its first version",
		Long: `Create a secret and its first version. Creating a secret that exists fails:
add a version with ` + "`hive secret update`" + `.

` + valueFlagsHelp + `

--expires ends delivery to tasks after that long. --rotation-period makes
the leader regenerate the --generate keys that often (a new version, which
tasks receive), or, for given values, raise a secret-rotation-due event.
Nothing is printed of the values; reveal them with ` + "`hive secret get --reveal`" + `.`,
		Example: `  hive secret create payments/db-password --generate password=32 --rotation-period 720h
  hive secret create api-tls -n payments --from-file tls.crt=./api.crt --from-file tls.key=./api.key
  printf '%s' "$TOKEN" | hive secret create web/upstream --from-file token=- --expires 2160h

  # and in the job file (namespace payments):
  secret "db" {
    name = "db-password"
    key  = "password"
    file = "db.txt"
    env  = "DB_PASSWORD"
  }`,
		Args: exactArgs("NAMESPACE/NAME"),
	}
	return secretWriteCmd(g, cmd, "creating", "Created", false,
		func(c *api.Client, ns, name string, req structs.SecretRequest) (*structs.SecretInfo, error) {
			return c.Secrets().Create(ns, name, req)
		})
}

// secretWriteCmd completes create or update, given their help texts in
// cmd: both take NAMESPACE/NAME and the value flags, send one new version
// with write, and print it ("Created secret ...": done; errors say doing),
// or with -o json the API answer. warnDropped warns of keys the version
// before held and this one does not.
func secretWriteCmd(g *globals, cmd *cobra.Command, doing, done string, warnDropped bool, write func(c *api.Client, ns, name string, req structs.SecretRequest) (*structs.SecretInfo, error)) *cobra.Command {
	var f secretValueFlags
	ns := secretNamespaceFlag(cmd)
	out := outputFlag(cmd)
	f.register(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := checkOutput(*out); err != nil {
			return err
		}
		ns, name, err := parseSecretRef(cmd, args[0], *ns)
		if err != nil {
			return err
		}
		req, err := f.request(cmd.InOrStdin())
		if err != nil {
			return err
		}
		c, err := g.client()
		if err != nil {
			return err
		}
		info, err := write(c, ns, name, req)
		if err != nil {
			return fmt.Errorf("%s secret %s/%s: %w", doing, ns, name, err)
		}
		if *out == "json" {
			err = printJSON(cmd.OutOrStdout(), info)
		} else {
			fmt.Fprintf(cmd.OutOrStdout(), "%s secret %s/%s: version %d with keys %s\n", done, ns, name, info.Version, fmtKeys(info.Keys))
			printGenerated(cmd.OutOrStdout(), ns, name, req)
		}
		if warnDropped {
			warnDroppedKeys(cmd.ErrOrStderr(), info)
		}
		return err
	}
	return cmd
}

func fmtKeys(keys []string) string {
	if len(keys) == 0 {
		return "-"
	}
	return strings.Join(keys, ",")
}

// printGenerated says where generated values are, as they are not shown.
func printGenerated(w io.Writer, ns, name string, req structs.SecretRequest) {
	if len(req.Generate) == 0 {
		return
	}
	keys := make([]string, 0, len(req.Generate))
	for k := range req.Generate {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Fprintf(w, "Generated %s; reveal with `hive secret get %s/%s --reveal`\n", strings.Join(keys, ","), ns, name)
}

func newSecretListCmd(g *globals) *cobra.Command {
	var ns string
	cmd := listCmd(g, "List secrets (names, keys and versions; never values)", "secrets",
		func(c *api.Client) ([]structs.SecretInfo, error) {
			list, _, err := c.Secrets().List(ns, nil)
			var ae *api.Error
			if ns == "" && errors.As(err, &ae) && ae.StatusCode == http.StatusForbidden {
				return nil, fmt.Errorf("%w; listing every namespace takes secret:list granted globally: pass -n NAMESPACE to list one", err)
			}
			if err != nil {
				return nil, err
			}
			if ns != "" {
				// Only that namespace, whatever else the server sends.
				list = slices.DeleteFunc(list, func(s structs.SecretInfo) bool { return s.Namespace != ns })
			}
			sort.Slice(list, func(i, j int) bool {
				if list[i].Namespace != list[j].Namespace {
					return list[i].Namespace < list[j].Namespace
				}
				return list[i].Name < list[j].Name
			})
			return list, nil
		},
		func(w io.Writer, list []structs.SecretInfo) error {
			t := newTable(w, "NAMESPACE", "NAME", "VERSION", "KEYS", "EXPIRES", "UPDATED")
			for _, s := range list {
				t.row(s.Namespace, s.Name, s.Version, fmtKeys(s.Keys), fmtExpiry(s.ExpiresAt), fmtTime(s.UpdatedAt))
			}
			return t.flush()
		})
	cmd.Example = "  hive secret ls\n  hive secret ls -n payments -o json"
	cmd.Flags().StringVarP(&ns, "namespace", "n", "", "only secrets in this namespace (default: all, which takes a global grant)")
	prev := cmd.RunE
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if ns != "" {
			if err := structs.ValidateName("namespace", ns); err != nil {
				return err
			}
		}
		return prev(cmd, args)
	}
	return cmd
}

func newSecretGetCmd(g *globals) *cobra.Command {
	var reveal bool
	var version uint64
	var key string
	cmd := &cobra.Command{
		Use:   "get NAMESPACE/NAME [--reveal [--version N] [--key KEY]]",
		Short: "Show a secret's metadata, or with --reveal its values",
		Long: `Show a secret's metadata: keys, versions, expiry and rotation. Values are
not shown.

--reveal prints the values of the current version (--version N: of an older
kept one) as KEY=VALUE lines, or with -o json as the API sends them; --key
KEY prints that one value alone, exactly as stored (no newline is added), for
scripts and multi-line values such as certificates. Revealing needs the
secret/value:read permission, and every reveal is audited.`,
		Example: `  hive secret get payments/db-password
  hive secret get payments/db-password --reveal
  hive secret get payments/api-tls --reveal --key tls.crt > api.crt
  hive secret get db-password -n payments --reveal --version 2 -o json`,
		Args: exactArgs("NAMESPACE/NAME"),
	}
	ns := secretNamespaceFlag(cmd)
	out := outputFlag(cmd)
	fl := cmd.Flags()
	fl.BoolVar(&reveal, "reveal", false, "print the values (needs secret/value:read; audited)")
	fl.Uint64Var(&version, "version", 0, "with --reveal: the version to reveal (default: the current one)")
	fl.StringVar(&key, "key", "", "with --reveal: print only this key's value, exactly as stored")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := checkOutput(*out); err != nil {
			return err
		}
		ns, name, err := parseSecretRef(cmd, args[0], *ns)
		if err != nil {
			return err
		}
		switch {
		case !reveal && cmd.Flags().Changed("version"):
			return fmt.Errorf("--version needs --reveal: the metadata is the secret's; list its versions with `hive secret versions %s/%s`", ns, name)
		case !reveal && key != "":
			return errors.New("--key needs --reveal")
		case key != "" && *out == "json":
			return errors.New("--key prints one raw value; drop -o json, or drop --key to get every value as JSON")
		case cmd.Flags().Changed("version") && version == 0:
			return errors.New("invalid --version 0: versions start at 1")
		}
		c, err := g.client()
		if err != nil {
			return err
		}
		w := cmd.OutOrStdout()
		if reveal {
			return revealSecret(w, c, ns, name, version, key, *out)
		}
		info, _, err := c.Secrets().Info(ns, name, nil)
		if err != nil {
			return fmt.Errorf("reading secret %s/%s: %w", ns, name, err)
		}
		if *out == "json" {
			return printJSON(w, info)
		}
		return printSecretInfo(w, info)
	}
	return cmd
}

func revealSecret(w io.Writer, c *api.Client, ns, name string, version uint64, key, format string) error {
	v, err := c.Secrets().Value(ns, name, version)
	if err != nil {
		var ae *api.Error
		if errors.As(err, &ae) && ae.StatusCode == http.StatusForbidden {
			return fmt.Errorf("revealing secret %s/%s: %w (revealing values takes secret/value:read, which reading metadata does not)", ns, name, err)
		}
		return fmt.Errorf("revealing secret %s/%s: %w", ns, name, err)
	}
	if format == "json" {
		return printJSON(w, v)
	}
	keys := make([]string, 0, len(v.Data))
	for k := range v.Data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if key != "" {
		val, ok := v.Data[key]
		if !ok {
			return fmt.Errorf("secret %s/%s version %d has no key %q; its keys are %s", ns, name, v.Version, key, fmtKeys(keys))
		}
		_, err := io.WriteString(w, val)
		return err
	}
	for _, k := range keys {
		if _, err := fmt.Fprintf(w, "%s=%s\n", k, v.Data[k]); err != nil {
			return err
		}
	}
	return nil
}

func printSecretInfo(w io.Writer, s *structs.SecretInfo) error {
	t := newTable(w)
	t.row("Namespace", s.Namespace)
	t.row("Name", s.Name)
	t.row("Description", orDash(s.Description))
	t.row("Labels", fmtLabels(s.Labels))
	t.row("Version", s.Version)
	t.row("Keys", fmtKeys(s.Keys))
	t.row("Generated", fmtKeys(s.Generated))
	t.row("Versions Kept", len(s.Versions))
	t.row("Expires", fmtExpiry(s.ExpiresAt))
	t.row("Rotation Period", orDash(s.RotationPeriod))
	t.row("Rotation Due", fmtTime(s.RotationDueAt))
	t.row("Created", fmtTime(s.CreatedAt))
	t.row("Updated", fmtTime(s.UpdatedAt))
	return t.flush()
}

func newSecretUpdateCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "update NAMESPACE/NAME (--from-literal K=V | --from-file K=PATH | --generate K=LEN)...",
		Short: "Add a version to a secret; tasks using it get the new values",
		Long: `Add a version to a secret. The new version holds exactly the keys given
here: keys of the previous version that are not given again are not carried
over (the command warns when that happens, and ` + "`hive secret rollback`" + `
brings the old version back). Running tasks that use the secret get the new
version as their secret blocks' change_mode says (restart by default).

` + valueFlagsHelp + `

--description, --label, --expires, --rotation-period and --max-versions
change the secret's settings when given, and are kept when not.`,
		Example: `  hive secret update payments/db-password --generate password=32
  hive secret update payments/api-tls --from-file tls.crt=./new.crt --from-file tls.key=./new.key`,
		Args: exactArgs("NAMESPACE/NAME"),
	}
	return secretWriteCmd(g, cmd, "updating", "Updated", true,
		func(c *api.Client, ns, name string, req structs.SecretRequest) (*structs.SecretInfo, error) {
			return c.Secrets().Update(ns, name, req)
		})
}

// warnDroppedKeys warns when the current version lacks keys the one before
// it held: tasks that reference them can no longer get them.
func warnDroppedKeys(w io.Writer, info *structs.SecretInfo) {
	var prev *structs.SecretVersionInfo
	for i := range info.Versions {
		v := &info.Versions[i]
		if v.Version < info.Version && (prev == nil || v.Version > prev.Version) {
			prev = v
		}
	}
	if prev == nil {
		return
	}
	var dropped []string
	for _, k := range prev.Keys {
		if !slices.Contains(info.Keys, k) {
			dropped = append(dropped, k)
		}
	}
	if len(dropped) == 0 {
		return
	}
	fmt.Fprintf(w, "Warning: version %d no longer holds %s, which version %d did; tasks whose secret blocks use them cannot get them. Bring the old version back with `hive secret rollback %s/%s --to %d`.\n",
		info.Version, strings.Join(dropped, ","), prev.Version, info.Namespace, info.Name, prev.Version)
}

func newSecretVersionsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "versions NAMESPACE/NAME",
		Short: "List a secret's kept versions (keys, never values)",
		Example: `  hive secret versions payments/db-password
  hive secret rollback payments/db-password --to 2`,
		Args: exactArgs("NAMESPACE/NAME"),
	}
	ns := secretNamespaceFlag(cmd)
	out := outputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := checkOutput(*out); err != nil {
			return err
		}
		ns, name, err := parseSecretRef(cmd, args[0], *ns)
		if err != nil {
			return err
		}
		c, err := g.client()
		if err != nil {
			return err
		}
		info, _, err := c.Secrets().Info(ns, name, nil)
		if err != nil {
			return fmt.Errorf("reading secret %s/%s: %w", ns, name, err)
		}
		versions := info.Versions
		if versions == nil {
			versions = []structs.SecretVersionInfo{}
		}
		w := cmd.OutOrStdout()
		if *out == "json" {
			return printJSON(w, versions)
		}
		// Newest first, as `hive job history` and the like show them.
		sorted := slices.Clone(versions)
		sort.Slice(sorted, func(i, j int) bool { return sorted[i].Version > sorted[j].Version })
		t := newTable(w, "VERSION", "CURRENT", "KEYS", "ROOT KEY", "CREATED")
		for _, v := range sorted {
			t.row(v.Version, v.Version == info.Version, fmtKeys(v.Keys), orDash(v.RootKeyID), fmtTime(v.CreatedAt))
		}
		return t.flush()
	}
	return cmd
}

func newSecretRollbackCmd(g *globals) *cobra.Command {
	var to uint64
	cmd := &cobra.Command{
		Use:   "rollback NAMESPACE/NAME --to N",
		Short: "Make an older version's values current again (as a new version)",
		Long: `Make the values of kept version N current again. The rollback is a new
version holding N's values, so it can itself be rolled back; running tasks
get it as an update. ` + "`hive secret versions`" + ` lists the kept versions.`,
		Example: "  hive secret rollback payments/db-password --to 2",
		Args:    exactArgs("NAMESPACE/NAME"),
	}
	ns := secretNamespaceFlag(cmd)
	out := outputFlag(cmd)
	cmd.Flags().Uint64Var(&to, "to", 0, "the version whose values become current (required)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := checkOutput(*out); err != nil {
			return err
		}
		ns, name, err := parseSecretRef(cmd, args[0], *ns)
		if err != nil {
			return err
		}
		if to == 0 {
			return fmt.Errorf("missing --to N: the version to roll back to (see `hive secret versions %s/%s`)", ns, name)
		}
		c, err := g.client()
		if err != nil {
			return err
		}
		info, err := c.Secrets().Rollback(ns, name, to)
		if err != nil {
			return fmt.Errorf("rolling back secret %s/%s to version %d: %w", ns, name, to, err)
		}
		if *out == "json" {
			return printJSON(cmd.OutOrStdout(), info)
		}
		fmt.Fprintf(cmd.OutOrStdout(), "Rolled back secret %s/%s: version %d holds the values of version %d (keys %s)\n", ns, name, info.Version, to, fmtKeys(info.Keys))
		return nil
	}
	return cmd
}

func newSecretDeleteCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "delete NAMESPACE/NAME",
		Aliases: []string{"rm"},
		Short:   "Delete a secret and all its versions",
		Long: `Delete a secret with every version. Its values cannot be recovered (short of
restoring a snapshot), and tasks whose secret blocks name it no longer get
it.`,
		Example: "  hive secret delete payments/db-password",
		Args:    exactArgs("NAMESPACE/NAME"),
	}
	ns := secretNamespaceFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		ns, name, err := parseSecretRef(cmd, args[0], *ns)
		if err != nil {
			return err
		}
		c, err := g.client()
		if err != nil {
			return err
		}
		if err := c.Secrets().Delete(ns, name); err != nil {
			return fmt.Errorf("deleting secret %s/%s: %w", ns, name, err)
		}
		fmt.Fprintf(cmd.OutOrStdout(), "Deleted secret %s/%s\n", ns, name)
		return nil
	}
	return cmd
}
