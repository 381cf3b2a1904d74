package nft

import (
	"fmt"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/hivesec/hive/netenforce/policy"
)

// Verdict counters.
//
// A namespace policy's verdict is a set lookup shared by every policy, so
// the rule that matched cannot say which policy allowed a flow. What can be
// said is whose subject the flow was decided for: each direction keeps two
// verdict maps keyed by the subject's class, <dir>_accmap and <dir>_dropmap,
// which send the packet to a small chain per group of classes selected by
// the same policies; that chain counts and then returns (accept) or drops.
// The counts of a group belong to every policy of the group: "packets
// accepted or dropped for allocations this policy selects". Admin rules
// and quarantine are single rules and carry their own counters. Only the
// first packet of a flow gets here (established flows are accepted ahead
// of policy), so the counts are new flows, not traffic volume.
//
// Each count is a named counter object in table inet hive, referenced by
// the rules that count into it, so Counters reads them all in one netlink
// dump; the Applier remembers what each name stands for.

// Verdicts in counters.
const (
	VerdictAccept = "accept"
	VerdictDrop   = "drop"
	VerdictPass   = "pass"
	// VerdictAudit counts flows audit policies would deny (they pass).
	VerdictAudit = "audit"
)

// Counter is the packets one policy's rules accepted or dropped in one
// direction. Policy is "namespace/name" for network policies, "admin:NAME"
// for admin policies, and "quarantine".
type Counter struct {
	Policy    string
	Direction string // "ingress" or "egress"; empty for quarantine
	Verdict   string
	Packets   uint64
	Bytes     uint64
}

// countGroup is a set of classes selected by the same policies.
type countGroup struct {
	policies  []string
	acc, drop string // chain names
}

// countSource is what a counter object counts.
type countSource struct {
	verdict, dir string
	policies     []string
}

// addCounter records a counter object to create; names are unique per
// table (chain names, or <dir>_admin<i>_cnt).
func (p *planned) addCounter(name, verdict, dir string, policies []string) {
	if _, ok := p.counters[name]; !ok {
		p.counterOrder = append(p.counterOrder, name)
	}
	p.counters[name] = countSource{verdict: verdict, dir: dir, policies: policies}
}

func verdictMap(s *nftables.Set) { s.IsMap, s.DataType = true, nftables.TypeVerdict }

// planCounting adds a direction's verdict maps and groups. Every isolated
// class gets an element in both maps (an isolated class without a policy
// name, which Compile never makes, counts under none), since a miss in
// either map would fall through: to the backstop drop for the drop map, to
// a denial for the accept map.
func (p *planned) planCounting(dp *dirPlan, short string, d *policy.Direction) {
	dp.accMap = p.newSet(short+"_accmap", nftables.TypeInteger, prioAllow, verdictMap)
	dp.dropMap = p.newSet(short+"_dropmap", nftables.TypeInteger, prioDeny, verdictMap)
	groupOf := map[string]int{}
	for _, c := range sortedIDs(d.Isolated) {
		pols := d.SelectedBy[c]
		key := strings.Join(pols, ",")
		g, ok := groupOf[key]
		if !ok {
			g = len(dp.groups)
			groupOf[key] = g
			dp.groups = append(dp.groups, countGroup{policies: slices.Clone(pols),
				acc: fmt.Sprintf("%s_acc%d", short, g), drop: fmt.Sprintf("%s_drop%d", short, g)})
		}
		dp.accMap.elems = append(dp.accMap.elems, nftables.SetElement{Key: id(c),
			VerdictData: &expr.Verdict{Kind: expr.VerdictGoto, Chain: dp.groups[g].acc}})
		dp.dropMap.elems = append(dp.dropMap.elems, nftables.SetElement{Key: id(c),
			VerdictData: &expr.Verdict{Kind: expr.VerdictGoto, Chain: dp.groups[g].drop}})
	}
	for _, g := range dp.groups {
		if dp.isAudit() {
			p.addCounter(g.drop, VerdictAudit, dp.dir(), g.policies)
			continue
		}
		p.addCounter(g.acc, VerdictAccept, dp.name, g.policies)
		p.addCounter(g.drop, VerdictDrop, dp.name, g.policies)
	}
}

// vmap looks register from up in verdict map s: a hit jumps where the
// element says, a miss ends the rule.
func (r rule) vmap(s *nftables.Set, from uint32) rule {
	return append(r, &expr.Lookup{SourceRegister: reg(from), DestRegister: 0, IsDestRegSet: true, SetName: s.Name, SetID: s.ID})
}

// countedBy ends a rule with counter object name and a verdict.
func (r rule) countedBy(name string, v expr.VerdictKind, chain string) rule {
	return append(r, &expr.Objref{Type: int(nftables.ObjTypeCounter), Name: name}, &expr.Verdict{Kind: v, Chain: chain})
}

// LogGroup is the NFLOG group denied flows are logged to (see
// netenforce/nflog), LogRate the most packets per second a node logs and
// LogBurst how many it logs at once before the rate applies.
const (
	LogGroup = 17
	LogRate  = 10
	LogBurst = 20
)

// DropSource says what a logged packet's prefix (the chain that dropped
// it) stands for.
type DropSource struct {
	Direction string
	Policies  []string
	// Audit: the flow was only logged, by audit policies; it passed.
	Audit bool
}

