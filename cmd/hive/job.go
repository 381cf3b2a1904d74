package main

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hivesec/hive/api"
	"github.com/hivesec/hive/jobspec"
	"github.com/hivesec/hive/structs"
)

// parseJobFile turns a job file into a job; a variable so tests can count
// on it without the parser's own test data.
var parseJobFile = func(path string, vars map[string]string, varFiles []string) (*structs.Job, error) {
	return jobspec.ParseFile(path, jobspec.Options{Vars: vars, VarFiles: varFiles})
}

// monitorWait is the wait of each blocking query the run monitor sends. It
// is short so a placement that becomes blocked while the deployment does
// not change is still noticed.
var monitorWait = 5 * time.Second

func newJobCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "job",
		Short: "Run, plan, inspect, revert and stop jobs",
		Long: `Jobs are declared in HCL files that follow Nomad's jobspec: job → group
(the unit of placement, count copies) → task (a container). ` + "`hive job run`" + `
submits a file and follows the rolling deployment it starts; ` + "`hive job plan`" + `
shows what a submission would change without changing anything.`,
	}
	cmd.AddCommand(newJobRunCmd(g), newJobPlanCmd(g), newJobStatusCmd(g), newJobStopCmd(g),
		newJobHistoryCmd(g), newJobRevertCmd(g), newJobPromoteCmd(g))
	return cmd
}

// ---- job files and Nomad-style flags ----

// jobFileFlags are the parser inputs shared by run and plan.
type jobFileFlags struct {
	vars     []string
	varFiles []string
	output   string
}

func (f *jobFileFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringArrayVar(&f.vars, "var", nil, "set an HCL variable, KEY=VALUE (repeatable; -var works too)")
	fl.StringArrayVar(&f.varFiles, "var-file", nil, "read HCL variables from a file (repeatable; -var-file works too)")
	fl.StringVarP(&f.output, "output", "o", "table", "output format: table or json")
}

func (f *jobFileFlags) parse(path string) (*structs.Job, error) {
	if err := checkOutput(f.output); err != nil {
		return nil, err
	}
	vars := map[string]string{}
	for _, kv := range f.vars {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, fmt.Errorf("invalid -var %q: use KEY=VALUE", kv)
		}
		vars[strings.TrimSpace(k)] = v
	}
	job, err := parseJobFile(path, vars, f.varFiles)
	if err != nil {
		// The parser's errors already carry file:line:col.
		return nil, err
	}
	if job.Namespace == "" {
		job.Namespace = structs.DefaultNamespace
	}
	return job, nil
}

// nomadFlags lets job files' flags be written as Nomad writes them, with one
// dash (-var k=v, -var-file=f), which pflag would read as shorthands.
func nomadFlags(args []string) []string {
	out := make([]string, 0, len(args))
	for i, a := range args {
		if a == "--" {
			return append(out, args[i:]...)
		}
		for _, name := range []string{"var", "var-file", "detach"} {
			if a == "-"+name || strings.HasPrefix(a, "-"+name+"=") {
				a = "-" + a
				break
			}
		}
		out = append(out, a)
	}
	return out
}

// withNomadFlags makes cmd parse its own flags after nomadFlags has
// rewritten them; cobra's parser runs on the original arguments otherwise.
func withNomadFlags(cmd *cobra.Command, run func(cmd *cobra.Command, args []string) error) {
	cmd.DisableFlagParsing = true
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		cmd.DisableFlagParsing = false
		err := cmd.ParseFlags(nomadFlags(args))
		cmd.DisableFlagParsing = true
		if err != nil {
			return fmt.Errorf("%w; usage: %s", err, cmd.UseLine())
		}
		if help, _ := cmd.Flags().GetBool("help"); help {
			return cmd.Help()
		}
		args = cmd.Flags().Args()
		if len(args) != 1 || strings.TrimSpace(args[0]) == "" {
			return fmt.Errorf("%s takes FILE, got %d argument(s); usage: %s", cmd.CommandPath(), len(args), cmd.UseLine())
		}
		return run(cmd, args)
	}
}

// ---- job run ----

// jobRunOutput is what `job run -o json` prints: the submission's answer,
// and, unless detached, the evaluation and deployment as they ended.
type jobRunOutput struct {
	JobID      string              `json:"job_id"`
	Namespace  string              `json:"namespace"`
	EvalID     string              `json:"eval_id"`
	JobVersion uint64              `json:"job_version"`
	Warnings   []string            `json:"warnings,omitempty"`
	Evaluation *structs.Evaluation `json:"evaluation,omitempty"`
	Deployment *structs.Deployment `json:"deployment,omitempty"`
	// Error says why the command exits non-zero, when it does.
	Error string `json:"error,omitempty"`
}

