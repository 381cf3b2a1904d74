package scheduler

import (
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hivesec/hive/structs"
)

// Stop descriptions, shown in `hive alloc status`.
const (
	descJobStopped   = "alloc not needed: job stopped"
	descJobMissing   = "alloc not needed: job deregistered"
	descGroupRemoved = "alloc not needed: group removed from the job"
	descScaleDown    = "alloc not needed: group count reduced"
	descLost         = "alloc lost: its node is down"
	descRescheduled  = "alloc rescheduled because it failed"
	descMigrated     = "alloc migrated: its node is draining"
	descUpdated      = "alloc replaced by a new job version"
	descCanaryStale  = "alloc not needed: canary of a deployment that was not promoted"
	descByCanary     = "alloc replaced by a promoted canary"
)

// reconciler compares a job's allocations with what the job asks for. It
// decides what to stop, place, update in place and wait for; it does not
// pick nodes. Pure: everything comes in through its fields.
type reconciler struct {
	job        *structs.Job // nil: deregistered
	jobID, ns  string
	allocs     []*structs.Allocation
	deployment *structs.Deployment // latest, may be nil
	now        time.Time
	newID      func() string
	node       func(id string) *structs.Node
	// inPlaceOK reports whether a's node still suits the new version of
	// its group (constraints may have changed with the tasks unchanged).
	inPlaceOK func(a *structs.Allocation, tg *structs.TaskGroup) bool
}

type stopReq struct {
	alloc        *structs.Allocation
	desc         string
	clientStatus string // set on the stopped copy when not empty (lost)
}

// placeReq is one allocation to place. A replacement names the allocation
// it replaces (prev); when stopPrev is set, prev is stopped only if the
// replacement finds a node, as Nomad backs out the stop otherwise.
type placeReq struct {
	name       string
	index      int
	prev       *structs.Allocation
	stopPrev   bool
	stopDesc   string
	avoidPrev  bool // rescheduled: prefer another node
	reschedule bool // carry RescheduleTimes forward, plus now
	canary     bool // placed beside the old allocations, replaces nothing yet
}

type groupResult struct {
	tg      *structs.TaskGroup
	place   []placeReq
	inPlace []*structs.Allocation
	// deployment state of the group, when it is part of one
	dstate *structs.DeploymentState

	stopped, lost, rescheduleNow, rescheduleLater, migrate, destructive, ignored, canaries int
}

type reconcileResult struct {
	stops      []stopReq
	groups     []*groupResult
	followUps  []time.Time // reschedule evaluations to create
	deployment *structs.Deployment
	// deploymentNew: created by this evaluation; deploymentChanged: an
	// existing one changed status (cancelled).
	deploymentNew, deploymentChanged bool
	// drainFollowUps: drain evaluations to create, for when the
	// replacement that holds a migration back will be healthy.
	drainFollowUps []time.Time
}

func (r *reconciler) compute() *reconcileResult {
	res := &reconcileResult{}
	if r.job == nil || r.job.Stop {
		desc := descJobMissing
		if r.job != nil {
			desc = descJobStopped
		}
		for _, a := range r.allocs {
			if a.DesiredStatus == structs.AllocDesiredRun && !a.Terminal() {
				res.stops = append(res.stops, stopReq{alloc: a, desc: desc})
			}
		}
		if d := r.deployment; d != nil && d.Status == structs.DeploymentRunning {
			cp := copyDeployment(d)
			cp.Status, cp.StatusDescription, cp.ModifyTime = structs.DeploymentCancelled, "Cancelled because the job is stopped", r.now
			res.deployment, res.deploymentChanged = cp, true
		}
		return res
	}

	byGroup := map[string][]*structs.Allocation{}
	for _, a := range r.allocs {
		byGroup[a.Group] = append(byGroup[a.Group], a)
	}
	for name, allocs := range byGroup {
		if r.job.LookupGroup(name) != nil {
			continue
		}
		for _, a := range allocs {
			if a.DesiredStatus == structs.AllocDesiredRun && !a.Terminal() {
				res.stops = append(res.stops, stopReq{alloc: a, desc: descGroupRemoved})
			}
		}
	}
	sort.Slice(res.stops, func(i, j int) bool { return res.stops[i].alloc.Name < res.stops[j].alloc.Name })

	r.prepareDeployment(res)
	for _, tg := range r.job.Groups {
		res.groups = append(res.groups, r.group(res, tg, byGroup[tg.Name]))
	}
	r.finishDeployment(res)
	res.followUps = batchTimes(res.followUps, 5*time.Second)
	res.drainFollowUps = batchTimes(res.drainFollowUps, time.Second)
	return res
}

