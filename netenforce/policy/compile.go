package policy

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/hivesec/hive/structs"
)

// Compile validates the policies and turns them, with the endpoints, into
// the Ruleset the applier writes. It is pure and deterministic: the same
// inputs give the same IDs and elements.
//
// Cost: selectors are evaluated once per distinct selector against an
// inverted label index, not once per (policy, endpoint); the element count
// is the sum over rules of |subject classes| × |peer identities| × |ports|,
// where peers that name whole namespaces, or every endpoint, count once.
func Compile(eps []Endpoint, policies []structs.NetworkPolicy, admin []structs.AdminNetworkPolicy) (*Ruleset, error) {
	for i := range policies {
		if err := policies[i].Validate(); err != nil {
			return nil, fmt.Errorf("network policy %s/%s: %w", policies[i].Namespace, policies[i].Name, err)
		}
	}
	names := map[string]bool{}
	for i := range admin {
		if err := admin[i].Validate(); err != nil {
			return nil, fmt.Errorf("admin network policy %s: %w", admin[i].Name, err)
		}
		// Names break priority ties, so they must be unique for the order
		// to be well defined.
		if names[admin[i].Name] {
			return nil, fmt.Errorf("admin network policy %s: defined twice", admin[i].Name)
		}
		names[admin[i].Name] = true
	}
	c, err := newCompiler(eps)
	if err != nil {
		return nil, err
	}
	r := c.compile(policies, admin, false)
	for i := range policies {
		if policies[i].Audit {
			r.Audit = c.compile(policies, admin, true)
			break
		}
	}
	return r, nil
}

type classInfo struct {
	id     ID
	ns     int // index into compiler.namespaces
	name   string
	labels map[string]string
}

type nsInfo struct {
	id      ID
	name    string
	labels  map[string]string
	classes []int
}

// compiler holds the identities and the label indexes; policies are
// compiled against it once for enforcement and, when some policy audits,
// once more with audit policies enforced.
type compiler struct {
	eps        []Endpoint
	classes    []classInfo
	namespaces []nsInfo
	epIdent    []EndpointIdentity
	nsByName   map[string][]int
	podLabel   map[string][]int // "key\x00value" → class indexes
	nsLabel    map[string][]int // "key\x00value" → namespace indexes
	classMemo  map[string][]ID
	nsMemo     map[string][]int
}

func newCompiler(eps []Endpoint) (*compiler, error) {
	c := &compiler{
		eps:       eps,
		nsByName:  map[string][]int{},
		podLabel:  map[string][]int{},
		nsLabel:   map[string][]int{},
		classMemo: map[string][]ID{},
		nsMemo:    map[string][]int{},
	}
	seen := make(map[netip.Addr]string, len(eps))
	nsKeys := map[string]int{}
	classKeys := map[string]int{}
	epClass := make([]int, len(eps))
	for i := range eps {
		ep := &eps[i]
		ip := ep.IP.Unmap()
		if !ip.IsValid() || ip.Zone() != "" {
			return nil, fmt.Errorf("endpoint %s: invalid address %q", ep.ID, ep.IP)
		}
		if other, dup := seen[ip]; dup {
			return nil, fmt.Errorf("endpoint %s: address %s is also endpoint %s's", ep.ID, ip, other)
		}
		seen[ip] = ep.ID
		nk := keyString(ep.Namespace) + labelKey(ep.NamespaceLabels)
		if _, ok := nsKeys[nk]; !ok {
			nsKeys[nk] = len(c.namespaces)
			c.namespaces = append(c.namespaces, nsInfo{name: ep.Namespace, labels: ep.NamespaceLabels})
		}
		ck := nk + labelKey(ep.Labels)
		ci, ok := classKeys[ck]
		if !ok {
			ci = len(c.classes)
			classKeys[ck] = ci
			c.classes = append(c.classes, classInfo{ns: nsKeys[nk], name: ep.Namespace, labels: ep.Labels})
		}
		epClass[i] = ci
	}
	// IDs follow the sorted keys rather than input order so that they do
	// not depend on the order endpoints arrive in.
	c.assignIDs(nsKeys, classKeys)
	c.epIdent = make([]EndpointIdentity, len(eps))
	for i, ci := range epClass {
		cl := &c.classes[ci]
		c.epIdent[i] = EndpointIdentity{Class: cl.id, Namespace: c.namespaces[cl.ns].id}
	}
	for ci := range c.classes {
		cl := &c.classes[ci]
		c.namespaces[cl.ns].classes = append(c.namespaces[cl.ns].classes, ci)
		for k, v := range cl.labels {
			c.podLabel[k+"\x00"+v] = append(c.podLabel[k+"\x00"+v], ci)
		}
	}
	for ni := range c.namespaces {
		n := &c.namespaces[ni]
		c.nsByName[n.name] = append(c.nsByName[n.name], ni)
		for k, v := range n.labels {
			c.nsLabel[k+"\x00"+v] = append(c.nsLabel[k+"\x00"+v], ni)
		}
	}
	return c, nil
}

