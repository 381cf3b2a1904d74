package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hivesec/hive/api"
	"github.com/hivesec/hive/structs"
)

func newAllocCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "alloc",
		Aliases: []string{"allocation"},
		Short:   "Run, list, inspect and stop allocations, and read their logs",
	}
	cmd.AddCommand(newAllocRunCmd(g), newAllocListCmd(g), newAllocStatusCmd(g), newAllocStopCmd(g), newAllocLogsCmd(g),
		newAllocQuarantineCmd(g, true), newAllocQuarantineCmd(g, false))
	return cmd
}

// allocRunFlags are the task settings of `hive alloc run`.
type allocRunFlags struct {
	node, namespace, image, user, name string
	readOnly, privileged               bool
	memoryMB, cpuMHz                   int
	capAdd, env                        []string
	restartAttempts                    int
	restartDelay                       time.Duration
	restartMode                        string
	output                             string
}

func newAllocRunCmd(g *globals) *cobra.Command {
	var f allocRunFlags
	cmd := &cobra.Command{
		Use:   "run --node ID --image IMAGE [flags] [-- COMMAND ARGS...]",
		Short: "Place a one-task allocation on a named worker",
		Long: `Place an allocation with one task on the worker --node names, and print
its ID. Until the scheduler lands, this is how work reaches a worker; it needs
the admin token.

The task runs restricted: no new privileges, all capabilities dropped (add
some back with --cap-add), containerd's default seccomp profile, and a memory
limit (--memory, default 300 MiB). COMMAND and ARGS after "--" replace the
image's command. --privileged is refused unless the namespace was created
with --allow-privileged.

The image must be on the worker: import it with ` + "`hive image import`" + `, or name
one the worker can pull.`,
		Example: `  hive alloc run --node 5f0c... --image docker.io/hive/busybox:test --user 1000 \
      --read-only-rootfs --memory 64 -- sh -c 'while true; do echo hello; sleep 5; done'
  hive alloc status <alloc ID>`,
	}
	fl := cmd.Flags()
	fl.StringVar(&f.node, "node", "", "ID of the worker to run on (see `hive node ls`); required")
	fl.StringVarP(&f.namespace, "namespace", "n", structs.DefaultNamespace, "namespace of the allocation")
	fl.StringVar(&f.image, "image", "", "image reference, e.g. docker.io/library/busybox:latest; required")
	fl.StringVar(&f.name, "name", "main", "task name")
	fl.StringVar(&f.user, "user", "", "user to run as: uid, uid:gid or a name from the image (default: the image's)")
	fl.BoolVar(&f.readOnly, "read-only-rootfs", false, "mount the image's root filesystem read-only")
	fl.IntVar(&f.memoryMB, "memory", 0, "memory limit in MiB (default 300; at least 4)")
	fl.IntVar(&f.cpuMHz, "cpu", 0, "CPU in MHz, which sets the task's CPU shares (default 100)")
	fl.StringSliceVar(&f.capAdd, "cap-add", nil, "capability to add back, e.g. NET_BIND_SERVICE (repeatable)")
	fl.BoolVar(&f.privileged, "privileged", false, "run privileged (the namespace must allow it)")
	fl.StringArrayVar(&f.env, "env", nil, "environment variable K=V (repeatable)")
	fl.IntVar(&f.restartAttempts, "restart-attempts", 0, "restarts allowed per interval after the task exits (default 2)")
	fl.DurationVar(&f.restartDelay, "restart-delay", 0, "wait before a restart (default 15s)")
	fl.StringVar(&f.restartMode, "restart-mode", "", `what to do once the attempts are used up: "fail" (default) or "delay"`)
	fl.StringVarP(&f.output, "output", "o", "id", "output: id (only the allocation ID) or json (the allocation)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		req, err := f.request(cmd, args)
		if err != nil {
			return err
		}
		c, err := g.client()
		if err != nil {
			return err
		}
		a, err := c.Allocations().Create(*req)
		if err != nil {
			return fmt.Errorf("placing allocation on node %s: %w", f.node, err)
		}
		if f.output == "json" {
			return printJSON(cmd.OutOrStdout(), a)
		}
		fmt.Fprintln(cmd.OutOrStdout(), a.ID)
		return nil
	}
	return cmd
}

