package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/hivesec/hive/audit"
)

// defaultDataDir is where the audit commands look for a manager's data
// when neither --dir nor --data-dir is given. The daemons have no default
// (--data-dir is required there); this is the directory the docs and
// examples use.
const defaultDataDir = "/var/lib/hive"

// auditDirFlags are --dir and --data-dir, shared by the audit commands.
type auditDirFlags struct {
	dir, dataDir string
}

func (f *auditDirFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.dir, "dir", "", "directory of the audit log (default: <data-dir>/audit)")
	fl.StringVar(&f.dataDir, "data-dir", defaultDataDir, "the manager's --data-dir, whose audit subdirectory holds the log")
}

func (f *auditDirFlags) path() string {
	if f.dir != "" {
		return f.dir
	}
	return filepath.Join(f.dataDir, "audit")
}

// files lists the log files in chain order.
func (f *auditDirFlags) files() ([]string, error) {
	dir := f.path()
	files, err := audit.Files(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("no audit log directory %s: pass --dir DIR, or --data-dir of a manager (the log is in <data-dir>/audit)", dir)
	}
	if err != nil {
		return nil, err
	}
	return files, nil
}

func newAuditCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Verify and read a manager's audit log (local files)",
		Long: `Every manager records who did what through the API in an audit log under
<data-dir>/audit: JSON lines chained by hashes, so that editing, removing,
inserting or reordering a line shows. These commands read the files directly,
on the manager's host; they need read access to them, not an API token.`,
	}
	cmd.AddCommand(newAuditVerifyCmd(), newAuditTailCmd())
	return cmd
}

func newAuditVerifyCmd() *cobra.Command {
	var f auditDirFlags
	cmd := &cobra.Command{
		Use:   "verify [FILE...] [--dir DIR]",
		Short: "Check the audit log's hash chain",
		Long: `Check the hash chain of the audit log: every file of --dir (rotated files
oldest first, then audit.log), or the FILEs given, in the order given.

It prints "OK: N entries in M files" and exits 0, or "BROKEN: FILE:LINE:
reason" for the first line that does not verify and exits 1. The chain head
(the hash of the last entry) goes to standard error: a copy kept elsewhere
shows whether lines were later cut from the end, which the chain alone
cannot.`,
		Example: `  hive audit verify
  hive audit verify --data-dir /srv/hive
  hive audit verify /backup/audit-20300102T030405.000Z.log /backup/audit.log`,
		Args: cobra.ArbitraryArgs,
	}
	f.register(cmd)
	cmd.RunE = func(cmd *cobra.Command, files []string) error {
		if len(files) > 0 && (cmd.Flags().Changed("dir") || cmd.Flags().Changed("data-dir")) {
			return errors.New("give FILEs or --dir/--data-dir, not both")
		}
		if len(files) == 0 {
			var err error
			if files, err = f.files(); err != nil {
				return err
			}
			if len(files) == 0 {
				return fmt.Errorf("no audit log files in %s", f.path())
			}
		}
		res, err := audit.Verify(files...)
		w := cmd.OutOrStdout()
		var broken *audit.BrokenLinkError
		if errors.As(err, &broken) {
			fmt.Fprintf(w, "BROKEN: %s:%d: %s\n", broken.File, broken.Line, broken.Reason)
			fmt.Fprintf(cmd.ErrOrStderr(), "%d entries verified before the break.\n", res.Entries)
			return exitCode(1)
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "OK: %d entries in %d files\n", res.Entries, res.Files)
		ew := cmd.ErrOrStderr()
		if res.MidChain {
			fmt.Fprintln(ew, "The first file continues an older chain: earlier files were removed by retention.")
		}
		if res.Head != "" {
			fmt.Fprintf(ew, "Chain head: %s\n", res.Head)
		}
		return nil
	}
	return cmd
}

