package structs

import (
	"fmt"
	"time"
)

// Job types.
const (
	JobTypeService = "service"
	JobTypeBatch   = "batch"
)

// Job statuses.
const (
	JobStatusPending = "pending"
	JobStatusRunning = "running"
	JobStatusDead    = "dead"
)

// Constraint operands (as Nomad's).
const (
	ConstraintEqual         = "="
	ConstraintNotEqual      = "!="
	ConstraintRegex         = "regexp"
	ConstraintSetContains   = "set_contains"
	ConstraintDistinctHosts = "distinct_hosts"
	ConstraintVersion       = "version"
)

// Job is a declared workload: groups of tasks to keep running. It follows
// Nomad's jobspec so existing container jobs carry over.
type Job struct {
	ID        string
	Name      string
	Namespace string
	Type      string
	Priority  int
	// Datacenters and NodePool are matched against node labels "datacenter"
	// and "node_pool" (empty: any).
	Datacenters []string
	NodePool    string
	Meta        map[string]string
	// Labels apply to every group's allocations (see TaskGroup.Labels).
	Labels      map[string]string
	Constraints []*Constraint
	Affinities  []*Affinity
	Spreads     []*Spread
	Update      *UpdateStrategy
	Groups      []*TaskGroup

	// Stop is set by `hive job stop`; the job stays for history unless
	// purged.
	Stop       bool
	Status     string
	Version    uint64
	SubmitTime time.Time

	CreateIndex    uint64
	ModifyIndex    uint64
	JobModifyIndex uint64
}

// LookupGroup returns the group named name, or nil.
func (j *Job) LookupGroup(name string) *TaskGroup {
	for _, g := range j.Groups {
		if g.Name == name {
			return g
		}
	}
	return nil
}

// TaskGroup is the unit of placement: Count copies of its tasks, each copy
// one allocation on one node.
type TaskGroup struct {
	Name  string
	Count int
	Meta  map[string]string
	// Labels are what network policies select the group's allocations
	// by, with the job's labels (the group's win) and LabelJob/LabelGroup.
	Labels map[string]string
	// Ports are published on the worker's address (network block).
	Ports       []PortMapping
	Constraints []*Constraint
	Affinities  []*Affinity
	Spreads     []*Spread
	Update      *UpdateStrategy
	Restart     *RestartPolicy
	Reschedule  *ReschedulePolicy
	Tasks       []*Task
}

// Resources is the sum of the group's task resources, what one allocation
// of the group takes on a node.
func (g *TaskGroup) Resources() Resources {
	var r Resources
	for _, t := range g.Tasks {
		r.CPU += t.Resources.CPU
		r.MemoryMB += t.Resources.MemoryMB
	}
	return r
}

// Constraint filters nodes. LTarget and RTarget may reference node fields
// with ${node.unique.id}, ${node.datacenter}, ${attr.<key>}, ${meta.<key>}.
type Constraint struct {
	LTarget string
	RTarget string
	Operand string
}

func (c *Constraint) String() string { return fmt.Sprintf("%s %s %s", c.LTarget, c.Operand, c.RTarget) }

// Affinity prefers (positive Weight) or avoids (negative) nodes; Weight is
// -100..100.
type Affinity struct {
	LTarget string
	RTarget string
	Operand string
	Weight  int
}

// Spread spreads allocations over the values of a node attribute.
type Spread struct {
	Attribute string
	Weight    int
	Targets   []SpreadTarget
}

// SpreadTarget asks for a share of allocations on one attribute value.
type SpreadTarget struct {
	Value   string
	Percent int
}

// UpdateStrategy drives rolling updates. With Canary > 0 a destructive
// update first places Canary allocations of the new version beside the old
// ones and waits for promotion (`hive job promote`, or AutoPromote once
// they are healthy) before rolling the rest MaxParallel at a time.
type UpdateStrategy struct {
	MaxParallel     int
	MinHealthyTime  time.Duration
	HealthyDeadline time.Duration
	AutoRevert      bool
	Canary          int
	AutoPromote     bool
}