// request checks the flags and builds the API request.
func (f *allocRunFlags) request(cmd *cobra.Command, args []string) (*structs.AllocCreateRequest, error) {
	if f.output != "id" && f.output != "json" {
		return nil, fmt.Errorf("invalid output format %q: use id or json", f.output)
	}
	if strings.TrimSpace(f.node) == "" {
		return nil, errors.New("--node is required: the ID of a worker (see `hive node ls`)")
	}
	if strings.TrimSpace(f.image) == "" {
		return nil, errors.New("--image is required: an image reference the worker has or can pull")
	}
	if err := structs.ValidateName("namespace", f.namespace); err != nil {
		return nil, err
	}
	t := &structs.Task{
		Name:      f.name,
		Driver:    "containerd",
		Config:    structs.TaskConfig{Image: f.image},
		User:      f.user,
		Resources: structs.Resources{CPU: f.cpuMHz, MemoryMB: f.memoryMB},
		Security:  structs.SecurityContext{ReadOnlyRootfs: f.readOnly, CapAdd: f.capAdd, Privileged: f.privileged},
	}
	if len(args) > 0 {
		t.Config.Command, t.Config.Args = args[0], args[1:]
	}
	for _, kv := range f.env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("invalid --env %q: use KEY=VALUE", kv)
		}
		if t.Env == nil {
			t.Env = map[string]string{}
		}
		t.Env[k] = v
	}
	fl := cmd.Flags()
	if fl.Changed("restart-attempts") || fl.Changed("restart-delay") || fl.Changed("restart-mode") {
		// A policy with any field set is taken as is by the server, so start
		// from the defaults and override what was given.
		t.Restart = structs.DefaultRestartPolicy()
		if fl.Changed("restart-attempts") {
			t.Restart.Attempts = f.restartAttempts
		}
		if fl.Changed("restart-delay") {
			t.Restart.Delay = f.restartDelay
		}
		if f.restartMode != "" {
			t.Restart.Mode = f.restartMode
		}
	}
	return &structs.AllocCreateRequest{Namespace: f.namespace, NodeID: f.node, Tasks: []*structs.Task{t}}, nil
}

func newAllocListCmd(g *globals) *cobra.Command {
	var node, namespace string
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List allocations",
		Args:    exactArgs(),
	}
	cmd.Flags().StringVar(&node, "node", "", "only allocations on this node")
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "", "only allocations in this namespace (default: all)")
	out := outputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := checkOutput(*out); err != nil {
			return err
		}
		c, err := g.client()
		if err != nil {
			return err
		}
		list, _, err := c.Allocations().List(&api.AllocFilter{NodeID: node, Namespace: namespace}, nil)
		if err != nil {
			return fmt.Errorf("listing allocations: %w", err)
		}
		if list == nil {
			list = []*structs.Allocation{}
		}
		w := cmd.OutOrStdout()
		if *out == "json" {
			return printJSON(w, list)
		}
		sort.SliceStable(list, func(i, j int) bool {
			if !list[i].CreateTime.Equal(list[j].CreateTime) {
				return list[i].CreateTime.Before(list[j].CreateTime)
			}
			return list[i].ID < list[j].ID
		})
		t := newTable(w, "ID", "NODE", "NAMESPACE", "TASKS", "DESIRED", "STATUS", "CREATED")
		for _, a := range list {
			t.row(a.ID, orDash(a.NodeID), a.Namespace, taskNames(a), orDash(a.DesiredStatus), orDash(a.ClientStatus), fmtTime(a.CreateTime))
		}
		return t.flush()
	}
	return cmd
}

func taskNames(a *structs.Allocation) string {
	names := make([]string, 0, len(a.Tasks))
	for _, t := range a.Tasks {
		if t != nil {
			names = append(names, t.Name)
		}
	}
	if len(names) == 0 {
		return "-"
	}
	return strings.Join(names, ",")
}