// updateStrategy is the group's rolling-update strategy, nil when updates
// are not rolled (batch jobs, no update block, max_parallel 0).
func (r *reconciler) updateStrategy(tg *structs.TaskGroup) *structs.UpdateStrategy {
	if r.job.Type == structs.JobTypeBatch {
		return nil
	}
	u := tg.Update
	if u == nil {
		u = r.job.Update
	}
	if u == nil || u.MaxParallel <= 0 {
		return nil
	}
	return u
}

// prepareDeployment picks the deployment this evaluation works in: the
// running one of the job's version, or a new one (kept only if some group
// with an update strategy places or replaces something).
func (r *reconciler) prepareDeployment(res *reconcileResult) {
	d := r.deployment
	if d != nil && d.JobVersion == r.job.Version {
		if d.Status == structs.DeploymentRunning {
			res.deployment = copyDeployment(d)
		}
		return // a finished deployment of this version is not restarted
	}
	res.deployment = &structs.Deployment{
		ID: r.newID(), Namespace: r.ns, JobID: r.jobID, JobVersion: r.job.Version,
		Status: structs.DeploymentRunning, StatusDescription: "Deployment is running",
		Groups: map[string]*structs.DeploymentState{}, CreateTime: r.now, ModifyTime: r.now,
	}
	res.deploymentNew = true
}

func (r *reconciler) finishDeployment(res *reconcileResult) {
	if !res.deploymentNew {
		return
	}
	used := false
	for _, g := range res.groups {
		if g.dstate != nil && (len(g.place) > 0 || g.destructive > 0) {
			used = true
		}
	}
	if used {
		return
	}
	// Nothing rolls: no new deployment. One still running for an older
	// version is superseded.
	res.deployment, res.deploymentNew = nil, false
	for _, g := range res.groups {
		g.dstate = nil
	}
	if d := r.deployment; d != nil && d.Status == structs.DeploymentRunning && d.JobVersion < r.job.Version {
		cp := copyDeployment(d)
		cp.Status, cp.StatusDescription, cp.ModifyTime = structs.DeploymentCancelled, fmt.Sprintf("Cancelled: superseded by job version %d", r.job.Version), r.now
		res.deployment, res.deploymentChanged = cp, true
	}
}

func copyDeployment(d *structs.Deployment) *structs.Deployment {
	cp := *d
	cp.Groups = make(map[string]*structs.DeploymentState, len(d.Groups))
	for k, v := range d.Groups {
		s := *v
		// The scheduler appends to it: the stored deployment must not see.
		s.PlacedCanaries = slices.Clone(v.PlacedCanaries)
		cp.Groups[k] = &s
	}
	return &cp
}

// slot kinds of a group's allocations that still want to run.
const (
	kindRunning = iota
	kindDone    // batch, complete: counts toward count, never replaced
	kindLost
	kindFailedNow   // reschedule now
	kindFailedLater // reschedule when its delay is over
	kindFailedStay  // out of reschedule attempts: keeps its slot
	kindMigrate
)

type slot struct {
	a     *structs.Allocation
	index int
	kind  int
	at    time.Time
	dup   bool // another allocation holds the same index
}

