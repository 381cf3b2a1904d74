package nft

import (
	"encoding/binary"
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/hivesec/hive/netenforce/policy"
	"github.com/hivesec/hive/structs"
)

// Chain names inside table inet hive.
const (
	chainForward    = "forward"
	chainQuarantine = "quarantine"
)

// reg is the kernel number of 32-bit register i (NFT_REG32_00 + i). Keys
// are built in r0 upwards; r8 and above hold addresses being resolved.
func reg(i uint32) uint32 { return unix.NFT_REG32_00 + i }

const (
	rSubj  = 0 // subject identity
	rPeer  = 1 // peer identity
	rProto = 2 // l4proto in class-port keys
	rPort  = 3 // dport in class-port keys
	rAddr  = 8 // scratch address (up to four registers)
	rTmp   = 12
)

// family describes where IPv4 and IPv6 keep their addresses.
type family struct {
	nfproto  byte
	src, dst uint32 // network header offsets
	len      uint32
	words    uint32 // registers an address takes
}

var families = [2]family{
	{nfproto: unix.NFPROTO_IPV4, src: 12, dst: 16, len: 4, words: 1},
	{nfproto: unix.NFPROTO_IPV6, src: 8, dst: 24, len: 16, words: 4},
}

// rule accumulates the expressions of one rule.
type rule []expr.Any

func (r rule) nfproto(f family) rule {
	return append(r,
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: reg(rTmp)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg(rTmp), Data: []byte{f.nfproto}})
}

// addr loads the source (src) or destination address into register r.
func (r rule) addr(f family, src bool, at uint32) rule {
	off := f.dst
	if src {
		off = f.src
	}
	return append(r, &expr.Payload{DestRegister: reg(at), Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: f.len})
}

func (r rule) in(s *nftables.Set, from uint32) rule {
	return append(r, &expr.Lookup{SourceRegister: reg(from), SetName: s.Name, SetID: s.ID})
}

func (r rule) notIn(s *nftables.Set, from uint32) rule {
	return append(r, &expr.Lookup{SourceRegister: reg(from), SetName: s.Name, SetID: s.ID, Invert: true})
}

// mapTo looks register from up in map s and stores the value in to; the
// rule stops when the key is missing.
func (r rule) mapTo(s *nftables.Set, from, to uint32) rule {
	return append(r, &expr.Lookup{SourceRegister: reg(from), DestRegister: reg(to), IsDestRegSet: true, SetName: s.Name, SetID: s.ID})
}

func (r rule) l4proto(at uint32) rule {
	return append(r, &expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg(at)})
}

func (r rule) dport(at uint32) rule {
	return append(r, &expr.Payload{DestRegister: reg(at), Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2})
}

func (r rule) verdict(v expr.VerdictKind, chain string) rule {
	return append(r, &expr.Verdict{Kind: v, Chain: chain})
}

// writeStructure adds chains, sets and rules to c's batch. Sets get their
// batch IDs here, so rules are built after them.
func (p *planned) writeStructure(c *nftables.Conn) error {
	t := table()
	c.AddTable(t)
	accept := nftables.ChainPolicyAccept
	fwd := c.AddChain(&nftables.Chain{
		Name: chainForward, Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &accept,
	})
	chains := map[string]*nftables.Chain{}
	for _, d := range p.directions() {
		for _, n := range []string{d.name, d.name + "_ns"} {
			chains[n] = c.AddChain(&nftables.Chain{Name: n, Table: t})
		}
	}
	for _, s := range p.sets {
		if err := c.AddSet(s.set, nil); err != nil {
			return fmt.Errorf("add set %s: %w", s.set.Name, err)
		}
	}
	add := func(ch *nftables.Chain, r rule) {
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: r})
	}
	for _, name := range p.counterOrder {
		c.AddObj(&nftables.CounterObj{Table: t, Name: name})
	}
	p.writeNAT(c, t)
	p.writeDropChain(c, t, chainQuarantine)
	for _, d := range p.directions() {
		p.writeCounting(c, t, d)
		for i, a := range d.admin {
			if a.subj != nil && a.rule.Action == structs.AdminActionDeny {
				p.writeDropChain(c, t, adminDropChain(d, i))
			}
		}
	}
	for _, r := range p.forwardRules() {
		c.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: r})
	}
	for _, d := range p.directions() {
		for _, r := range p.adminRules(d) {
			c.AddRule(&nftables.Rule{Table: t, Chain: chains[d.name], Exprs: r})
		}
		for _, r := range p.namespaceRules(d) {
			add(chains[d.name+"_ns"], r)
		}
	}
	return nil
}

func (p *planned) forwardRules() []rule {
	out := p.guardRules()
	for fi, f := range families {
		q := p.quar[fi].set
		out = append(out,
			rule{}.nfproto(f).addr(f, true, rAddr).in(q, rAddr).verdict(expr.VerdictGoto, chainQuarantine),
			rule{}.nfproto(f).addr(f, false, rAddr).in(q, rAddr).verdict(expr.VerdictGoto, chainQuarantine))
	}
	// Replies and related packets (ICMP errors) of flows that were allowed
	// when they started. Quarantine comes first, so it cuts them too.
	out = append(out, rule{
		&expr.Ct{Key: expr.CtKeySTATE, Register: reg(rTmp)},
		&expr.Bitwise{SourceRegister: reg(rTmp), DestRegister: reg(rTmp), Len: 4,
			Mask: binary.NativeEndian.AppendUint32(nil, expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED),
			Xor:  []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: reg(rTmp), Data: []byte{0, 0, 0, 0}},
		&expr.Verdict{Kind: expr.VerdictAccept},
	})
	jumps := []struct {
		src   bool
		chain string
	}{{true, "egress"}, {false, "ingress"}}
	if p.auditEgress != nil {
		// The audit view first: it only logs and returns.
		jumps = append([]struct {
			src   bool
			chain string
		}{{true, p.auditEgress.name}, {false, p.auditIngress.name}}, jumps...)
	}
	for _, d := range jumps {
		for fi, f := range families {
			out = append(out, rule{}.nfproto(f).addr(f, d.src, rAddr).in(p.ep[fi].set, rAddr).verdict(expr.VerdictJump, d.chain))
		}
	}
	return out
}