func newJobRunCmd(g *globals) *cobra.Command {
	var f jobFileFlags
	var detach bool
	cmd := &cobra.Command{
		Use:   "run FILE [-var KEY=VALUE]... [-var-file FILE]... [--detach]",
		Short: "Submit a job file and follow its deployment",
		Long: `Parse FILE (HCL, Nomad's jobspec) locally, submit it, and follow what the
scheduler does with it: the evaluation, then the deployment of the new
version, one line per change, per group desired/placed/healthy/unhealthy
allocations, until the deployment is healthy or has failed.

The command exits non-zero if the deployment fails or if allocations cannot
be placed, printing why (nodes filtered by which constraint, which resource
ran out). --detach returns as soon as the job is submitted.`,
		Example: `  hive job run web.hcl
  hive job run -var image=docker.io/hive/busybox:test -var-file prod.vars web.hcl
  hive job run --detach -o json web.hcl`,
	}
	f.add(cmd)
	cmd.Flags().BoolVarP(&detach, "detach", "d", false, "return once the job is submitted, without following the deployment")
	withNomadFlags(cmd, func(cmd *cobra.Command, args []string) error {
		job, err := f.parse(args[0])
		if err != nil {
			return err
		}
		c, err := g.client()
		if err != nil {
			return err
		}
		resp, err := c.Jobs().Register(job)
		if err != nil {
			return fmt.Errorf("submitting job %s: %w", job.ID, err)
		}
		out := &jobRunOutput{JobID: job.ID, Namespace: job.Namespace, EvalID: resp.EvalID, JobVersion: resp.JobVersion, Warnings: resp.Warnings}
		return finishSubmit(cmd, c, f.output, detach, job.Type, out,
			fmt.Sprintf("Job %q submitted as version %d", job.ID, resp.JobVersion))
	})
	return cmd
}

// finishSubmit prints a submission's answer and, unless detached, follows
// it; shared by run and revert.
func finishSubmit(cmd *cobra.Command, c *api.Client, format string, detach bool, jobType string, out *jobRunOutput, headline string) error {
	stdout := cmd.OutOrStdout()
	// Progress goes where it does not spoil the JSON.
	progress := stdout
	if format == "json" {
		progress = cmd.ErrOrStderr()
	}
	fmt.Fprintf(progress, "==> %s; evaluation %s\n", headline, out.EvalID)
	for _, w := range out.Warnings {
		fmt.Fprintf(progress, "    Warning: %s\n", w)
	}
	var err error
	if !detach {
		m := &monitor{c: c, w: progress, ns: out.Namespace, jobID: out.JobID, version: out.JobVersion, jobType: jobType}
		err = m.run(out.EvalID)
		out.Evaluation, out.Deployment = m.eval, m.dep
		if err != nil {
			out.Error = err.Error()
		}
	}
	if format == "json" {
		if perr := printJSON(stdout, out); perr != nil {
			return perr
		}
	}
	return err
}

// monitor follows an evaluation and the deployment it starts.
type monitor struct {
	c       *api.Client
	w       io.Writer
	ns      string
	jobID   string
	version uint64
	jobType string

	eval *structs.Evaluation
	dep  *structs.Deployment
}

// errPlacement is returned when allocations cannot be placed.
var errPlacement = errors.New("placement blocked")

func (m *monitor) run(evalID string) error {
	if evalID == "" {
		fmt.Fprintln(m.w, "==> No evaluation was created: nothing to do")
		return nil
	}
	ev, err := m.waitEval(evalID)
	if err != nil {
		return err
	}
	m.eval = ev
	fmt.Fprintf(m.w, "==> Evaluation %s %s (triggered by %s)\n", ev.ID, ev.Status, orDash(ev.TriggeredBy))
	if ev.Status == structs.EvalStatusFailed {
		return fmt.Errorf("evaluation %s failed: %s", ev.ID, orDash(ev.StatusDescription))
	}
	if err := m.checkBlocked(ev); err != nil {
		return err
	}
	dep, err := m.findDeployment(ev)
	if err != nil {
		return err
	}
	if dep == nil {
		return m.noDeployment()
	}
	return m.followDeployment(dep)
}

// waitEval waits until the evaluation leaves pending.
func (m *monitor) waitEval(id string) (*structs.Evaluation, error) {
	var idx uint64
	missing := 0
	for {
		ev, meta, err := m.c.Evaluations().Info(id, blocking(idx))
		if api.IsNotFound(err) && missing < 10 {
			// A follower may not have applied the write that made it yet.
			missing++
			time.Sleep(200 * time.Millisecond)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading evaluation %s: %w", id, err)
		}
		if ev.Status != structs.EvalStatusPending {
			return ev, nil
		}
		idx = nextIndex(idx, meta)
	}
}

// blocking is a blocking query past idx, or a plain read when no index is
// known yet.
func blocking(idx uint64) *api.QueryOptions {
	if idx == 0 {
		return nil
	}
	return &api.QueryOptions{WaitIndex: idx, WaitTime: monitorWait}
}

// nextIndex moves a blocking query on; a server that answers at the same
// index again (wait over) is asked again from there.
func nextIndex(prev uint64, meta *api.QueryMeta) uint64 {
	if meta == nil || meta.LastIndex < prev {
		return prev
	}
	return meta.LastIndex
}