func (r *reconciler) group(res *reconcileResult, tg *structs.TaskGroup, allocs []*structs.Allocation) *groupResult {
	g := &groupResult{tg: tg}
	policy := reschedulePolicy(r.job, tg)
	ds, strategy := r.groupDeployment(res, tg)
	stale := r.staleCanaries(res, tg)
	// Until its deployment is promoted a canary stands apart: it holds no
	// slot of the group and replaces nothing yet.
	var canaries []*structs.Allocation
	var slots []*slot
	taken := map[int]bool{}
	for _, a := range allocs {
		if a.DesiredStatus != structs.AllocDesiredRun {
			continue
		}
		if stale[a.ID] {
			res.stops = append(res.stops, stopReq{alloc: a, desc: descCanaryStale})
			g.stopped++
			continue
		}
		if ds != nil && !ds.Promoted && a.Canary && a.DeploymentID == res.deployment.ID {
			canaries = append(canaries, a)
			continue
		}
		s := &slot{a: a, index: nameIndex(a.Name)}
		node := r.node(a.NodeID)
		switch {
		case a.ClientStatus == structs.AllocComplete:
			if r.job.Type != structs.JobTypeBatch {
				g.ignored++
				continue
			}
			s.kind = kindDone
		case a.ClientStatus == structs.AllocFailed:
			at, ok := rescheduleAt(a, policy, r.now)
			switch {
			case !ok:
				s.kind = kindFailedStay
			case at.After(r.now):
				s.kind, s.at = kindFailedLater, at
			default:
				s.kind = kindFailedNow
			}
		case a.ClientStatus == structs.AllocLost || node == nil || node.Status == structs.NodeStatusDown:
			s.kind = kindLost
		case node.Draining:
			s.kind = kindMigrate
		}
		slots = append(slots, s)
	}
	// Stable order: by index, then creation, so duplicates are decided the
	// same way every time. A promoted canary shares its index with the
	// allocation it replaces and comes first: the other is the duplicate.
	promoted := func(a *structs.Allocation) bool { return a.Canary && a.JobVersion == r.job.Version }
	sort.SliceStable(slots, func(i, j int) bool {
		if slots[i].index != slots[j].index {
			return slots[i].index < slots[j].index
		}
		if pi, pj := promoted(slots[i].a), promoted(slots[j].a); pi != pj {
			return pi
		}
		return slots[i].a.CreateIndex < slots[j].a.CreateIndex
	})
	// In index order the holder of a duplicate's index is the last slot
	// that took an index.
	var holder *slot
	var byCanary map[*slot]bool
	for _, s := range slots {
		if s.index < 0 || taken[s.index] {
			s.dup = true
			if holder != nil && holder.index == s.index && promoted(holder.a) && s.a.JobVersion != r.job.Version {
				if byCanary == nil {
					byCanary = map[*slot]bool{}
				}
				byCanary[s] = true
			}
			continue
		}
		taken[s.index] = true
		holder = s
	}
	// What a promoted canary replaces stops now, whatever the count.
	if len(byCanary) > 0 {
		kept := slots[:0]
		for _, s := range slots {
			if byCanary[s] {
				res.stops = append(res.stops, stopReq{alloc: s.a, desc: descByCanary})
				g.stopped++
				continue
			}
			kept = append(kept, s)
		}
		slots = kept
	}

	// Too many: stop the ones out of range or without a proper index
	// first, then the ones needing a replacement anyway, then the highest
	// index.
	if extra := len(slots) - tg.Count; extra > 0 {
		cands := make([]*slot, 0, len(slots))
		for _, s := range slots {
			if s.kind != kindDone {
				cands = append(cands, s)
			}
		}
		rank := func(s *slot) int {
			switch {
			case s.dup || s.index >= tg.Count:
				return 0
			case s.kind != kindRunning:
				return 1
			}
			return 2
		}
		sort.SliceStable(cands, func(i, j int) bool {
			ri, rj := rank(cands[i]), rank(cands[j])
			if ri != rj {
				return ri < rj
			}
			return cands[i].index > cands[j].index
		})
		stop := map[*slot]bool{}
		for _, s := range cands[:min(extra, len(cands))] {
			stop[s] = true
			req := stopReq{alloc: s.a, desc: descScaleDown}
			if s.kind == kindLost {
				req.clientStatus = structs.AllocLost
			}
			res.stops = append(res.stops, req)
			g.stopped++
			if !s.dup {
				delete(taken, s.index)
			}
		}
		kept := slots[:0]
		for _, s := range slots {
			if !stop[s] {
				kept = append(kept, s)
			}
		}
		slots = kept
	}

	// A new deployment that replaces allocations destructively starts
	// with canaries when the strategy asks for them; the canary phase lasts
	// until the deployment is promoted.
	canarying := false
	if ds != nil {
		if res.deploymentNew && strategy.Canary > 0 && ds.DesiredCanaries == 0 && r.needsReplacing(tg, slots) {
			// More canaries than count would only be stopped at promotion.
			ds.DesiredCanaries = min(strategy.Canary, tg.Count)
			res.deployment.StatusDescription = "Deployment is running: canaries wait for promotion (hive job promote)"
			if strategy.AutoPromote {
				res.deployment.StatusDescription = "Deployment is running: canaries are promoted once healthy"
			}
		}
		canarying = ds.NeedsPromotion()
	}

	// Drains move at most max_parallel allocations of a group at a time,
	// as Nomad's drainer: a migration is in flight from the moment its
	// replacement is placed until that replacement is healthy, whatever
	// became of the allocation it replaced (still stopping or long gone).
	migrateBudget := 1
	if u := tg.Update; u != nil && u.MaxParallel > 0 {
		migrateBudget = u.MaxParallel
	} else if u := r.job.Update; u != nil && u.MaxParallel > 0 {
		migrateBudget = u.MaxParallel
	}
	inFlight, nextHealthy := r.migrationsInFlight(tg, allocs)
	migrateBudget -= inFlight
	held := false

	var update []*slot
	for _, s := range slots {
		switch s.kind {
		case kindLost:
			res.stops = append(res.stops, stopReq{alloc: s.a, desc: descLost, clientStatus: structs.AllocLost})
			g.place = append(g.place, placeReq{name: s.a.Name, index: s.index, prev: s.a})
			g.lost++
		case kindFailedNow:
			g.place = append(g.place, placeReq{name: s.a.Name, index: s.index, prev: s.a, stopPrev: true,
				stopDesc: descRescheduled, avoidPrev: true, reschedule: true})
			g.rescheduleNow++
		case kindFailedLater:
			res.followUps = append(res.followUps, s.at)
			g.rescheduleLater++
		case kindMigrate:
			if migrateBudget > 0 {
				migrateBudget--
				g.place = append(g.place, placeReq{name: s.a.Name, index: s.index, prev: s.a, stopPrev: true, stopDesc: descMigrated})
				g.migrate++
			} else {
				held = true
				update = append(update, s)
			}
		case kindRunning:
			update = append(update, s)
		}
	}

	// A migration held back for a replacement that only this scheduler
	// judges: look again when it will have been up min_healthy_time, as
	// nothing else changes in state then.
	if held && !nextHealthy.IsZero() {
		res.drainFollowUps = append(res.drainFollowUps, nextHealthy)
	}

	if canarying {
		r.placeCanaries(res, g, ds, canaries, slots, allocs)
	}

	// Missing: lowest free indexes first. A scale-up waits for the
	// promotion: its allocations are of the new version.
	for i, n := 0, tg.Count-len(slots); n > 0 && !canarying; i++ {
		if !taken[i] {
			taken[i] = true
			g.place = append(g.place, placeReq{name: allocName(r.jobID, tg.Name, i), index: i})
			n--
		}
	}

	// Updates: in place when the tasks are unchanged, else destructive,
	// rolled max_parallel at a time within the deployment.
	limit := len(update)
	if strategy != nil {
		limit = 0
		if ds != nil && !canarying {
			limit = strategy.MaxParallel
			for _, a := range allocs {
				if a.DeploymentID == res.deployment.ID && a.Group == tg.Name && a.Healthy != nil && !*a.Healthy {
					limit = 0 // unhealthy: wait for the deployment watcher
					break
				}
				if live(a) && a.DeploymentID == res.deployment.ID && a.Healthy == nil {
					limit--
				}
			}
		}
	}
	for _, s := range update {
		a := s.a
		if a.JobVersion == r.job.Version {
			continue
		}
		if tasksEqual(a.Tasks, tg.Tasks) && r.inPlaceOK(a, tg) {
			cp := *a
			cp.JobVersion, cp.Tasks, cp.ModifyTime = r.job.Version, tg.Tasks, r.now
			g.inPlace = append(g.inPlace, &cp)
			continue
		}
		if limit <= 0 {
			continue
		}
		limit--
		g.place = append(g.place, placeReq{name: a.Name, index: s.index, prev: a, stopPrev: true, stopDesc: descUpdated})
		g.destructive++
	}
	if ds != nil {
		ds.DesiredTotal = tg.Count
	}
	g.dstate = ds
	return g
}