func newAuditTailCmd() *cobra.Command {
	var (
		f      auditDirFlags
		follow bool
		filter audit.Filter
		since  string
	)
	cmd := &cobra.Command{
		Use:   "tail [-f] [--user NAME] [--resource R] [--decision D] [--dir DIR]",
		Short: "Print audit log entries, optionally following new ones",
		Long: `Print the entries of the audit log that match the filters, oldest first, one
a line: TIME SUBJECT DECISION METHOD PATH STATUS, then the action, resource,
namespace/name and the reason for the decision. -o json prints each entry as
it is stored, one JSON object a line.

With -f it keeps printing new entries as they are written, across rotations,
until interrupted. tail does not check the hash chain; ` + "`hive audit verify`" + ` does.`,
		Example: `  hive audit tail --user alice --since 1h
  hive audit tail -f --decision deny
  hive audit tail --resource 'secret*' -o json | jq .`,
		Args: exactArgs(),
	}
	f.register(cmd)
	out := outputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := checkOutput(*out); err != nil {
			return err
		}
		switch filter.Decision {
		case "", audit.DecisionAllow, audit.DecisionDeny, audit.DecisionError:
		default:
			return fmt.Errorf("invalid --decision %q: use %s, %s or %s", filter.Decision, audit.DecisionAllow, audit.DecisionDeny, audit.DecisionError)
		}
		if since != "" {
			t, err := parseSince(since, time.Now())
			if err != nil {
				return err
			}
			filter.Since = t
		}
		files, err := f.files()
		if err != nil {
			return err
		}
		if follow {
			// Follow the current file even if it is not there yet (a
			// rotation in progress, or a log not written to so far).
			cur := filepath.Join(f.path(), "audit.log")
			if len(files) == 0 || files[len(files)-1] != cur {
				files = append(files, cur)
			}
		}
		ctx, stop := signal.NotifyContext(cmdContext(cmd), os.Interrupt, syscall.SIGTERM)
		defer stop()
		w := cmd.OutOrStdout()
		emit := func(e audit.Entry) error { return printAuditEntry(w, e) }
		if *out == "json" {
			enc := json.NewEncoder(w)
			enc.SetEscapeHTML(false)
			emit = func(e audit.Entry) error { return enc.Encode(e) }
		}
		err = audit.Tail(ctx, files, filter, follow, emit)
		if follow && errors.Is(err, context.Canceled) {
			return nil
		}
		return err
	}
	fl := cmd.Flags()
	fl.BoolVarP(&follow, "follow", "f", false, "keep printing new entries until interrupted")
	fl.StringVar(&filter.User, "user", "", "only requests by this user")
	fl.StringVar(&filter.Subject, "subject", "", "only this subject, such as sa:web/ci or node:* ('*' matches anything)")
	fl.StringVar(&filter.Resource, "resource", "", "only this resource, such as job or secret* ('*' matches anything)")
	fl.StringVar(&filter.Decision, "decision", "", "only this decision: allow, deny or error")
	fl.StringVar(&filter.Event, "event", "", "only this event, such as request or authentication")
	fl.StringVar(&since, "since", "", "only entries from this long ago (1h) or this time (RFC 3339) on")
	return cmd
}

func cmdContext(cmd *cobra.Command) context.Context {
	if ctx := cmd.Context(); ctx != nil {
		return ctx
	}
	return context.Background()
}

// parseSince reads --since: a duration back from now, or an RFC 3339 time.
func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("invalid --since %q: use a duration such as 30m or 24h, or a time such as 2030-01-02T15:04:05Z", s)
}

// printAuditEntry writes one entry as a line of text.
func printAuditEntry(w io.Writer, e audit.Entry) error {
	obj := e.Resource
	if e.Namespace != "" || e.Name != "" {
		obj += " " + strings.Trim(e.Namespace+"/"+e.Name, "/")
	}
	line := fmt.Sprintf("%s %s %s %s %s %d", e.Time.UTC().Format(time.RFC3339), orDash(e.Subject), orDash(e.Decision), orDash(e.Method), orDash(e.Path), e.Status)
	if e.Event != "" && e.Event != audit.EventRequest {
		line += " event=" + e.Event
	}
	if e.Action != "" || obj != "" {
		line += " " + strings.TrimSpace(e.Action+" "+obj)
	}
	if e.Reason != "" {
		line += fmt.Sprintf(" (%s)", e.Reason)
	}
	_, err := fmt.Fprintln(w, line)
	return err
}
