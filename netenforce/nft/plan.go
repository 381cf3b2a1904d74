package nft

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/google/nftables"

	"github.com/hivesec/hive/netenforce/policy"
	"github.com/hivesec/hive/structs"
)

// Element priorities: in a split sync the first batch carries everything up
// to prioDeny, so a partial state can only deny more, never allow more.
const (
	prioDeny  = 0 // identities, quarantine, isolation, admin rules
	prioAllow = 1 // namespace policy allows
)

// setSpec is one set or map with its elements.
type setSpec struct {
	set   *nftables.Set
	elems []nftables.SetElement
	prio  int
}

// dirPlan holds the sets of one direction.
type dirPlan struct {
	name     string // "egress" or "ingress"
	egress   bool
	isolated *setSpec
	anyPort  *setSpec
	ports    *setSpec
	cidr     [2]*setSpec // by family index
	cidrPort [2]*setSpec
	admin    []adminPlan
	// Verdict counting (see counters.go).
	accMap, dropMap *setSpec
	groups          []countGroup
}

// adminPlan holds one admin rule's sets; nil where the rule has nothing.
type adminPlan struct {
	rule  *policy.AdminRule
	subj  *setSpec
	peers *setSpec
	cidr  [2]*setSpec
	ports *setSpec
}

// planned is a ruleset turned into sets and elements, ready to write.
type planned struct {
	r        *policy.Ruleset
	sets     []*setSpec
	ep       [2]*setSpec
	classNS  *setSpec
	quar     [2]*setSpec
	egress   dirPlan
	ingress  dirPlan
	elements int
	guard    *Guard
	vethSrc  *setSpec
	// auditEgress and auditIngress evaluate the audit view (nil without
	// audit policies).
	auditEgress, auditIngress *dirPlan
	// node and ports are the published ports (see ports.go).
	node  netip.Addr
	ports []PortForward
	// counters are the counter objects to create, by name.
	counters     map[string]countSource
	counterOrder []string
}

var (
	typeClassPair  = nftables.MustConcatSetType(nftables.TypeInteger, nftables.TypeInteger)
	typeClassPorts = nftables.MustConcatSetType(nftables.TypeInteger, nftables.TypeInteger, nftables.TypeInetProto, nftables.TypeInetService)
	typeProtoPort  = nftables.MustConcatSetType(nftables.TypeInetProto, nftables.TypeInetService)
	typeCIDR       = [2]nftables.SetDatatype{
		nftables.MustConcatSetType(nftables.TypeInteger, nftables.TypeIPAddr),
		nftables.MustConcatSetType(nftables.TypeInteger, nftables.TypeIP6Addr),
	}
	typeCIDRPorts = [2]nftables.SetDatatype{
		nftables.MustConcatSetType(nftables.TypeInteger, nftables.TypeInetProto, nftables.TypeIPAddr, nftables.TypeInetService),
		nftables.MustConcatSetType(nftables.TypeInteger, nftables.TypeInetProto, nftables.TypeIP6Addr, nftables.TypeInetService),
	}
	typeAddr = [2]nftables.SetDatatype{nftables.TypeIPAddr, nftables.TypeIP6Addr}
	famName  = [2]string{"4", "6"}
)

func (p *planned) newSet(name string, key nftables.SetDatatype, prio int, mod func(*nftables.Set)) *setSpec {
	s := &setSpec{set: &nftables.Set{Table: table(), Name: name, KeyType: key}, prio: prio}
	if mod != nil {
		mod(s.set)
	}
	p.sets = append(p.sets, s)
	return s
}

func concatInterval(s *nftables.Set) { s.Interval, s.Concatenation = true, true }
func concat(s *nftables.Set)         { s.Concatenation = true }
func interval(s *nftables.Set)       { s.Interval = true }
func mapToID(s *nftables.Set)        { s.IsMap, s.DataType = true, nftables.TypeInteger }

// fam is the family index of an address: 0 for IPv4, 1 for IPv6.
func fam(a netip.Addr) int {
	if a.Is4() {
		return 0
	}
	return 1
}

// Encoding: IDs are 4 bytes big-endian; in concatenations every field is
// padded to 4 bytes, as the registers the rules build the keys in are.
func id(v policy.ID) []byte { return binary.BigEndian.AppendUint32(nil, uint32(v)) }

func appendID(b []byte, v policy.ID) []byte { return binary.BigEndian.AppendUint32(b, uint32(v)) }
func appendProto(b []byte, p uint8) []byte  { return append(b, p, 0, 0, 0) }
func appendPort(b []byte, p uint16) []byte  { return append(b, byte(p>>8), byte(p), 0, 0) }
func appendAddr(b []byte, a netip.Addr) []byte {
	return append(b, a.AsSlice()...)
}

