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
// Counting rules are tagged in their user data (countTag) and Counters
// reads them back; nothing else identifies them.

const countTagPrefix = "hive-count "

// Verdicts in counters.
const (
	VerdictAccept = "accept"
	VerdictDrop   = "drop"
	VerdictPass   = "pass"
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

func countTag(verdict, dir string, policies []string) []byte {
	return []byte(fmt.Sprintf("%sverdict=%s dir=%s policies=%s", countTagPrefix, verdict, dir, strings.Join(policies, ",")))
}

func parseCountTag(b []byte) (verdict, dir string, policies []string, ok bool) {
	s, ok := strings.CutPrefix(string(b), countTagPrefix)
	if !ok {
		return "", "", nil, false
	}
	for _, f := range strings.Fields(s) {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "verdict":
			verdict = v
		case "dir":
			dir = v
		case "policies":
			if v != "" {
				policies = strings.Split(v, ",")
			}
		}
	}
	return verdict, dir, policies, verdict != ""
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
}

// vmap looks register from up in verdict map s: a hit jumps where the
// element says, a miss ends the rule.
func (r rule) vmap(s *nftables.Set, from uint32) rule {
	return append(r, &expr.Lookup{SourceRegister: reg(from), DestRegister: 0, IsDestRegSet: true, SetName: s.Name, SetID: s.ID})
}

// counted ends a rule with a counter and a verdict.
func (r rule) counted(v expr.VerdictKind, chain string) rule {
	return append(r, &expr.Counter{}, &expr.Verdict{Kind: v, Chain: chain})
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
}

// writeDropChain adds a chain that logs a rate-limited sample of what it
// gets to LogGroup with the chain's name as prefix, counts it under tag,
// and drops it. Rate-limited logging is its own rule: over the rate, the
// limit ends that rule and the packet goes on to be counted and dropped.
func (p *planned) writeDropChain(c *nftables.Conn, t *nftables.Table, name, dir string, policies []string) {
	ch := c.AddChain(&nftables.Chain{Name: name, Table: t})
	c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: rule{
		&expr.Limit{Type: expr.LimitTypePkts, Rate: LogRate, Unit: expr.LimitTimeSecond, Burst: LogBurst},
		&expr.Log{Key: 1<<unix.NFTA_LOG_GROUP | 1<<unix.NFTA_LOG_PREFIX, Group: LogGroup, Data: []byte(name)},
	}})
	c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: rule{}.counted(expr.VerdictDrop, ""),
		UserData: countTag(VerdictDrop, dir, policies)})
	p.dropSources[name] = DropSource{Direction: dir, Policies: policies}
}

// writeCounting adds the group chains of a direction.
func (p *planned) writeCounting(c *nftables.Conn, t *nftables.Table, dp *dirPlan) {
	for _, g := range dp.groups {
		acc := c.AddChain(&nftables.Chain{Name: g.acc, Table: t})
		c.AddRule(&nftables.Rule{Table: t, Chain: acc, Exprs: rule{}.counted(expr.VerdictReturn, ""),
			UserData: countTag(VerdictAccept, dp.name, g.policies)})
		p.writeDropChain(c, t, g.drop, dp.name, g.policies)
	}
}

// DropSource returns what the chain named in a logged packet's prefix
// stands for, as of the last Apply.
func (a *Applier) DropSource(prefix string) (DropSource, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s, ok := a.dropSources[prefix]
	return s, ok
}

// Counters reads the verdict counters of table inet hive, one entry per
// policy, direction and verdict. A group's counts go to each of its
// policies.
func (a *Applier) Counters() ([]Counter, error) {
	c, err := a.conn(0)
	if err != nil {
		return nil, fmt.Errorf("nft counters: open netlink: %w", err)
	}
	t := table()
	chains, err := c.ListChainsOfTableFamily(t.Family)
	if err != nil {
		return nil, fmt.Errorf("nft counters: list chains: %w", err)
	}
	type key struct{ policy, dir, verdict string }
	sums := map[key]*Counter{}
	var order []key
	for _, ch := range chains {
		if ch.Table.Name != TableName {
			continue
		}
		rules, err := c.GetRules(t, ch)
		if err != nil {
			return nil, fmt.Errorf("nft counters: rules of %s: %w", ch.Name, err)
		}
		for _, r := range rules {
			verdict, dir, pols, ok := parseCountTag(r.UserData)
			if !ok {
				continue
			}
			var cnt *expr.Counter
			for _, e := range r.Exprs {
				if ce, ok := e.(*expr.Counter); ok {
					cnt = ce
				}
			}
			if cnt == nil {
				continue
			}
			for _, pol := range pols {
				k := key{pol, dir, verdict}
				s := sums[k]
				if s == nil {
					s = &Counter{Policy: pol, Direction: dir, Verdict: verdict}
					sums[k] = s
					order = append(order, k)
				}
				s.Packets += cnt.Packets
				s.Bytes += cnt.Bytes
			}
		}
	}
	out := make([]Counter, 0, len(order))
	for _, k := range order {
		out = append(out, *sums[k])
	}
	slices.SortFunc(out, func(a, b Counter) int {
		return strings.Compare(a.Policy+" "+a.Direction+" "+a.Verdict, b.Policy+" "+b.Direction+" "+b.Verdict)
	})
	return out, nil
}