func (c *compiler) assignIDs(nsKeys, classKeys map[string]int) {
	next := firstID
	for _, k := range sortedKeys(nsKeys) {
		c.namespaces[nsKeys[k]].id = next
		next++
	}
	for _, k := range sortedKeys(classKeys) {
		c.classes[classKeys[k]].id = next
		next++
	}
}

func sortedKeys(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// keyString length-prefixes s so that concatenated keys cannot collide
// whatever bytes labels hold.
func keyString(s string) string { return strconv.Itoa(len(s)) + ":" + s }

func labelKey(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(strconv.Itoa(len(keys)) + "{")
	for _, k := range keys {
		b.WriteString(keyString(k))
		b.WriteString(keyString(m[k]))
	}
	return b.String()
}

// selectorKey is a canonical rendering of a selector for memoization; nil
// and empty differ in meaning, so they render differently.
func selectorKey(s *structs.LabelSelector) string {
	if s == nil {
		return "nil"
	}
	var b strings.Builder
	b.WriteString(labelKey(s.MatchLabels))
	for _, e := range s.MatchExpressions {
		vals := slices.Clone(e.Values)
		sort.Strings(vals)
		b.WriteString(keyString(e.Key) + keyString(e.Operator) + strconv.Itoa(len(vals)))
		for _, v := range vals {
			b.WriteString(keyString(v))
		}
	}
	return b.String()
}

// shortestPosting picks, among the match_labels pairs of sel, the posting
// list with the fewest entries: every match must be on it.
func shortestPosting(sel *structs.LabelSelector, index map[string][]int) ([]int, bool) {
	var best []int
	found := false
	for k, v := range sel.MatchLabels {
		p := index[k+"\x00"+v]
		if !found || len(p) < len(best) {
			best, found = p, true
		}
	}
	return best, found
}

// namespacesMatching returns the namespace indexes whose labels match sel.
func (c *compiler) namespacesMatching(sel *structs.LabelSelector) []int {
	key := selectorKey(sel)
	if r, ok := c.nsMemo[key]; ok {
		return r
	}
	var out []int
	if cand, ok := shortestPosting(sel, c.nsLabel); ok {
		for _, ni := range cand {
			if sel.Matches(c.namespaces[ni].labels) {
				out = append(out, ni)
			}
		}
	} else {
		for ni := range c.namespaces {
			if sel.Matches(c.namespaces[ni].labels) {
				out = append(out, ni)
			}
		}
	}
	c.nsMemo[key] = out
	return out
}

// classesMatching returns the class IDs in namespace ns ("" for any) whose
// namespace matches nsSel (nil for any) and whose labels match podSel (nil
// for any).
func (c *compiler) classesMatching(ns string, nsSel, podSel *structs.LabelSelector) []ID {
	key := keyString(ns) + selectorKey(nsSel) + "|" + selectorKey(podSel)
	if r, ok := c.classMemo[key]; ok {
		return r
	}
	// Candidates: the smallest of the lists every match must be on.
	var cand []int
	all := true
	consider := func(l []int) {
		if all || len(l) < len(cand) {
			cand, all = l, false
		}
	}
	if ns != "" {
		var l []int
		for _, ni := range c.nsByName[ns] {
			l = append(l, c.namespaces[ni].classes...)
		}
		consider(l)
	}
	if podSel != nil {
		if p, ok := shortestPosting(podSel, c.podLabel); ok {
			consider(p)
		}
	}
	if nsSel != nil && !nsSel.Empty() {
		var l []int
		for _, ni := range c.namespacesMatching(nsSel) {
			l = append(l, c.namespaces[ni].classes...)
		}
		consider(l)
	}
	var out []ID
	check := func(ci int) {
		cl := &c.classes[ci]
		if ns != "" && cl.name != ns {
			return
		}
		if nsSel != nil && !nsSel.Matches(c.namespaces[cl.ns].labels) {
			return
		}
		if podSel != nil && !podSel.Matches(cl.labels) {
			return
		}
		out = append(out, cl.id)
	}
	if all {
		for ci := range c.classes {
			check(ci)
		}
	} else {
		for _, ci := range cand {
			check(ci)
		}
	}
	c.classMemo[key] = out
	return out
}

// peerIDs resolves a selector peer to identities. ns is the policy's
// namespace, or "" for admin peers, where nothing is implied about it.
func (c *compiler) peerIDs(p *structs.NetpolPeer, ns string) []ID {
	nsSel, podSel := p.NamespaceSelector, p.PodSelector
	if podSel != nil && podSel.Empty() {
		podSel = nil
	}
	if nsSel == nil && ns != "" {
		if podSel == nil { // every endpoint of the policy's namespace
			var ids []ID
			for _, ni := range c.nsByName[ns] {
				ids = append(ids, c.namespaces[ni].id)
			}
			return ids
		}
		return c.classesMatching(ns, nil, podSel)
	}
	if podSel == nil { // whole namespaces
		if nsSel == nil || nsSel.Empty() {
			return []ID{AnyEndpoint}
		}
		var ids []ID
		for _, ni := range c.namespacesMatching(nsSel) {
			ids = append(ids, c.namespaces[ni].id)
		}
		return ids
	}
	return c.classesMatching("", nsSel, podSel)
}

// portSpec is a rule's compiled ports: any, or per-protocol ranges.
type portSpec struct {
	any   bool
	ports []portKeyRange
}

// portKeyRange is a protocol and an inclusive port range.
type portKeyRange struct {
	Proto uint8
	PortRange
}

func compilePorts(ps []structs.NetpolPort) portSpec {
	if len(ps) == 0 {
		return portSpec{any: true}
	}
	out := portSpec{}
	for _, p := range ps {
		end := p.EndPort
		if end == 0 {
			end = p.Port
		}
		out.ports = append(out.ports, portKeyRange{protoNumber(p.ProtocolName()), PortRange{uint16(p.Port), uint16(end)}})
	}
	return out
}

// directionBuilder accumulates elements before they are merged.
type directionBuilder struct {
	isolated  map[ID]struct{}
	selected  map[ID][]string
	anyPort   map[PairKey]struct{}
	ports     map[PortKey][]PortRange
	cidrAny   map[ID][]AddrRange
	cidrBoxes map[CIDRKey][]cidrBox
}

func newDirectionBuilder() *directionBuilder {
	return &directionBuilder{
		isolated:  map[ID]struct{}{},
		selected:  map[ID][]string{},
		anyPort:   map[PairKey]struct{}{},
		ports:     map[PortKey][]PortRange{},
		cidrAny:   map[ID][]AddrRange{},
		cidrBoxes: map[CIDRKey][]cidrBox{},
	}
}

func (c *compiler) addRule(b *directionBuilder, subjects []ID, peers []structs.NetpolPeer, ports []structs.NetpolPort, ns string) {
	var ids []ID
	var cidrs []AddrRange
	if len(peers) == 0 {
		// Every source: all addresses, endpoints included, so the CIDR
		// ranges alone cover it.
		cidrs = []AddrRange{allIPv4, allIPv6}
	}
	for i := range peers {
		if blk := peers[i].IPBlock; blk != nil {
			cidrs = append(cidrs, blockRanges(blk.CIDR, blk.Except)...)
			continue
		}
		ids = append(ids, c.peerIDs(&peers[i], ns)...)
	}
	cidrs = mergeAddrRanges(cidrs)
	ps := compilePorts(ports)
	for _, s := range subjects {
		for _, p := range ids {
			if ps.any {
				b.anyPort[PairKey{s, p}] = struct{}{}
				continue
			}
			for _, pr := range ps.ports {
				k := PortKey{s, p, pr.Proto}
				b.ports[k] = append(b.ports[k], pr.PortRange)
			}
		}
		if len(cidrs) == 0 {
			continue
		}
		if ps.any {
			b.cidrAny[s] = append(b.cidrAny[s], cidrs...)
			continue
		}
		for _, pr := range ps.ports {
			k := CIDRKey{s, pr.Proto}
			for _, a := range cidrs {
				b.cidrBoxes[k] = append(b.cidrBoxes[k], cidrBox{a, pr.PortRange})
			}
		}
	}
}

func (b *directionBuilder) finish() Direction {
	d := Direction{
		Isolated:   b.isolated,
		SelectedBy: make(map[ID][]string, len(b.selected)),
		AnyPort:    b.anyPort,
		Ports:      make(map[PortKey][]PortRange, len(b.ports)),
		CIDRAny:    make(map[ID][]AddrRange, len(b.cidrAny)),
		CIDRPorts:  make(map[CIDRKey][]CIDRPorts, len(b.cidrBoxes)),
	}
	for k, v := range b.ports {
		if _, all := b.anyPort[PairKey{k.Subject, k.Peer}]; all {
			continue
		}
		d.Ports[k] = mergePorts(v)
	}
	for k, v := range b.cidrAny {
		d.CIDRAny[k] = mergeAddrRanges(v)
	}
	for k, v := range b.selected {
		slices.Sort(v)
		d.SelectedBy[k] = slices.Compact(v)
	}
	for k, v := range b.cidrBoxes {
		d.CIDRPorts[k] = decomposeBoxes(v)
	}
	return d
}

// compile builds one ruleset; with enforceAudit, audit policies count as
// enforcing (the view the audit log is computed from).
func (c *compiler) compile(policies []structs.NetworkPolicy, admin []structs.AdminNetworkPolicy, enforceAudit bool) *Ruleset {
	r := &Ruleset{
		Endpoints:   make(map[netip.Addr]EndpointIdentity, len(c.eps)),
		Quarantined: map[netip.Addr]struct{}{},
	}
	for i := range c.eps {
		ip := c.eps[i].IP.Unmap()
		r.Endpoints[ip] = c.epIdent[i]
		if c.eps[i].Quarantined {
			r.Quarantined[ip] = struct{}{}
		}
	}
	for _, cl := range c.classes {
		n := &c.namespaces[cl.ns]
		r.Classes = append(r.Classes, Class{ID: cl.id, Namespace: cl.name, Labels: cl.labels, NamespaceLabels: n.labels})
	}
	slices.SortFunc(r.Classes, func(a, b Class) int { return cmp.Compare(a.ID, b.ID) })
	for _, n := range c.namespaces {
		r.Namespaces = append(r.Namespaces, NamespaceIdentity{ID: n.id, Name: n.name, Labels: n.labels})
	}
	slices.SortFunc(r.Namespaces, func(a, b NamespaceIdentity) int { return cmp.Compare(a.ID, b.ID) })

	in, eg := newDirectionBuilder(), newDirectionBuilder()
	for i := range policies {
		p := &policies[i]
		if p.Audit && !enforceAudit {
			continue
		}
		isIn, isEg := p.PolicyDirections()
		subjects := c.classesMatching(p.Namespace, nil, &p.Selector)
		key := p.Namespace + "/" + p.Name
		if isIn {
			for _, s := range subjects {
				in.isolated[s] = struct{}{}
				in.selected[s] = append(in.selected[s], key)
			}
			for _, rule := range p.Ingress {
				c.addRule(in, subjects, rule.From, rule.Ports, p.Namespace)
			}
		}
		if isEg {
			for _, s := range subjects {
				eg.isolated[s] = struct{}{}
				eg.selected[s] = append(eg.selected[s], key)
			}
			for _, rule := range p.Egress {
				c.addRule(eg, subjects, rule.To, rule.Ports, p.Namespace)
			}
		}
	}
	r.Ingress, r.Egress = in.finish(), eg.finish()
	r.AdminIngress, r.AdminEgress = c.compileAdmin(admin)
	return r
}

func (c *compiler) compileAdmin(admin []structs.AdminNetworkPolicy) (ingress, egress []AdminRule) {
	order := make([]*structs.AdminNetworkPolicy, len(admin))
	for i := range admin {
		order[i] = &admin[i]
	}
	slices.SortStableFunc(order, func(a, b *structs.AdminNetworkPolicy) int {
		return cmp.Or(cmp.Compare(a.Priority, b.Priority), cmp.Compare(a.Name, b.Name))
	})
	for _, p := range order {
		subjects := map[ID]struct{}{}
		for _, id := range c.classesMatching("", &p.Subject.NamespaceSelector, p.Subject.PodSelector) {
			subjects[id] = struct{}{}
		}
		build := func(i int, r *structs.AdminNetpolRule) AdminRule {
			ar := AdminRule{
				Policy: p.Name, Priority: p.Priority, Index: i, Name: r.Name,
				Action: r.ActionName(), Subjects: subjects, Peers: map[ID]struct{}{},
			}
			var cidrs []AddrRange
			for j := range r.Peers {
				if blk := r.Peers[j].IPBlock; blk != nil {
					cidrs = append(cidrs, blockRanges(blk.CIDR, blk.Except)...)
					continue
				}
				for _, id := range c.peerIDs(&r.Peers[j], "") {
					ar.Peers[id] = struct{}{}
				}
			}
			ar.PeerCIDRs = mergeAddrRanges(cidrs)
			ps := compilePorts(r.Ports)
			ar.AnyPort = ps.any
			if !ps.any {
				ar.Ports = map[uint8][]PortRange{}
				for _, pr := range ps.ports {
					ar.Ports[pr.Proto] = append(ar.Ports[pr.Proto], pr.PortRange)
				}
				for k, v := range ar.Ports {
					ar.Ports[k] = mergePorts(v)
				}
			}
			return ar
		}
		for i := range p.Ingress {
			ingress = append(ingress, build(i, &p.Ingress[i]))
		}
		for i := range p.Egress {
			egress = append(egress, build(i, &p.Egress[i]))
		}
	}
	return ingress, egress
}