// writeDropChain adds a chain that logs a rate-limited sample of what it
// gets to LogGroup with the chain's name as prefix, counts it under tag,
// and drops it. Rate-limited logging is its own rule: over the rate, the
// limit ends that rule and the packet goes on to be counted and dropped.
func (p *planned) writeDropChain(c *nftables.Conn, t *nftables.Table, name string) {
	p.writeLogChain(c, t, name, expr.VerdictDrop)
}

// writeLogChain is writeDropChain with another final verdict: audit
// chains log and count, then return.
func (p *planned) writeLogChain(c *nftables.Conn, t *nftables.Table, name string, v expr.VerdictKind) {
	ch := c.AddChain(&nftables.Chain{Name: name, Table: t})
	c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: rule{
		&expr.Limit{Type: expr.LimitTypePkts, Rate: LogRate, Unit: expr.LimitTimeSecond, Burst: LogBurst},
		&expr.Log{Key: 1<<unix.NFTA_LOG_GROUP | 1<<unix.NFTA_LOG_PREFIX, Group: LogGroup, Data: []byte(name)},
	}})
	c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: rule{}.countedBy(name, v, "")})
}

// writeCounting adds the group chains of a direction.
func (p *planned) writeCounting(c *nftables.Conn, t *nftables.Table, dp *dirPlan) {
	for _, g := range dp.groups {
		acc := c.AddChain(&nftables.Chain{Name: g.acc, Table: t})
		if dp.isAudit() {
			c.AddRule(&nftables.Rule{Table: t, Chain: acc, Exprs: rule{}.verdict(expr.VerdictReturn, "")})
			p.writeLogChain(c, t, g.drop, expr.VerdictReturn)
			continue
		}
		c.AddRule(&nftables.Rule{Table: t, Chain: acc, Exprs: rule{}.countedBy(g.acc, expr.VerdictReturn, "")})
		p.writeDropChain(c, t, g.drop)
	}
}

// DropSource returns what the chain named in a logged packet's prefix
// stands for, as of the last Apply.
func (a *Applier) DropSource(prefix string) (DropSource, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s, ok := a.counters[prefix]
	if !ok || s.verdict != VerdictDrop && s.verdict != VerdictAudit {
		return DropSource{}, false
	}
	return DropSource{Direction: s.dir, Policies: s.policies, Audit: s.verdict == VerdictAudit}, true
}

// Counters returns the verdict counts since the Applier was made, one
// entry per policy, direction and verdict; a group's counts go to each of
// its policies. A full sync replaces the table and its counter objects, so
// the Applier banks what they held just before.
func (a *Applier) Counters() ([]Counter, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	live, err := a.liveCounters()
	if err != nil {
		return nil, err
	}
	sum := map[counterKey]Counter{}
	for _, src := range [][]Counter{a.banked, live} {
		for _, c := range src {
			k := counterKey{c.Policy, c.Direction, c.Verdict}
			t := sum[k]
			t.Policy, t.Direction, t.Verdict = c.Policy, c.Direction, c.Verdict
			t.Packets += c.Packets
			t.Bytes += c.Bytes
			sum[k] = t
		}
	}
	out := make([]Counter, 0, len(sum))
	for _, c := range sum {
		out = append(out, c)
	}
	sortCounters(out)
	return out, nil
}

type counterKey struct{ policy, dir, verdict string }

func sortCounters(cs []Counter) {
	slices.SortFunc(cs, func(a, b Counter) int {
		return strings.Compare(a.Policy+" "+a.Direction+" "+a.Verdict, b.Policy+" "+b.Direction+" "+b.Verdict)
	})
}

// bank adds the live table's counts to the banked ones, before the table
// is replaced; a.mu is held.
func (a *Applier) bank() error {
	live, err := a.liveCounters()
	if err != nil {
		return err
	}
	a.banked = append(a.banked, live...)
	// Keep the bank short: fold it.
	sum := map[counterKey]Counter{}
	for _, c := range a.banked {
		k := counterKey{c.Policy, c.Direction, c.Verdict}
		t := sum[k]
		t.Policy, t.Direction, t.Verdict = c.Policy, c.Direction, c.Verdict
		t.Packets += c.Packets
		t.Bytes += c.Bytes
		sum[k] = t
	}
	a.banked = a.banked[:0]
	for _, c := range sum {
		a.banked = append(a.banked, c)
	}
	return nil
}

// liveCounters reads the counter objects of the table in place; a.mu is
// held.
func (a *Applier) liveCounters() ([]Counter, error) {
	sources := a.counters
	if len(sources) == 0 {
		return nil, nil
	}
	c, err := a.conn(0)
	if err != nil {
		return nil, fmt.Errorf("nft counters: open netlink: %w", err)
	}
	objs, err := c.GetObjects(table())
	if err != nil {
		return nil, fmt.Errorf("nft counters: %w", err)
	}
	sums := map[counterKey]*Counter{}
	for _, o := range objs {
		co, ok := o.(*nftables.CounterObj)
		if !ok || co.Table == nil || co.Table.Name != TableName {
			continue
		}
		src, ok := sources[co.Name]
		if !ok {
			continue
		}
		for _, pol := range src.policies {
			k := counterKey{pol, src.dir, src.verdict}
			s := sums[k]
			if s == nil {
				s = &Counter{Policy: pol, Direction: src.dir, Verdict: src.verdict}
				sums[k] = s
			}
			s.Packets += co.Packets
			s.Bytes += co.Bytes
		}
	}
	out := make([]Counter, 0, len(sums))
	for _, s := range sums {
		out = append(out, *s)
	}
	sortCounters(out)
	return out, nil
}