// staleCanaries are the live canaries of the job's latest deployment, of
// group tg, that will never be promoted: the deployment failed, or another
// one (a newer job version) took its place. Nomad stops them too.
func (r *reconciler) staleCanaries(res *reconcileResult, tg *structs.TaskGroup) map[string]bool {
	d := r.deployment
	if d == nil || (res.deployment != nil && res.deployment.ID == d.ID) {
		return nil
	}
	st := d.Groups[tg.Name]
	if st == nil || st.Promoted || len(st.PlacedCanaries) == 0 {
		return nil
	}
	out := make(map[string]bool, len(st.PlacedCanaries))
	for _, id := range st.PlacedCanaries {
		out[id] = true
	}
	return out
}

// replaces reports whether s's allocation needs a destructive update to
// the job's version.
func (r *reconciler) replaces(tg *structs.TaskGroup, s *slot) bool {
	a := s.a
	return (s.kind == kindRunning || s.kind == kindMigrate) && a.JobVersion != r.job.Version &&
		!(tasksEqual(a.Tasks, tg.Tasks) && r.inPlaceOK(a, tg))
}

func (r *reconciler) needsReplacing(tg *structs.TaskGroup, slots []*slot) bool {
	for _, s := range slots {
		if r.replaces(tg, s) {
			return true
		}
	}
	return false
}