// checkBlocked fails with the scheduler's reasons when the evaluation could
// not place every allocation.
func (m *monitor) checkBlocked(ev *structs.Evaluation) error {
	if ev.Status != structs.EvalStatusBlocked && len(ev.FailedTGAllocs) == 0 {
		return nil
	}
	fmt.Fprintf(m.w, "==> Evaluation %s could not place every allocation:\n", ev.ID)
	writeFailures(m.w, ev.FailedTGAllocs, "    ")
	if ev.BlockedEval != "" {
		fmt.Fprintf(m.w, "    Evaluation %s waits for capacity and retries when it appears.\n", ev.BlockedEval)
	}
	return fmt.Errorf("%w: %s", errPlacement, failureSummary(ev.FailedTGAllocs))
}

// findDeployment returns the deployment of the submitted version, or nil
// when there is none (a batch job, or a submission that changed nothing).
func (m *monitor) findDeployment(ev *structs.Evaluation) (*structs.Deployment, error) {
	if ev.DeploymentID != "" {
		d, _, err := m.c.Deployments().Info(ev.DeploymentID, nil)
		if err != nil {
			return nil, fmt.Errorf("reading deployment %s: %w", ev.DeploymentID, err)
		}
		return d, nil
	}
	if m.jobType == structs.JobTypeBatch {
		return nil, nil
	}
	// The plan that creates a deployment is committed with the evaluation's
	// result, but a follower may lag a little.
	deadline := time.Now().Add(2 * time.Second)
	for {
		d, _, err := m.c.Jobs().LatestDeployment(m.ns, m.jobID, nil)
		switch {
		case err == nil && d.JobVersion == m.version:
			return d, nil
		case err != nil && !api.IsNotFound(err):
			return nil, fmt.Errorf("reading the deployment of job %s: %w", m.jobID, err)
		}
		if time.Now().After(deadline) {
			return nil, nil
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// noDeployment ends the monitor for a job version without a deployment:
// it lists where the version's allocations went.
func (m *monitor) noDeployment() error {
	allocs, _, err := m.c.Jobs().Allocations(m.ns, m.jobID, nil)
	if err != nil {
		return fmt.Errorf("listing allocations of job %s: %w", m.jobID, err)
	}
	n := 0
	for _, a := range allocs {
		if a.JobVersion == m.version && a.DesiredStatus == structs.AllocDesiredRun {
			n++
		}
	}
	fmt.Fprintf(m.w, "==> No deployment for version %d (batch job or nothing to roll out); %d allocation(s) of it are placed\n", m.version, n)
	return nil
}

// followDeployment prints the deployment's progress at every change until
// it ends. Each round also checks the job's newest evaluation, so a rolling
// update whose next placement is blocked is reported instead of waited on.
func (m *monitor) followDeployment(d *structs.Deployment) error {
	fmt.Fprintf(m.w, "==> Monitoring deployment %s (job version %d)\n", d.ID, d.JobVersion)
	var idx uint64
	last, lastDesc := "", ""
	for {
		m.dep = d
		if s := progressLine(d); s != last {
			fmt.Fprintf(m.w, "    %s  %s\n", time.Now().UTC().Format("15:04:05"), s)
			last = s
		}
		if d.Status == structs.DeploymentRunning && d.StatusDescription != lastDesc {
			lastDesc = d.StatusDescription
			if waitsForPromotion(d) {
				fmt.Fprintf(m.w, "==> %s: run `hive job promote %s -n %s` (interrupting this view leaves the deployment waiting)\n", d.StatusDescription, m.jobID, m.ns)
			}
		}
		switch d.Status {
		case structs.DeploymentSuccessful:
			fmt.Fprintf(m.w, "==> Deployment %s successful: %s\n", d.ID, orDash(d.StatusDescription))
			return nil
		case structs.DeploymentFailed, structs.DeploymentCancelled:
			return fmt.Errorf("deployment %s %s: %s", d.ID, d.Status, orDash(d.StatusDescription))
		}
		if err := m.checkNewerEvals(); err != nil {
			return err
		}
		next, meta, err := m.c.Deployments().Info(d.ID, blocking(idx))
		if err != nil {
			return fmt.Errorf("reading deployment %s: %w", d.ID, err)
		}
		d, idx = next, nextIndex(idx, meta)
	}
}

// checkNewerEvals fails when an evaluation of this job newer than the one
// followed is blocked or could not place allocations.
func (m *monitor) checkNewerEvals() error {
	evals, _, err := m.c.Jobs().Evaluations(m.ns, m.jobID, nil)
	if err != nil {
		return fmt.Errorf("listing evaluations of job %s: %w", m.jobID, err)
	}
	var newest *structs.Evaluation
	for _, ev := range evals {
		if ev.CreateIndex < m.eval.CreateIndex || ev.Status == structs.EvalStatusCanceled {
			continue
		}
		if newest == nil || ev.CreateIndex > newest.CreateIndex {
			newest = ev
		}
	}
	if newest == nil || newest.ID == m.eval.ID && newest.ModifyIndex == m.eval.ModifyIndex {
		return nil
	}
	return m.checkBlocked(newest)
}

// progressLine is one line of the live view: every group's counts.
func progressLine(d *structs.Deployment) string {
	var parts []string
	for _, name := range slices.Sorted(maps.Keys(d.Groups)) {
		s := d.Groups[name]
		if s == nil {
			continue
		}
		p := fmt.Sprintf("%s: desired %d placed %d healthy %d unhealthy %d",
			name, s.DesiredTotal, s.PlacedAllocs, s.HealthyAllocs, s.UnhealthyAllocs)
		if s.DesiredCanaries > 0 {
			p += " " + canaryCell(s)
		}
		parts = append(parts, p)
	}
	return fmt.Sprintf("%-10s %s", d.Status, strings.Join(parts, "; "))
}

// canaryCell is a group's canary progress: placed of desired, and whether
// the deployment waits for promotion.
func canaryCell(s *structs.DeploymentState) string {
	if s.DesiredCanaries == 0 {
		return "-"
	}
	c := fmt.Sprintf("canaries %d/%d", len(s.PlacedCanaries), s.DesiredCanaries)
	switch {
	case s.Promoted:
		return c + " promoted"
	case s.AutoPromote:
		return c + " (auto-promote)"
	}
	return c + " waiting for promotion"
}

// waitsForPromotion: every canary is healthy and only a promotion moves
// the deployment on.
func waitsForPromotion(d *structs.Deployment) bool {
	for _, s := range d.Groups {
		if s.NeedsPromotion() && !s.AutoPromote {
			return strings.Contains(d.StatusDescription, "requires promotion")
		}
	}
	return false
}

// ---- placement failures ----

// writeFailures explains, per group, why allocations could not be placed.
func writeFailures(w io.Writer, failed map[string]*structs.AllocMetric, indent string) {
	for _, g := range slices.Sorted(maps.Keys(failed)) {
		m := failed[g]
		if m == nil {
			continue
		}
		n := 1 + m.CoalescedFailures
		fmt.Fprintf(w, "%sGroup %q: %d allocation(s) cannot be placed\n", indent, g, n)
		for _, l := range metricLines(m) {
			fmt.Fprintf(w, "%s  * %s\n", indent, l)
		}
	}
}

// metricLines explains one AllocMetric: how many nodes were looked at and
// what ruled each of them out.
func metricLines(m *structs.AllocMetric) []string {
	if m.NodesEvaluated == 0 {
		return []string{"no worker node was eligible to evaluate: none ready, or every one cordoned, draining or of another datacenter/pool"}
	}
	out := []string{fmt.Sprintf("%d node(s) evaluated: %d filtered out, %d without enough free resources",
		m.NodesEvaluated, m.NodesFiltered, m.NodesExhausted)}
	for _, k := range byCount(m.ConstraintFiltered) {
		out = append(out, fmt.Sprintf("constraint %q filtered %d node(s)", k, m.ConstraintFiltered[k]))
	}
	for _, k := range byCount(m.DimensionExhausted) {
		out = append(out, fmt.Sprintf("%s exhausted on %d node(s)", k, m.DimensionExhausted[k]))
	}
	return out
}

// failureSummary is the one-line form of writeFailures, for errors.
func failureSummary(failed map[string]*structs.AllocMetric) string {
	var parts []string
	for _, g := range slices.Sorted(maps.Keys(failed)) {
		if m := failed[g]; m != nil {
			parts = append(parts, fmt.Sprintf("group %q: %s", g, strings.Join(metricLines(m), ", ")))
		}
	}
	if len(parts) == 0 {
		return "the scheduler gave no reason"
	}
	return strings.Join(parts, "; ")
}

// byCount orders a metric map's keys by count, largest first, then name.
func byCount(m map[string]int) []string {
	keys := slices.Collect(maps.Keys(m))
	sort.Slice(keys, func(i, j int) bool {
		if m[keys[i]] != m[keys[j]] {
			return m[keys[i]] > m[keys[j]]
		}
		return keys[i] < keys[j]
	})
	return keys
}

// ---- job plan ----

// errPlanBlocked makes `job plan` exit non-zero when a group cannot be
// placed, after printing why.
var errPlanBlocked = errors.New("the scheduler could not place every allocation of this job")

func newJobPlanCmd(g *globals) *cobra.Command {
	var f jobFileFlags
	cmd := &cobra.Command{
		Use:   "plan FILE [-var KEY=VALUE]... [-var-file FILE]...",
		Short: "Dry-run a job file: what the scheduler would change",
		Long: `Parse FILE locally and ask the scheduler what submitting it would do,
without changing anything: per group, allocations to place, to update in
place, to replace (destructive updates) and to stop; and for groups that
cannot be placed, why: how many nodes were evaluated, filtered and
exhausted, which constraint filtered how many, which resource ran out.

The command exits 1 when some allocations could not be placed.`,
	}
	f.add(cmd)
	withNomadFlags(cmd, func(cmd *cobra.Command, args []string) error {
		job, err := f.parse(args[0])
		if err != nil {
			return err
		}
		c, err := g.client()
		if err != nil {
			return err
		}
		p, err := c.Jobs().Plan(job)
		if err != nil {
			return fmt.Errorf("planning job %s: %w", job.ID, err)
		}
		w := cmd.OutOrStdout()
		if f.output == "json" {
			if err := printJSON(w, p); err != nil {
				return err
			}
		} else {
			printPlan(w, job, p)
		}
		if len(p.FailedTGAllocs) > 0 {
			return errPlanBlocked
		}
		return nil
	})
	return cmd
}

func printPlan(w io.Writer, job *structs.Job, p *structs.JobPlanResponse) {
	fmt.Fprintf(w, "Job %q (namespace %s) would become version %d\n\n", job.ID, job.Namespace, p.JobVersion)
	names := slices.Sorted(maps.Keys(p.Groups))
	for _, g := range job.Groups { // groups the plan leaves out still show
		if _, ok := p.Groups[g.Name]; !ok {
			names = append(names, g.Name)
		}
	}
	t := newTable(w, "GROUP", "PLACE", "IN-PLACE", "DESTRUCTIVE", "STOP", "UNCHANGED")
	for _, name := range names {
		gp := p.Groups[name]
		if gp == nil {
			gp = &structs.GroupPlan{}
		}
		t.row(name, gp.Place, gp.InPlace, gp.Destructive, gp.Stop, gp.Ignore)
	}
	_ = t.flush()
	if len(p.FailedTGAllocs) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "Placement failures")
		writeFailures(w, p.FailedTGAllocs, "  ")
	} else {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "All allocations can be placed.")
	}
	for _, warn := range p.Warnings {
		fmt.Fprintf(w, "Warning: %s\n", warn)
	}
}