// plan turns r into sets and elements. Elements are sorted so that the
// batch, and so the kernel's state, does not depend on map order.
func plan(r *policy.Ruleset, g *Guard) *planned {
	p := &planned{r: r, counters: map[string]countSource{}}
	p.addCounter(chainQuarantine, VerdictDrop, "", []string{"quarantine"})
	if g != nil {
		p.planGuard(g)
	}
	for f := range 2 {
		p.ep[f] = p.newSet("ep"+famName[f], typeAddr[f], prioDeny, mapToID)
		p.quar[f] = p.newSet("quarantine"+famName[f], typeAddr[f], prioDeny, nil)
	}
	p.classNS = p.newSet("class_ns", nftables.TypeInteger, prioDeny, mapToID)
	addrs := make([]netip.Addr, 0, len(r.Endpoints))
	for a := range r.Endpoints {
		addrs = append(addrs, a)
	}
	slices.SortFunc(addrs, netip.Addr.Compare)
	for _, a := range addrs {
		s := p.ep[fam(a)]
		s.elems = append(s.elems, nftables.SetElement{Key: a.AsSlice(), Val: id(r.Endpoints[a].Class)})
	}
	// class → namespace comes from the endpoints: every class has one,
	// and all endpoints of a class share its namespace.
	seen := map[policy.ID]bool{}
	for _, a := range addrs {
		ei := r.Endpoints[a]
		if !seen[ei.Class] {
			seen[ei.Class] = true
			p.classNS.elems = append(p.classNS.elems, nftables.SetElement{Key: id(ei.Class), Val: id(ei.Namespace)})
		}
	}
	slices.SortFunc(p.classNS.elems, func(a, b nftables.SetElement) int { return slices.Compare(a.Key, b.Key) })
	q := make([]netip.Addr, 0, len(r.Quarantined))
	for a := range r.Quarantined {
		q = append(q, a)
	}
	slices.SortFunc(q, netip.Addr.Compare)
	for _, a := range q {
		s := p.quar[fam(a)]
		s.elems = append(s.elems, nftables.SetElement{Key: a.AsSlice()})
	}
	p.egress = p.planDirection("egress", "out", true, &r.Egress, r.AdminEgress)
	p.ingress = p.planDirection("ingress", "in", false, &r.Ingress, r.AdminIngress)
	if r.Audit != nil {
		// The namespace policies with audit policies enforced, evaluated
		// first and never dropping: what they would deny is logged.
		eg := p.planDirection("audit_egress", "aout", true, &r.Audit.Egress, nil)
		in := p.planDirection("audit_ingress", "ain", false, &r.Audit.Ingress, nil)
		p.auditEgress, p.auditIngress = &eg, &in
	}
	for _, s := range p.sets {
		p.elements += len(s.elems)
	}
	return p
}

func sortedIDs[V any](m map[policy.ID]V) []policy.ID {
	ids := make([]policy.ID, 0, len(m))
	for k := range m {
		ids = append(ids, k)
	}
	slices.Sort(ids)
	return ids
}