// resolveAlloc returns the allocation id names: the full ID, or a prefix
// of exactly one allocation's ID, as Nomad accepts.
func resolveAlloc(c *api.Client, id string) (*structs.Allocation, error) {
	a, _, err := c.Allocations().Info(id, nil)
	var ae *api.Error
	if err == nil || !errors.As(err, &ae) || ae.StatusCode != http.StatusNotFound || len(id) >= 36 {
		return a, err
	}
	list, _, lerr := c.Allocations().List(nil, nil)
	if lerr != nil {
		return nil, err
	}
	var match []*structs.Allocation
	for _, x := range list {
		if strings.HasPrefix(x.ID, id) {
			match = append(match, x)
		}
	}
	switch len(match) {
	case 0:
		return nil, err
	case 1:
		return match[0], nil
	}
	ids := make([]string, len(match))
	for i, m := range match {
		ids[i] = m.ID
	}
	return nil, fmt.Errorf("%q matches %d allocations (%s); give more of the ID", id, len(match), strings.Join(ids, ", "))
}

func newAllocStatusCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status ID",
		Short: "Show an allocation and the state of its tasks",
		Long: `Show an allocation: where it runs, its desired and reported status, and
for each task its state, restarts, exit code, last error and timestamps. ID
may be a unique prefix.`,
		Args: exactArgs("ID"),
	}
	out := outputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := checkOutput(*out); err != nil {
			return err
		}
		c, err := g.client()
		if err != nil {
			return err
		}
		a, err := resolveAlloc(c, args[0])
		if err != nil {
			return fmt.Errorf("reading allocation %s: %w", args[0], err)
		}
		w := cmd.OutOrStdout()
		if *out == "json" {
			return printJSON(w, a)
		}
		return printAllocStatus(w, a)
	}
	return cmd
}

func printAllocStatus(w io.Writer, a *structs.Allocation) error {
	t := newTable(w)
	t.row("ID", a.ID)
	t.row("Node", orDash(a.NodeID))
	t.row("Namespace", a.Namespace)
	t.row("Job", orDash(a.JobID))
	t.row("Group", orDash(a.Group))
	if a.JobID != "" {
		// Scheduler fields; allocations placed by hand have none.
		t.row("Name", orDash(a.Name))
		t.row("Version", a.JobVersion)
		t.row("Deployment", orDash(a.DeploymentID))
		t.row("Health", health(a.Healthy))
		t.row("Evaluation", orDash(a.EvalID))
		t.row("Replaces", orDash(a.PreviousAllocation))
		t.row("Replaced By", orDash(a.NextAllocation))
	}
	t.row("Desired", orDash(a.DesiredStatus))
	if a.DesiredDescription != "" {
		t.row("Reason", a.DesiredDescription)
	}
	t.row("Status", orDash(a.ClientStatus))
	t.row("Description", orDash(a.ClientDescription))
	t.row("Address", orDash(a.Address))
	for _, p := range a.Published {
		t.row("Port "+p.Label, fmt.Sprintf("node port %d -> %d (TCP and UDP)", p.HostPort, p.To))
	}
	if a.Quarantined {
		t.row("Quarantined", "yes: no traffic in or out (`hive alloc unquarantine` releases it)")
	}
	t.row("Created", fmtTime(a.CreateTime))
	t.row("Modified", fmtTime(a.ModifyTime))
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Tasks")
	t = newTable(w, "NAME", "STATE", "FAILED", "RESTARTS", "EXIT CODE", "STARTED", "FINISHED")
	var errs, imgs []string
	for _, task := range a.Tasks {
		if task == nil {
			continue
		}
		ts := a.TaskStates[task.Name]
		if ts == nil {
			ts = &structs.TaskState{State: structs.TaskPending}
		}
		exit := "-"
		if !ts.FinishedAt.IsZero() {
			exit = fmt.Sprint(ts.ExitCode)
		}
		t.row(task.Name, orDash(ts.State), ts.Failed, ts.Restarts, exit, fmtTime(ts.StartedAt), fmtTime(ts.FinishedAt))
		img := task.Config.Image
		if ts.ImageDigest != "" {
			img += " (" + ts.ImageDigest + ")"
		}
		imgs = append(imgs, fmt.Sprintf("  %s: %s", task.Name, img))
		if ts.LastError != "" {
			errs = append(errs, fmt.Sprintf("  %s: %s", task.Name, ts.LastError))
		}
	}
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Images")
	fmt.Fprintln(w, strings.Join(imgs, "\n"))
	if len(errs) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "Last errors")
		fmt.Fprintln(w, strings.Join(errs, "\n"))
	}
	return nil
}

func newAllocStopCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "stop ID",
		Short: "Stop an allocation: its worker stops and removes its containers",
		Args:  exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			a, err := resolveAlloc(c, args[0])
			if err != nil {
				return fmt.Errorf("stopping allocation %s: %w", args[0], err)
			}
			if _, err := c.Allocations().Stop(a.ID); err != nil {
				return fmt.Errorf("stopping allocation %s: %w", a.ID, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Stopping allocation %s; `hive alloc status %s` shows when it is done.\n", a.ID, a.ID)
			return nil
		},
	}
}

// newAllocQuarantineCmd is `hive alloc quarantine` (on) or
// `hive alloc unquarantine`.
func newAllocQuarantineCmd(g *globals, on bool) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "quarantine ALLOC",
		Short: "Cut an allocation off the network, established connections included",
		Long: `Quarantine an allocation: its worker drops every packet to and from it,
established connections included, whatever the network policies allow,
until ` + "`hive alloc unquarantine`" + `. The allocation keeps running, so it can be
inspected. ALLOC may be a unique prefix of the allocation ID. Needs
alloc/quarantine:update; the change is in the audit log and the events.`,
		Args: exactArgs("ALLOC"),
	}
	verb, done := "quarantining", "Quarantined allocation %s: its worker now drops all its traffic.\n"
	if !on {
		cmd.Use, cmd.Short = "unquarantine ALLOC", "Release an allocation from quarantine"
		cmd.Long = `Release an allocation from quarantine: the network policies apply to it
again. ALLOC may be a unique prefix of the allocation ID.`
		verb, done = "releasing", "Released allocation %s from quarantine.\n"
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		c, err := g.client()
		if err != nil {
			return err
		}
		a, err := resolveAlloc(c, args[0])
		if err != nil {
			return fmt.Errorf("%s allocation %s: %w", verb, args[0], err)
		}
		change := c.Allocations().Quarantine
		if !on {
			change = c.Allocations().Unquarantine
		}
		if _, err := change(a.ID); err != nil {
			return fmt.Errorf("%s allocation %s: %w", verb, a.ID, err)
		}
		fmt.Fprintf(cmd.OutOrStdout(), done, a.ID)
		return nil
	}
	return cmd
}

func newAllocLogsCmd(g *globals) *cobra.Command {
	var o api.LogOptions
	cmd := &cobra.Command{
		Use:   "logs ALLOC [TASK]",
		Short: "Print a task's stdout (or stderr) as its worker captured it",
		Long: `Print the output a task wrote, from the rotating log files on its worker.
TASK may be left out when the allocation has one task; ALLOC may be a unique
prefix of the allocation ID. -f keeps printing new output until interrupted.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 || len(args) == 2 {
				for _, a := range args {
					if strings.TrimSpace(a) == "" {
						return fmt.Errorf("%s: arguments must not be empty", cmd.CommandPath())
					}
				}
				return nil
			}
			return fmt.Errorf("%s takes ALLOC [TASK], got %d argument(s); usage: %s", cmd.CommandPath(), len(args), cmd.UseLine())
		},
	}
	cmd.Flags().BoolVarP(&o.Follow, "follow", "f", false, "keep printing new output")
	cmd.Flags().BoolVar(&o.Stderr, "stderr", false, "print stderr instead of stdout")
	cmd.Flags().IntVar(&o.Tail, "tail", 0, "start this many lines from the end (default: from the start)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if o.Tail < 0 {
			return fmt.Errorf("invalid --tail %d: use a non-negative number of lines", o.Tail)
		}
		c, err := g.client()
		if err != nil {
			return err
		}
		a, err := resolveAlloc(c, args[0])
		if err != nil {
			return fmt.Errorf("reading logs of allocation %s: %w", args[0], err)
		}
		if len(args) == 2 {
			o.Task = args[1]
		}
		r, err := c.Allocations().Logs(a.ID, o)
		if err != nil {
			return fmt.Errorf("reading logs of allocation %s: %w", a.ID, err)
		}
		defer r.Close()
		if _, err := io.Copy(cmd.OutOrStdout(), r); err != nil {
			return fmt.Errorf("reading logs of allocation %s: %w", a.ID, err)
		}
		return nil
	}
	return cmd
}