// subject starts a direction rule: family check and the subject's class
// in rSubj.
func (p *planned) subject(d *dirPlan, fi int) rule {
	f := families[fi]
	return rule{}.nfproto(f).addr(f, d.egress, rAddr).mapTo(p.ep[fi].set, rAddr, rSubj)
}

// peerClass loads the peer's class into register at.
func (p *planned) peerClass(r rule, d *dirPlan, fi int, at uint32) rule {
	f := families[fi]
	return r.addr(f, !d.egress, rAddr).mapTo(p.ep[fi].set, rAddr, at)
}

// peerNamespace loads the peer's namespace identity into register at.
func (p *planned) peerNamespace(r rule, d *dirPlan, fi int, at uint32) rule {
	return p.peerClass(r, d, fi, rTmp).mapTo(p.classNS.set, rTmp, at)
}

// peerAny checks that the peer is an endpoint and puts AnyEndpoint in at.
func (p *planned) peerAny(r rule, d *dirPlan, fi int, at uint32) rule {
	f := families[fi]
	r = r.addr(f, !d.egress, rAddr).in(p.ep[fi].set, rAddr)
	return append(r, &expr.Immediate{Register: reg(at), Data: id(policy.AnyEndpoint)})
}

// clone copies a rule prefix so that two rules never share a backing array.
func (r rule) clone() rule { return append(rule(nil), r...) }

// adminDropChain names the drop chain (and counter) of admin deny rule i
// of direction d, adminCounter the counter of an allow or pass rule.
func adminDropChain(d *dirPlan, i int) string { return fmt.Sprintf("%s_admin%d_drop", d.name, i) }
func adminCounter(d *dirPlan, i int) string   { return fmt.Sprintf("%s_admin%d_cnt", d.name, i) }

func (p *planned) adminRules(d *dirPlan) []rule {
	var out []rule
	for i, a := range d.admin {
		if a.subj == nil {
			continue
		}
		var v expr.VerdictKind
		chain := ""
		switch a.rule.Action {
		case structs.AdminActionAllow:
			v = expr.VerdictReturn
		case structs.AdminActionDeny:
			// Counted, logged and dropped in its own chain.
			v, chain = expr.VerdictGoto, adminDropChain(d, i)
		default: // Pass: straight to the namespace policies
			v, chain = expr.VerdictGoto, d.name+"_ns"
		}
		tr := func(r rule) rule {
			if a.rule.Action == structs.AdminActionDeny {
				return r.verdict(v, chain)
			}
			return r.countedBy(adminCounter(d, i), v, chain)
		}
		for fi, f := range families {
			base := p.subject(d, fi).in(a.subj.set, rSubj)
			if a.ports != nil {
				base = base.l4proto(rProto).dport(rPort).in(a.ports.set, rProto)
			}
			if a.peers != nil {
				out = append(out,
					tr(p.peerClass(base.clone(), d, fi, rPeer).in(a.peers.set, rPeer)),
					tr(p.peerNamespace(base.clone(), d, fi, rPeer).in(a.peers.set, rPeer)))
				if _, any := a.rule.Peers[policy.AnyEndpoint]; any {
					out = append(out, tr(p.peerAny(base.clone(), d, fi, rPeer)))
				}
			}
			if a.cidr[fi] != nil {
				out = append(out, tr(base.clone().addr(f, !d.egress, rAddr).in(a.cidr[fi].set, rAddr)))
			}
		}
	}
	return append(out, rule{}.verdict(expr.VerdictGoto, d.name+"_ns"))
}

func (p *planned) namespaceRules(d *dirPlan) []rule {
	var out []rule
	// Allows go through the subject's counting chain, which returns.
	ret := func(r rule) rule { return r.vmap(d.accMap.set, rSubj) }
	for fi, f := range families {
		subj := p.subject(d, fi)
		out = append(out, subj.clone().notIn(d.isolated.set, rSubj).verdict(expr.VerdictReturn, ""))
		peers := []func(rule) rule{
			func(r rule) rule { return p.peerClass(r, d, fi, rPeer) },
			func(r rule) rule { return p.peerNamespace(r, d, fi, rPeer) },
			func(r rule) rule { return p.peerAny(r, d, fi, rPeer) },
		}
		for _, peer := range peers {
			out = append(out, ret(peer(subj.clone()).in(d.anyPort.set, rSubj)))
		}
		for _, peer := range peers {
			out = append(out, ret(peer(subj.clone()).l4proto(rProto).dport(rPort).in(d.ports.set, rSubj)))
		}
		// (subject . peer address)
		out = append(out, ret(subj.clone().addr(f, !d.egress, 1).in(d.cidr[fi].set, rSubj)))
		// (subject . proto . peer address . port)
		out = append(out, ret(subj.clone().l4proto(1).addr(f, !d.egress, 2).dport(2+f.words).in(d.cidrPort[fi].set, rSubj)))
	}
	// Nothing allowed it: drop through the subject's counting chain, and
	// drop anyway should the map miss.
	for fi := range families {
		out = append(out, p.subject(d, fi).vmap(d.dropMap.set, rSubj))
	}
	if d.isAudit() {
		return append(out, rule{}.verdict(expr.VerdictReturn, ""))
	}
	return append(out, rule{}.verdict(expr.VerdictDrop, ""))
}