// placeCanaries tops the group's canaries up to the desired number. A lost
// canary is replaced; a failed or unhealthy one is not (the deployment
// watcher fails the deployment). Canaries take the names of allocations
// they will replace, lowest index first, so that promotion stops those.
func (r *reconciler) placeCanaries(res *reconcileResult, g *groupResult, ds *structs.DeploymentState,
	canaries []*structs.Allocation, slots []*slot, allocs []*structs.Allocation) {
	held := map[int]bool{}
	n := 0
	for _, a := range canaries {
		if node := r.node(a.NodeID); a.ClientStatus == structs.AllocLost || node == nil || node.Status == structs.NodeStatusDown {
			res.stops = append(res.stops, stopReq{alloc: a, desc: descLost, clientStatus: structs.AllocLost})
			g.lost++
			continue
		}
		held[nameIndex(a.Name)] = true
		n++
	}
	if n >= ds.DesiredCanaries {
		return
	}
	for _, a := range allocs {
		if a.DeploymentID == res.deployment.ID && a.Healthy != nil && !*a.Healthy {
			return // failing: the watcher ends the deployment
		}
	}
	var idx []int
	for _, s := range slots { // by index
		if !s.dup && s.index < g.tg.Count && !held[s.index] && r.replaces(g.tg, s) {
			idx = append(idx, s.index)
			held[s.index] = true
		}
	}
	for i := 0; i < g.tg.Count; i++ {
		if !held[i] {
			idx = append(idx, i)
		}
	}
	for _, i := range idx[:min(len(idx), ds.DesiredCanaries-n)] {
		g.place = append(g.place, placeReq{name: allocName(r.jobID, g.tg.Name, i), index: i, canary: true})
		g.canaries++
	}
}

// migrationsInFlight counts the group's migrations that are not over: live
// replacements of allocations moved off a draining node (stopped as
// migrated, or on a node that is draining) not yet known to be healthy.
//
// Healthy is the deployment watcher's word, and it judges only the
// allocations of the running deployment. A replacement outside it (a drain
// after the job's deployment finished, or of a job without one) would wait
// for a verdict that never comes, so it is judged here the watcher's way:
// healthy once every task has been running for min_healthy_time. next is
// the earliest time one of those will be (zero if none is counting down).
func (r *reconciler) migrationsInFlight(tg *structs.TaskGroup, allocs []*structs.Allocation) (n int, next time.Time) {
	var byID map[string]*structs.Allocation
	for _, a := range allocs {
		if !live(a) || a.PreviousAllocation == "" || (a.Healthy != nil && *a.Healthy) {
			continue
		}
		if byID == nil {
			byID = make(map[string]*structs.Allocation, len(allocs))
			for _, b := range allocs {
				byID[b.ID] = b
			}
		}
		prev := byID[a.PreviousAllocation]
		if prev == nil {
			continue // collected: nothing says it was migrated
		}
		if prev.DesiredDescription != descMigrated {
			if node := r.node(prev.NodeID); node == nil || !node.Draining {
				continue
			}
		}
		if a.Healthy == nil && !r.watched(a) {
			at, ok := healthyAt(a, minHealthyTime(r.job, tg))
			if ok && !at.After(r.now) {
				continue // healthy
			}
			if ok && (next.IsZero() || at.Before(next)) {
				next = at
			}
		}
		n++
	}
	return n, next
}