// DefaultUpdateStrategy matches Nomad's defaults.
func DefaultUpdateStrategy() *UpdateStrategy {
	return &UpdateStrategy{MaxParallel: 1, MinHealthyTime: 10 * time.Second, HealthyDeadline: 5 * time.Minute}
}

// ReschedulePolicy says how failed allocations are replaced.
type ReschedulePolicy struct {
	Attempts      int
	Interval      time.Duration
	Delay         time.Duration
	DelayFunction string // constant, exponential, fibonacci
	MaxDelay      time.Duration
	Unlimited     bool
}

// DefaultServiceReschedulePolicy matches Nomad's service default.
func DefaultServiceReschedulePolicy() *ReschedulePolicy {
	return &ReschedulePolicy{Delay: 30 * time.Second, DelayFunction: "exponential", MaxDelay: time.Hour, Unlimited: true}
}

// DefaultBatchReschedulePolicy matches Nomad's batch default.
func DefaultBatchReschedulePolicy() *ReschedulePolicy {
	return &ReschedulePolicy{Attempts: 1, Interval: 24 * time.Hour, Delay: 5 * time.Second, DelayFunction: "constant"}
}

// Evaluation statuses and triggers.
const (
	EvalStatusPending  = "pending"
	EvalStatusComplete = "complete"
	EvalStatusFailed   = "failed"
	EvalStatusBlocked  = "blocked"
	EvalStatusCanceled = "canceled"

	EvalTriggerJobRegister   = "job-register"
	EvalTriggerJobDeregister = "job-deregister"
	EvalTriggerNodeUpdate    = "node-update"
	EvalTriggerNodeDrain     = "node-drain"
	EvalTriggerAllocFailure  = "alloc-failure"
	EvalTriggerRollingUpdate = "rolling-update"
	EvalTriggerQueuedAllocs  = "queued-allocs"
	EvalTriggerRetryFailed   = "retry-failed"
	EvalTriggerPromotion     = "deployment-promotion"
)

// Evaluation asks the scheduler to reconcile one job with the cluster.
type Evaluation struct {
	ID           string
	Namespace    string
	JobID        string
	Type         string
	Priority     int
	TriggeredBy  string
	NodeID       string
	DeploymentID string
	Status       string
	// StatusDescription says why an evaluation failed or is blocked.
	StatusDescription string
	// FailedTGAllocs explains, per group, why allocations could not be
	// placed (shown by `job plan` and `job status`).
	FailedTGAllocs map[string]*AllocMetric
	// QueuedAllocations counts, per group, allocations still to place.
	QueuedAllocations map[string]int
	BlockedEval       string
	PreviousEval      string
	WaitUntil         time.Time
	CreateTime        time.Time
	ModifyTime        time.Time

	CreateIndex uint64
	ModifyIndex uint64
}

// AllocMetric explains a placement decision.
type AllocMetric struct {
	NodesEvaluated     int
	NodesFiltered      int
	NodesExhausted     int
	ConstraintFiltered map[string]int
	DimensionExhausted map[string]int
	CoalescedFailures  int
}

// Deployment statuses.
const (
	DeploymentRunning    = "running"
	DeploymentSuccessful = "successful"
	DeploymentFailed     = "failed"
	DeploymentCancelled  = "cancelled"
)

// Deployment tracks a rolling update of one job version.
type Deployment struct {
	ID                string
	Namespace         string
	JobID             string
	JobVersion        uint64
	Status            string
	StatusDescription string
	Groups            map[string]*DeploymentState
	CreateTime        time.Time
	ModifyTime        time.Time

	CreateIndex uint64
	ModifyIndex uint64
}

// DeploymentState is one group's progress in a deployment.
type DeploymentState struct {
	AutoRevert bool
	// AutoPromote: the deployment watcher promotes the canaries once they
	// are all healthy.
	AutoPromote  bool
	DesiredTotal int
	// DesiredCanaries is how many canaries the group runs before the
	// update goes on (0: no canary phase); PlacedCanaries are their
	// allocation IDs. Promoted is set once, by `hive job promote` or the
	// watcher, and only then does the rolling update continue.
	DesiredCanaries   int
	PlacedCanaries    []string
	Promoted          bool
	PlacedAllocs      int
	HealthyAllocs     int
	UnhealthyAllocs   int
	RequireProgressBy time.Time
}