func (p *planned) planDirection(name, short string, egress bool, d *policy.Direction, admin []policy.AdminRule) dirPlan {
	dp := dirPlan{name: name, egress: egress}
	dp.isolated = p.newSet(short+"_isolated", nftables.TypeInteger, prioDeny, nil)
	for _, c := range sortedIDs(d.Isolated) {
		dp.isolated.elems = append(dp.isolated.elems, nftables.SetElement{Key: id(c)})
	}
	dp.anyPort = p.newSet(short+"_anyport", typeClassPair, prioAllow, concat)
	pairs := make([]policy.PairKey, 0, len(d.AnyPort))
	for k := range d.AnyPort {
		pairs = append(pairs, k)
	}
	slices.SortFunc(pairs, func(a, b policy.PairKey) int {
		return cmp.Or(cmp.Compare(a.Subject, b.Subject), cmp.Compare(a.Peer, b.Peer))
	})
	for _, k := range pairs {
		dp.anyPort.elems = append(dp.anyPort.elems, nftables.SetElement{Key: appendID(id(k.Subject), k.Peer)})
	}
	dp.ports = p.newSet(short+"_ports", typeClassPorts, prioAllow, concatInterval)
	pks := make([]policy.PortKey, 0, len(d.Ports))
	for k := range d.Ports {
		pks = append(pks, k)
	}
	slices.SortFunc(pks, func(a, b policy.PortKey) int {
		return cmp.Or(cmp.Compare(a.Subject, b.Subject), cmp.Compare(a.Peer, b.Peer), cmp.Compare(a.Proto, b.Proto))
	})
	for _, k := range pks {
		pre := appendProto(appendID(id(k.Subject), k.Peer), k.Proto)
		for _, pr := range d.Ports[k] {
			dp.ports.elems = append(dp.ports.elems, nftables.SetElement{
				Key:    appendPort(slices.Clone(pre), pr.Lo),
				KeyEnd: appendPort(slices.Clone(pre), pr.Hi),
			})
		}
	}
	for f := range 2 {
		dp.cidr[f] = p.newSet(short+"_cidr"+famName[f], typeCIDR[f], prioAllow, concatInterval)
		dp.cidrPort[f] = p.newSet(short+"_cidrports"+famName[f], typeCIDRPorts[f], prioAllow, concatInterval)
	}
	for _, s := range sortedIDs(d.CIDRAny) {
		for _, ar := range d.CIDRAny[s] {
			dp.cidr[fam(ar.Lo)].elems = append(dp.cidr[fam(ar.Lo)].elems, nftables.SetElement{
				Key: appendAddr(id(s), ar.Lo), KeyEnd: appendAddr(id(s), ar.Hi),
			})
		}
	}
	cks := make([]policy.CIDRKey, 0, len(d.CIDRPorts))
	for k := range d.CIDRPorts {
		cks = append(cks, k)
	}
	slices.SortFunc(cks, func(a, b policy.CIDRKey) int {
		return cmp.Or(cmp.Compare(a.Subject, b.Subject), cmp.Compare(a.Proto, b.Proto))
	})
	for _, k := range cks {
		pre := appendProto(id(k.Subject), k.Proto)
		for _, seg := range d.CIDRPorts[k] {
			f := fam(seg.Range.Lo)
			for _, pr := range seg.Ports {
				dp.cidrPort[f].elems = append(dp.cidrPort[f].elems, nftables.SetElement{
					Key:    appendPort(appendAddr(slices.Clone(pre), seg.Range.Lo), pr.Lo),
					KeyEnd: appendPort(appendAddr(slices.Clone(pre), seg.Range.Hi), pr.Hi),
				})
			}
		}
	}
	for i := range admin {
		ap := p.planAdmin(fmt.Sprintf("%s_admin%d", short, i), &admin[i])
		dp.admin = append(dp.admin, ap)
		if ap.subj == nil {
			continue
		}
		pols := []string{"admin:" + admin[i].Policy}
		switch admin[i].Action {
		case structs.AdminActionDeny:
			p.addCounter(adminDropChain(&dp, i), VerdictDrop, name, pols)
		case structs.AdminActionAllow:
			p.addCounter(adminCounter(&dp, i), VerdictAccept, name, pols)
		default:
			p.addCounter(adminCounter(&dp, i), VerdictPass, name, pols)
		}
	}
	p.planCounting(&dp, short, d)
	return dp
}

func (p *planned) planAdmin(prefix string, a *policy.AdminRule) adminPlan {
	ap := adminPlan{rule: a}
	if len(a.Subjects) == 0 {
		return ap // matches nothing: no sets, no rules
	}
	ap.subj = p.newSet(prefix+"_subj", nftables.TypeInteger, prioDeny, nil)
	for _, s := range sortedIDs(a.Subjects) {
		ap.subj.elems = append(ap.subj.elems, nftables.SetElement{Key: id(s)})
	}
	if len(a.Peers) > 0 {
		ap.peers = p.newSet(prefix+"_peers", nftables.TypeInteger, prioDeny, nil)
		for _, s := range sortedIDs(a.Peers) {
			ap.peers.elems = append(ap.peers.elems, nftables.SetElement{Key: id(s)})
		}
	}
	for _, ar := range a.PeerCIDRs {
		f := fam(ar.Lo)
		if ap.cidr[f] == nil {
			ap.cidr[f] = p.newSet(prefix+"_cidr"+famName[f], typeAddr[f], prioDeny, interval)
		}
		// Single-field interval sets (rbtree) take a range as its start
		// and an interval-end element one past its last address; a range
		// that runs to the family's last address has no end element.
		ap.cidr[f].elems = append(ap.cidr[f].elems, nftables.SetElement{Key: ar.Lo.AsSlice()})
		if n := ar.Hi.Next(); n.IsValid() {
			ap.cidr[f].elems = append(ap.cidr[f].elems, nftables.SetElement{Key: n.AsSlice(), IntervalEnd: true})
		}
	}
	if !a.AnyPort {
		ap.ports = p.newSet(prefix+"_ports", typeProtoPort, prioDeny, concatInterval)
		protos := make([]uint8, 0, len(a.Ports))
		for pr := range a.Ports {
			protos = append(protos, pr)
		}
		slices.Sort(protos)
		for _, pr := range protos {
			for _, r := range a.Ports[pr] {
				ap.ports.elems = append(ap.ports.elems, nftables.SetElement{
					Key: appendPort(appendProto(nil, pr), r.Lo), KeyEnd: appendPort(appendProto(nil, pr), r.Hi),
				})
			}
		}
	}
	return ap
}