// ---- job status ----

// jobStatusOutput is `job status JOB -o json`.
type jobStatusOutput struct {
	Job         *structs.Job                    `json:"job"`
	Summary     *structs.JobListStub            `json:"summary,omitempty"`
	Versions    []*structs.Job                  `json:"versions"`
	Deployment  *structs.Deployment             `json:"deployment,omitempty"`
	Allocations []*structs.Allocation           `json:"allocations"`
	Blocked     map[string]*structs.AllocMetric `json:"blocked,omitempty"`
}

func namespaceFlag(cmd *cobra.Command) *string {
	s := new(string)
	cmd.Flags().StringVarP(s, "namespace", "n", structs.DefaultNamespace, "namespace of the job")
	return s
}

func newJobStatusCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status [JOB]",
		Short: "List jobs, or show one: versions, groups, deployment, allocations",
		Long: `Without JOB, list the namespace's jobs with their allocation counts. With
JOB, show the job's versions, each group's allocations by status, the latest
deployment, the allocations and, when some cannot be placed, why.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return fmt.Errorf("%s takes at most one JOB, got %d arguments; usage: %s", cmd.CommandPath(), len(args), cmd.UseLine())
			}
			return nil
		},
	}
	ns := namespaceFlag(cmd)
	out := outputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := checkOutput(*out); err != nil {
			return err
		}
		c, err := g.client()
		if err != nil {
			return err
		}
		if len(args) == 0 {
			return jobList(cmd.OutOrStdout(), c, *ns, *out)
		}
		st, err := readJobStatus(c, *ns, args[0])
		if err != nil {
			return err
		}
		if *out == "json" {
			return printJSON(cmd.OutOrStdout(), st)
		}
		return printJobStatus(cmd.OutOrStdout(), st)
	}
	return cmd
}

func jobList(w io.Writer, c *api.Client, ns, format string) error {
	list, _, err := c.Jobs().List(ns, nil)
	if err != nil {
		return fmt.Errorf("listing jobs: %w", err)
	}
	if list == nil {
		list = []structs.JobListStub{}
	}
	if format == "json" {
		return printJSON(w, list)
	}
	if len(list) == 0 {
		fmt.Fprintf(w, "No jobs in namespace %s.\n", ns)
		return nil
	}
	sort.Slice(list, func(i, j int) bool { return list[i].ID < list[j].ID })
	t := newTable(w, "ID", "TYPE", "STATUS", "VERSION", "RUNNING", "DESIRED", "BLOCKED")
	var blocked []string
	for _, j := range list {
		running, desired := 0, 0
		for _, s := range j.Groups {
			if s != nil {
				running += s.Running
				desired += s.Desired
			}
		}
		b := "-"
		if len(j.Blocked) > 0 {
			b = "yes"
			blocked = append(blocked, fmt.Sprintf("%s: %s", j.ID, failureSummary(j.Blocked)))
		}
		t.row(j.ID, j.Type, jobStatusWord(j.Status, j.Stop), j.Version, running, desired, b)
	}
	if err := t.flush(); err != nil {
		return err
	}
	if len(blocked) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "Blocked placements")
		for _, b := range blocked {
			fmt.Fprintln(w, "  "+b)
		}
	}
	return nil
}

func jobStatusWord(status string, stop bool) string {
	if stop {
		return orDash(status) + " (stopped)"
	}
	return orDash(status)
}

// readJobStatus gathers everything `job status JOB` shows.
func readJobStatus(c *api.Client, ns, id string) (*jobStatusOutput, error) {
	jobs := c.Jobs()
	job, _, err := jobs.Info(ns, id, nil)
	if err != nil {
		return nil, fmt.Errorf("reading job %s: %w", id, err)
	}
	st := &jobStatusOutput{Job: job}
	if st.Versions, _, err = jobs.Versions(ns, id, nil); err != nil {
		return nil, fmt.Errorf("reading versions of job %s: %w", id, err)
	}
	switch d, _, err := jobs.LatestDeployment(ns, id, nil); {
	case err == nil:
		st.Deployment = d
	case !api.IsNotFound(err):
		return nil, fmt.Errorf("reading the deployment of job %s: %w", id, err)
	}
	if st.Allocations, _, err = jobs.Allocations(ns, id, nil); err != nil {
		return nil, fmt.Errorf("listing allocations of job %s: %w", id, err)
	}
	if st.Allocations == nil {
		st.Allocations = []*structs.Allocation{}
	}
	list, _, err := jobs.List(ns, nil)
	if err != nil {
		return nil, fmt.Errorf("listing jobs: %w", err)
	}
	for i := range list {
		if list[i].ID == id {
			st.Summary = &list[i]
		}
	}
	evals, _, err := jobs.Evaluations(ns, id, nil)
	if err != nil {
		return nil, fmt.Errorf("listing evaluations of job %s: %w", id, err)
	}
	st.Blocked = blockedReasons(st.Summary, evals)
	return st, nil
}

// blockedReasons merges the summary's blocked groups with what the job's
// evaluations say: a still-blocked evaluation, and the newest evaluation
// when it failed to place something.
func blockedReasons(sum *structs.JobListStub, evals []*structs.Evaluation) map[string]*structs.AllocMetric {
	out := map[string]*structs.AllocMetric{}
	if sum != nil {
		maps.Copy(out, sum.Blocked)
	}
	var newest *structs.Evaluation
	for _, ev := range evals {
		if ev.Status == structs.EvalStatusCanceled {
			continue
		}
		if newest == nil || ev.CreateIndex > newest.CreateIndex {
			newest = ev
		}
	}
	for _, ev := range evals {
		if ev.Status == structs.EvalStatusBlocked || ev == newest {
			for g, m := range ev.FailedTGAllocs {
				if out[g] == nil {
					out[g] = m
				}
			}
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// maxStatusVersions is how many versions `job status` lists; `job history`
// lists them all.
const maxStatusVersions = 5

func printJobStatus(w io.Writer, st *jobStatusOutput) error {
	j := st.Job
	t := newTable(w)
	t.row("ID", j.ID)
	t.row("Namespace", j.Namespace)
	t.row("Type", orDash(j.Type))
	t.row("Status", jobStatusWord(j.Status, j.Stop))
	t.row("Version", j.Version)
	t.row("Submitted", fmtTime(j.SubmitTime))
	if err := t.flush(); err != nil {
		return err
	}

	fmt.Fprintln(w)
	fmt.Fprintln(w, "Versions")
	t = newTable(w, "VERSION", "SUBMITTED", "STOP", "CHANGES")
	for i, v := range st.Versions {
		if i == maxStatusVersions {
			t.row(fmt.Sprintf("(%d older; see `hive job history %s`)", len(st.Versions)-i, j.ID))
			break
		}
		t.row(v.Version, fmtTime(v.SubmitTime), v.Stop, changeSummary(st.Versions, i))
	}
	if err := t.flush(); err != nil {
		return err
	}

	fmt.Fprintln(w)
	fmt.Fprintln(w, "Groups")
	t = newTable(w, "GROUP", "DESIRED", "PENDING", "RUNNING", "COMPLETE", "FAILED", "LOST")
	for _, g := range j.Groups {
		s := &structs.GroupSummary{Desired: g.Count}
		if st.Summary != nil && st.Summary.Groups[g.Name] != nil {
			s = st.Summary.Groups[g.Name]
		}
		t.row(g.Name, s.Desired, s.Pending, s.Running, s.Complete, s.Failed, s.Lost)
	}
	if err := t.flush(); err != nil {
		return err
	}

	fmt.Fprintln(w)
	if d := st.Deployment; d != nil {
		fmt.Fprintf(w, "Latest deployment %s (job version %d): %s", d.ID, d.JobVersion, d.Status)
		if d.StatusDescription != "" {
			fmt.Fprintf(w, " - %s", d.StatusDescription)
		}
		fmt.Fprintln(w)
		t = newTable(w, "GROUP", "DESIRED", "PLACED", "HEALTHY", "UNHEALTHY", "CANARIES", "AUTO REVERT", "PROGRESS DEADLINE")
		for _, name := range slices.Sorted(maps.Keys(d.Groups)) {
			s := d.Groups[name]
			if s == nil {
				continue
			}
			t.row(name, s.DesiredTotal, s.PlacedAllocs, s.HealthyAllocs, s.UnhealthyAllocs, canaryCell(s), s.AutoRevert, fmtTime(s.RequireProgressBy))
		}
		if err := t.flush(); err != nil {
			return err
		}
	} else {
		fmt.Fprintln(w, "No deployment.")
	}

	fmt.Fprintln(w)
	fmt.Fprintln(w, "Allocations")
	allocs := slices.Clone(st.Allocations)
	sort.SliceStable(allocs, func(a, b int) bool {
		if allocs[a].CreateIndex != allocs[b].CreateIndex {
			return allocs[a].CreateIndex > allocs[b].CreateIndex
		}
		return allocs[a].ID < allocs[b].ID
	})
	t = newTable(w, "ID", "NAME", "NODE", "VERSION", "DESIRED", "STATUS", "HEALTH", "CREATED")
	for _, a := range allocs {
		name := orDash(a.Name)
		if a.Canary {
			name += " (canary)"
		}
		t.row(a.ID, name, orDash(a.NodeID), a.JobVersion, orDash(a.DesiredStatus), orDash(a.ClientStatus), health(a.Healthy), fmtTime(a.CreateTime))
	}
	if err := t.flush(); err != nil {
		return err
	}
	if len(st.Blocked) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "Placement blocked")
		writeFailures(w, st.Blocked, "  ")
	}
	return nil
}

// health prints an allocation's deployment health.
func health(h *bool) string {
	switch {
	case h == nil:
		return "-"
	case *h:
		return "healthy"
	}
	return "unhealthy"
}

// ---- job stop, history, revert ----

func newJobStopCmd(g *globals) *cobra.Command {
	var purge bool
	cmd := &cobra.Command{
		Use:   "stop JOB [--purge]",
		Short: "Stop a job's allocations; --purge also forgets the job",
		Long: `Stop every allocation of JOB. The job stays, marked stopped, with its