// watched reports whether the deployment watcher will judge a's health:
// it belongs to the job's running deployment.
func (r *reconciler) watched(a *structs.Allocation) bool {
	d := r.deployment
	return a.DeploymentID != "" && d != nil && d.ID == a.DeploymentID && d.Status == structs.DeploymentRunning
}

// healthyAt is when a running allocation becomes healthy by the deployment
// watcher's rule: every task running, min after the last one started. ok
// is false while that is not known (not running, a task not started).
func healthyAt(a *structs.Allocation, minHealthy time.Duration) (at time.Time, ok bool) {
	if a.ClientStatus != structs.AllocRunning || len(a.Tasks) == 0 {
		return time.Time{}, false
	}
	var since time.Time
	for _, t := range a.Tasks {
		ts := a.TaskStates[t.Name]
		if ts == nil || ts.State != structs.TaskRunning || ts.StartedAt.IsZero() {
			return time.Time{}, false
		}
		if ts.StartedAt.After(since) {
			since = ts.StartedAt
		}
	}
	return since.Add(minHealthy), true
}

// minHealthyTime is the group's min_healthy_time, defaults as the
// deployment watcher applies them.
func minHealthyTime(job *structs.Job, tg *structs.TaskGroup) time.Duration {
	u := tg.Update
	if u == nil {
		u = job.Update
	}
	if u == nil {
		u = structs.DefaultUpdateStrategy()
	}
	return u.MinHealthyTime
}

// groupDeployment returns the group's state in the deployment this
// evaluation works in (nil if the group does not roll) and its strategy.
func (r *reconciler) groupDeployment(res *reconcileResult, tg *structs.TaskGroup) (*structs.DeploymentState, *structs.UpdateStrategy) {
	u := r.updateStrategy(tg)
	if u == nil || res.deployment == nil {
		return nil, u
	}
	ds := res.deployment.Groups[tg.Name]
	if ds == nil {
		ds = &structs.DeploymentState{AutoRevert: u.AutoRevert, AutoPromote: u.AutoPromote, DesiredTotal: tg.Count}
		res.deployment.Groups[tg.Name] = ds
	}
	return ds, u
}

// tasksEqual reports whether two versions of a group's tasks would run the
// same containers with the same resources.
func tasksEqual(a, b []*structs.Task) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] == b[i] {
			continue
		}
		if a[i] == nil || b[i] == nil || !reflect.DeepEqual(*a[i], *b[i]) {
			return false
		}
	}
	return true
}

// allocName is "<job>.<group>[<index>]".
func allocName(job, group string, index int) string {
	var b strings.Builder
	b.Grow(len(job) + len(group) + 8)
	b.WriteString(job)
	b.WriteByte('.')
	b.WriteString(group)
	b.WriteByte('[')
	b.WriteString(strconv.Itoa(index))
	b.WriteByte(']')
	return b.String()
}

// nameIndex parses the index out of an allocation name, or -1.
func nameIndex(name string) int {
	l := strings.LastIndexByte(name, '[')
	if l < 0 || !strings.HasSuffix(name, "]") {
		return -1
	}
	i, err := strconv.Atoi(name[l+1 : len(name)-1])
	if err != nil || i < 0 {
		return -1
	}
	return i
}

// batchTimes merges times closer than window into one (the latest of the
// batch), so a burst of failures makes one follow-up evaluation.
func batchTimes(ts []time.Time, window time.Duration) []time.Time {
	if len(ts) == 0 {
		return nil
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
	var out []time.Time
	start := ts[0]
	last := ts[0]
	for _, t := range ts[1:] {
		if t.Sub(start) > window {
			out = append(out, last)
			start = t
		}
		last = t
	}
	return append(out, last)
}