// NeedsPromotion reports whether the group waits in its canary phase.
func (s *DeploymentState) NeedsPromotion() bool {
	return s != nil && s.DesiredCanaries > 0 && !s.Promoted
}

// Plan is the scheduler's answer to an evaluation: allocations to stop and
// to place, per node. The leader applies it against the latest state.
type Plan struct {
	EvalID   string
	Priority int
	Job      *Job
	// NodeUpdate holds allocations to stop or mark (DesiredStatus stop).
	NodeUpdate map[string][]*Allocation
	// NodeAllocation holds new and in-place updated allocations.
	NodeAllocation map[string][]*Allocation
	Deployment     *Deployment
	// FailedTGAllocs and Queued are copied into the evaluation.
	FailedTGAllocs map[string]*AllocMetric
	Queued         map[string]int
}

// AppendStop adds a stop of a to the plan.
func (p *Plan) AppendStop(a *Allocation, desc string) {
	cp := *a
	cp.DesiredStatus = AllocDesiredStop
	cp.DesiredDescription = desc
	if p.NodeUpdate == nil {
		p.NodeUpdate = map[string][]*Allocation{}
	}
	p.NodeUpdate[a.NodeID] = append(p.NodeUpdate[a.NodeID], &cp)
}

// AppendAlloc adds a placement (or in-place update) to the plan.
func (p *Plan) AppendAlloc(a *Allocation) {
	if p.NodeAllocation == nil {
		p.NodeAllocation = map[string][]*Allocation{}
	}
	p.NodeAllocation[a.NodeID] = append(p.NodeAllocation[a.NodeID], a)
}

// IsNoOp reports whether the plan changes nothing.
func (p *Plan) IsNoOp() bool {
	return len(p.NodeUpdate) == 0 && len(p.NodeAllocation) == 0 && p.Deployment == nil
}

// EndpointLabels are the labels network policies select an allocation of
// group g by: the job's, then the group's, then LabelJob and LabelGroup.
func (j *Job) EndpointLabels(g *TaskGroup) map[string]string {
	out := make(map[string]string, len(j.Labels)+len(g.Labels)+2)
	for k, v := range j.Labels {
		out[k] = v
	}
	for k, v := range g.Labels {
		out[k] = v
	}
	out[LabelJob] = j.ID
	out[LabelGroup] = g.Name
	return out
}

// PortMapping is a port of a group's network block: published on the
// worker's address at Static, or at a port the worker picks when Static is
// 0, and forwarded (TCP and UDP) to To in the allocation (To 0: the same
// number as the host port).
type PortMapping struct {
	Label  string
	Static int `json:",omitempty"`
	To     int `json:",omitempty"`
}

// PublishedPort is a port a worker published for an allocation.
type PublishedPort struct {
	Label    string `json:"label"`
	HostPort int    `json:"host_port"`
	To       int    `json:"to"`
}

// ValidatePorts checks a group's ports: labels present and unique, static
// and target ports within 0-65535, no static port twice.
func ValidatePorts(ports []PortMapping) error {
	labels, statics := map[string]bool{}, map[int]bool{}
	for i, p := range ports {
		switch {
		case p.Label == "" || len(p.Label) > 63:
			return fmt.Errorf("port %d: a label of 1-63 characters is required", i)
		case labels[p.Label]:
			return fmt.Errorf("port %q is given twice", p.Label)
		case p.Static < 0 || p.Static > 65535:
			return fmt.Errorf("port %q: static %d is out of range 1-65535", p.Label, p.Static)
		case p.To < 0 || p.To > 65535:
			return fmt.Errorf("port %q: to %d is out of range 1-65535", p.Label, p.To)
		case p.Static != 0 && statics[p.Static]:
			return fmt.Errorf("port %q: static port %d is published twice", p.Label, p.Static)
		}
		labels[p.Label], statics[p.Static] = true, p.Static != 0
	}
	return nil
}