version history (` + "`hive job revert`" + ` can bring it back); --purge removes it
altogether.`,
		Args: exactArgs("JOB"),
	}
	cmd.Flags().BoolVar(&purge, "purge", false, "remove the job and its history, not only stop it")
	ns := namespaceFlag(cmd)
	out := outputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := checkOutput(*out); err != nil {
			return err
		}
		c, err := g.client()
		if err != nil {
			return err
		}
		resp, err := c.Jobs().Deregister(*ns, args[0], purge)
		if err != nil {
			return fmt.Errorf("stopping job %s: %w", args[0], err)
		}
		if *out == "json" {
			return printJSON(cmd.OutOrStdout(), resp)
		}
		what := "Stopping"
		if purge {
			what = "Purging"
		}
		fmt.Fprintf(cmd.OutOrStdout(), "%s job %q; evaluation %s stops its allocations.\n", what, args[0], orDash(resp.EvalID))
		return nil
	}
	return cmd
}

func newJobHistoryCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "history JOB",
		Short: "List a job's versions, newest first, with what each changed",
		Args:  exactArgs("JOB"),
	}
	ns := namespaceFlag(cmd)
	out := outputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := checkOutput(*out); err != nil {
			return err
		}
		c, err := g.client()
		if err != nil {
			return err
		}
		versions, _, err := c.Jobs().Versions(*ns, args[0], nil)
		if err != nil {
			return fmt.Errorf("reading versions of job %s: %w", args[0], err)
		}
		if versions == nil {
			versions = []*structs.Job{}
		}
		w := cmd.OutOrStdout()
		if *out == "json" {
			return printJSON(w, versions)
		}
		for i, v := range versions {
			if i > 0 {
				fmt.Fprintln(w)
			}
			t := newTable(w)
			t.row("Version", v.Version)
			t.row("Submitted", fmtTime(v.SubmitTime))
			t.row("Stop", v.Stop)
			if err := t.flush(); err != nil {
				return err
			}
			if i+1 == len(versions) {
				fmt.Fprintln(w, "  (first version kept)")
				continue
			}
			diff := jobDiff(versions[i+1], v)
			if len(diff) == 0 {
				fmt.Fprintln(w, "  no change to groups or tasks")
			}
			for _, d := range diff {
				fmt.Fprintln(w, "  "+d)
			}
		}
		return nil
	}
	return cmd
}

func newJobRevertCmd(g *globals) *cobra.Command {
	var detach bool
	cmd := &cobra.Command{
		Use:   "revert JOB VERSION",
		Short: "Roll a job back to an earlier version and follow the deployment",
		Long: `Make VERSION of JOB current again; it is submitted as a new version and
