package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

// newJobPromoteCmd is `hive job promote`: the end of a deployment's canary
// phase, after which the rest of the update rolls max_parallel at a time.
func newJobPromoteCmd(g *globals) *cobra.Command {
	var detach bool
	cmd := &cobra.Command{
		Use:   "promote JOB",
		Short: "Promote the canaries of a job's deployment and follow the rest of the rollout",
		Long: `A job whose update block sets canary = N starts each destructive update
with N allocations of the new version beside the old ones, and goes no
further until it is promoted. Once every canary is healthy (see
` + "`hive job status JOB`" + `), promote the deployment: the canaries count as
updated and the remaining allocations are replaced max_parallel at a time.
The command then follows the deployment like ` + "`hive job run`" + ` unless
--detach is given. With auto_promote = true the deployment promotes itself.`,
		Example: `  hive job promote web
  hive job promote web -n prod --detach`,
		Args: exactArgs("JOB"),
	}
	cmd.Flags().BoolVarP(&detach, "detach", "d", false, "return once the promotion is recorded")
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
		resp, err := c.Jobs().Promote(*ns, args[0])
		if err != nil {
			return fmt.Errorf("promoting job %s: %w", args[0], err)
		}
		jobType := ""
		if j, _, err := c.Jobs().Info(*ns, args[0], nil); err == nil {
			jobType = j.Type
		}
		o := &jobRunOutput{JobID: args[0], Namespace: *ns, EvalID: resp.EvalID, JobVersion: resp.JobVersion, Warnings: resp.Warnings}
		return finishSubmit(cmd, c, *out, detach, jobType, o,
			fmt.Sprintf("Deployment of job %q version %d promoted", args[0], resp.JobVersion))
	}
	return cmd
}