// chunk is one SetAddElements message.
type chunk struct {
	set   *nftables.Set
	elems []nftables.SetElement
}

// batch is one netlink transaction's share of the elements.
type batch struct {
	chunks []chunk
	bytes  int
}

// elemBytes estimates an element's netlink size: attribute headers around
// key, key end and value.
func elemBytes(e *nftables.SetElement) int {
	return 24 + len(e.Key) + len(e.KeyEnd) + len(e.Val) + 12
}

// structureBytes is a generous estimate of the table, chains, sets and
// rules of a batch.
func (p *planned) structureBytes() int {
	return 64<<10 + len(p.sets)*512 + (len(p.egress.admin)+len(p.ingress.admin))*8*512 +
		(len(p.egress.groups)+len(p.ingress.groups))*2*512
}

// directions are the enforcing directions, then the audit ones if any.
func (p *planned) directions() []*dirPlan {
	out := []*dirPlan{&p.egress, &p.ingress}
	if p.auditEgress != nil {
		out = append(out, p.auditEgress, p.auditIngress)
	}
	return out
}

// isAudit reports whether d is an audit direction.
func (d *dirPlan) isAudit() bool { return strings.HasPrefix(d.name, "audit_") }

// dir is the direction's name in counters and logs: egress or ingress.
func (d *dirPlan) dir() string { return strings.TrimPrefix(d.name, "audit_") }

// structureKey describes everything of the plan but set elements: sets,
// counter objects, counting groups, and every rule as it would be written
// (set references by name). Two plans with the same key differ only in
// elements. It is computed before writeStructure gives the sets batch IDs.
func (p *planned) structureKey() string {
	var b strings.Builder
	for _, s := range p.sets {
		fmt.Fprintf(&b, "set %s %s/%d i%v c%v m%v %s\n", s.set.Name, s.set.KeyType.Name, s.set.KeyType.Bytes,
			s.set.Interval, s.set.Concatenation, s.set.IsMap, s.set.DataType.Name)
	}
	for _, n := range p.counterOrder {
		fmt.Fprintf(&b, "counter %s %+v\n", n, p.counters[n])
	}
	rules := append(p.forwardRules(), p.natRules()...)
	for _, d := range p.directions() {
		for _, g := range d.groups {
			fmt.Fprintf(&b, "group %s %s %v\n", g.acc, g.drop, g.policies)
		}
		rules = append(rules, p.adminRules(d)...)
		rules = append(rules, p.namespaceRules(d)...)
	}
	for _, r := range rules {
		for _, e := range r {
			fmt.Fprintf(&b, "%T%+v;", e, e)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// structureMessages counts the netlink messages of the table, sets,
// counter objects, chains and rules (an upper bound for the rules).
func (p *planned) structureMessages() int {
	groups := 0
	for _, d := range p.directions() {
		groups += len(d.groups)
	}
	admin := len(p.egress.admin) + len(p.ingress.admin)
	return 64 + len(p.sets) + len(p.counters) + 2*groups*3 + admin*16
}

// split cuts the elements into chunks and the chunks into batches of at
// most limit bytes, deny-relevant elements first (see the package doc).
func (p *planned) split(limit int) []batch {
	cur := batch{bytes: p.structureBytes()}
	var out []batch
	for _, prio := range []int{prioDeny, prioAllow} {
		for _, s := range p.sets {
			if s.prio != prio {
				continue
			}
			for start := 0; start < len(s.elems); start += ElementsPerMessage {
				c := chunk{set: s.set, elems: s.elems[start:min(start+ElementsPerMessage, len(s.elems))]}
				n := 64
				for i := range c.elems {
					n += elemBytes(&c.elems[i])
				}
				// The first batch keeps all deny-relevant elements whatever
				// its size, so that no partial state allows too much.
				if cur.bytes+n > limit && len(cur.chunks) > 0 && !(len(out) == 0 && prio == prioDeny) {
					out = append(out, cur)
					cur = batch{}
				}
				cur.chunks = append(cur.chunks, c)
				cur.bytes += n
			}
		}
	}
	return append(out, cur)
}