rolled out like ` + "`hive job run`" + `, which this command follows the same way
unless --detach is given. ` + "`hive job history JOB`" + ` lists the versions.`,
		Args: exactArgs("JOB", "VERSION"),
	}
	cmd.Flags().BoolVarP(&detach, "detach", "d", false, "return once the revert is submitted")
	ns := namespaceFlag(cmd)
	out := outputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := checkOutput(*out); err != nil {
			return err
		}
		v, err := strconv.ParseUint(args[1], 10, 64)
		if err != nil {
			return fmt.Errorf("invalid VERSION %q: give a version number from `hive job history %s`", args[1], args[0])
		}
		c, err := g.client()
		if err != nil {
			return err
		}
		resp, err := c.Jobs().Revert(*ns, args[0], v)
		if err != nil {
			return fmt.Errorf("reverting job %s to version %d: %w", args[0], v, err)
		}
		jobType := ""
		if j, _, err := c.Jobs().Info(*ns, args[0], nil); err == nil {
			jobType = j.Type
		}
		o := &jobRunOutput{JobID: args[0], Namespace: *ns, EvalID: resp.EvalID, JobVersion: resp.JobVersion, Warnings: resp.Warnings}
		return finishSubmit(cmd, c, *out, detach, jobType, o,
			fmt.Sprintf("Job %q reverted to version %d as version %d", args[0], v, resp.JobVersion))
	}
	return cmd
}

// changeSummary is the one-cell form of jobDiff between versions[i] and the
// version before it.
func changeSummary(versions []*structs.Job, i int) string {
	if i+1 >= len(versions) {
		return "-"
	}
	d := jobDiff(versions[i+1], versions[i])
	switch len(d) {
	case 0:
		return "none"
	case 1:
		return d[0]
	}
	return fmt.Sprintf("%s (+%d more)", d[0], len(d)-1)
}

// jobDiff lists what changed from old to cur in the fields operators change
// most: counts, images, commands, env, users and resources.
func jobDiff(old, cur *structs.Job) []string {
	var out []string
	if old.Stop != cur.Stop {
		out = append(out, fmt.Sprintf("stop %v → %v", old.Stop, cur.Stop))
	}
	for _, g := range cur.Groups {
		og := old.LookupGroup(g.Name)
		if og == nil {
			out = append(out, fmt.Sprintf("group %s added (count %d)", g.Name, g.Count))
			continue
		}
		if og.Count != g.Count {
			out = append(out, fmt.Sprintf("group %s: count %d → %d", g.Name, og.Count, g.Count))
		}
		for _, t := range g.Tasks {
			var ot *structs.Task
			for _, x := range og.Tasks {
				if x.Name == t.Name {
					ot = x
				}
			}
			name := g.Name + "." + t.Name
			if ot == nil {
				out = append(out, fmt.Sprintf("task %s added", name))
				continue
			}
			out = append(out, taskDiff(name, ot, t)...)
		}
		for _, x := range og.Tasks {
			found := false
			for _, t := range g.Tasks {
				found = found || t.Name == x.Name
			}
			if !found {
				out = append(out, fmt.Sprintf("task %s.%s removed", g.Name, x.Name))
			}
		}
	}
	for _, og := range old.Groups {
		if cur.LookupGroup(og.Name) == nil {
			out = append(out, fmt.Sprintf("group %s removed", og.Name))
		}
	}
	return out
}

func taskDiff(name string, a, b *structs.Task) []string {
	var out []string
	if a.Config.Image != b.Config.Image {
		out = append(out, fmt.Sprintf("task %s: image %s → %s", name, a.Config.Image, b.Config.Image))
	}
	if a.Config.Command != b.Config.Command || !slices.Equal(a.Config.Args, b.Config.Args) || !slices.Equal(a.Config.Entrypoint, b.Config.Entrypoint) {
		out = append(out, fmt.Sprintf("task %s: command changed", name))
	}
	if a.User != b.User {
		out = append(out, fmt.Sprintf("task %s: user %q → %q", name, a.User, b.User))
	}
	if a.Resources != b.Resources {
		out = append(out, fmt.Sprintf("task %s: resources cpu %d → %d MHz, memory %d → %d MiB", name,
			a.Resources.CPU, b.Resources.CPU, a.Resources.MemoryMB, b.Resources.MemoryMB))
	}
	keys := map[string]bool{}
	for k := range a.Env {
		keys[k] = true
	}
	for k := range b.Env {
		keys[k] = true
	}
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		av, aok := a.Env[k]
		bv, bok := b.Env[k]
		switch {
		case !aok:
			out = append(out, fmt.Sprintf("task %s: env %s=%q added", name, k, bv))
		case !bok:
			out = append(out, fmt.Sprintf("task %s: env %s removed", name, k))
		case av != bv:
			out = append(out, fmt.Sprintf("task %s: env %s %q → %q", name, k, av, bv))
		}
	}
	if !reflectEqualSecurity(a.Security, b.Security) {
		out = append(out, fmt.Sprintf("task %s: security context changed", name))
	}
	return out
}

func reflectEqualSecurity(a, b structs.SecurityContext) bool {
	return a.ReadOnlyRootfs == b.ReadOnlyRootfs && a.Privileged == b.Privileged &&
		slices.Equal(a.CapAdd, b.CapAdd) && slices.Equal(a.CapDrop, b.CapDrop)
}
