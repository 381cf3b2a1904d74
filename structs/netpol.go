package structs

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
)

// Network policies follow Kubernetes NetworkPolicy and AdminNetworkPolicy
// semantics so that operators can carry their intuition (and their test
// tables) over: a task selected by any policy of a direction is default-deny
// in that direction and the policies' rules are additive allows; admin
// policies are cluster-wide, ordered by priority, and are consulted first.
//
// Validation errors are FieldErrors whose Field is a path in HCL names
// ("ingress[0].from[1].except[0]") so a parser can point at the argument.

// Label selector operators, as in Kubernetes.
const (
	SelectorOpIn           = "In"
	SelectorOpNotIn        = "NotIn"
	SelectorOpExists       = "Exists"
	SelectorOpDoesNotExist = "DoesNotExist"
)

// Network policy directions (PolicyTypes values).
const (
	PolicyTypeIngress = "Ingress"
	PolicyTypeEgress  = "Egress"
)

// Protocols a NetpolPort may name.
const (
	ProtocolTCP  = "TCP"
	ProtocolUDP  = "UDP"
	ProtocolSCTP = "SCTP"
)

// Admin network policy rule actions.
const (
	AdminActionAllow = "Allow"
	AdminActionDeny  = "Deny"
	AdminActionPass  = "Pass"
)

// Admin priorities run from 0 (evaluated first) to MaxAdminPriority, as in
// Kubernetes AdminNetworkPolicy.
const MaxAdminPriority = 1000

// MaxAdminRulesPerDirection bounds the rules of one admin policy per
// direction (the Kubernetes limit). Admin rules are evaluated as an ordered
// list on every packet, so their number must stay small.
const MaxAdminRulesPerDirection = 100

// LabelSelector selects label sets. Both parts must match (AND). The empty
// selector matches everything; a nil *LabelSelector in a peer means "this
// part is not constrained", which is not always the same thing (see
// NetpolPeer).
type LabelSelector struct {
	MatchLabels      map[string]string
	MatchExpressions []LabelSelectorRequirement
}

// LabelSelectorRequirement is one match expression: Key Operator Values.
type LabelSelectorRequirement struct {
	Key      string
	Operator string // In, NotIn, Exists, DoesNotExist
	Values   []string
}

// Empty reports whether the selector has no constraint and so matches every
// label set.
func (s *LabelSelector) Empty() bool {
	return len(s.MatchLabels) == 0 && len(s.MatchExpressions) == 0
}

// Matches reports whether labels satisfy the selector. As in Kubernetes,
// NotIn and DoesNotExist match a label set that lacks the key.
func (s *LabelSelector) Matches(labels map[string]string) bool {
	for k, v := range s.MatchLabels {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	for _, e := range s.MatchExpressions {
		if !e.Matches(labels) {
			return false
		}
	}
	return true
}

// Matches reports whether labels satisfy this one requirement. An unknown
// operator matches nothing, so an unvalidated selector fails closed.
func (r *LabelSelectorRequirement) Matches(labels map[string]string) bool {
	v, ok := labels[r.Key]
	switch r.Operator {
	case SelectorOpExists:
		return ok
	case SelectorOpDoesNotExist:
		return !ok
	case SelectorOpIn:
		return ok && containsString(r.Values, v)
	case SelectorOpNotIn:
		return !ok || !containsString(r.Values, v)
	}
	return false
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// labelNameRE is the name part of a Kubernetes qualified name and the shape
// of a non-empty label value.
var labelNameRE = regexp.MustCompile(`^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$`)

// labelPrefixRE is a DNS subdomain, the optional prefix of a label key.
var labelPrefixRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)

// ValidateLabelKey checks a label key: an optional DNS subdomain prefix of
// at most 253 characters and '/', then a name of 1-63 letters, digits, '-',
// '_' and '.', starting and ending with a letter or digit.
func ValidateLabelKey(key string) error {
	name := key
	if i := strings.LastIndexByte(key, '/'); i >= 0 {
		prefix := key[:i]
		name = key[i+1:]
		if len(prefix) == 0 || len(prefix) > 253 || !labelPrefixRE.MatchString(prefix) {
			return fmt.Errorf("invalid label key %q: the prefix before '/' must be a DNS subdomain of at most 253 characters", key)
		}
	}
	if len(name) == 0 || len(name) > 63 || !labelNameRE.MatchString(name) {
		return fmt.Errorf("invalid label key %q: the name must be 1-63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit", key)
	}
	return nil
}

// ValidateLabelValue checks a label value: empty, or 1-63 letters, digits,
// '-', '_' and '.', starting and ending with a letter or digit.
func ValidateLabelValue(v string) error {
	if v == "" {
		return nil
	}
	if len(v) > 63 || !labelNameRE.MatchString(v) {
		return fmt.Errorf("invalid label value %q: use at most 63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit", v)
	}
	return nil
}

// Validate checks keys, values and operators.
func (s *LabelSelector) Validate() error {
	for k, v := range s.MatchLabels {
		if err := ValidateLabelKey(k); err != nil {
			return &FieldError{Field: "match_labels", Err: err}
		}
		if err := ValidateLabelValue(v); err != nil {
			return &FieldError{Field: "match_labels", Err: err}
		}
	}
	for i, e := range s.MatchExpressions {
		if err := e.Validate(); err != nil {
			return prefixField(fmt.Sprintf("match_expressions[%d]", i), err)
		}
	}
	return nil
}

// Validate checks one requirement: In and NotIn need values (an empty set
// would make In match nothing and NotIn everything, which is never what was
// meant); Exists and DoesNotExist take none.
func (r *LabelSelectorRequirement) Validate() error {
	if err := ValidateLabelKey(r.Key); err != nil {
		return &FieldError{Field: "key", Err: err}
	}
	switch r.Operator {
	case SelectorOpIn, SelectorOpNotIn:
		if len(r.Values) == 0 {
			return fieldErrorf("values", "operator %s needs at least one value", r.Operator)
		}
	case SelectorOpExists, SelectorOpDoesNotExist:
		if len(r.Values) != 0 {
			return fieldErrorf("values", "operator %s takes no values", r.Operator)
		}
	default:
		return fieldErrorf("operator", "unknown operator %q: use In, NotIn, Exists or DoesNotExist", r.Operator)
	}
	for _, v := range r.Values {
		if err := ValidateLabelValue(v); err != nil {
			return &FieldError{Field: "values", Err: err}
		}
	}
	return nil
}

// NetworkPolicy is a namespaced policy with Kubernetes NetworkPolicy
// semantics. Selector picks the tasks (by their labels) in Namespace the
// policy applies to; the empty selector picks all of them.
type NetworkPolicy struct {
	Namespace string
	Name      string
	Selector  LabelSelector
	// PolicyTypes lists the directions the policy isolates. When empty it
	// is inferred as in Kubernetes: always Ingress, and Egress when there
	// are egress rules. So a policy with a selector and nothing else denies
	// all ingress to what it selects.
	PolicyTypes []string
	Ingress     []NetpolIngressRule
	Egress      []NetpolEgressRule
	// Audit policies are not enforced: the flows they would deny are
	// logged and let through, so a policy can be tried before it bites.
	Audit       bool
	CreateIndex uint64
	ModifyIndex uint64
}

// NetpolIngressRule allows traffic from any of From to any of Ports. An
// empty From means every source (tasks and external addresses); empty Ports
// means every port and protocol.
type NetpolIngressRule struct {
	From  []NetpolPeer
	Ports []NetpolPort
}

// NetpolEgressRule allows traffic to any of To on any of Ports. An empty To
// means every destination; empty Ports means every port and protocol.
type NetpolEgressRule struct {
	To    []NetpolPeer
	Ports []NetpolPort
}

// NetpolPeer is one side of a flow. Either IPBlock is set, or one or both
// selectors:
//   - PodSelector alone: tasks in the policy's own namespace whose labels
//     match;
//   - NamespaceSelector alone: every task in namespaces whose labels match;
//   - both: tasks matching PodSelector in namespaces matching
//     NamespaceSelector.
//
// An IPBlock matches addresses, task addresses included; selectors never
// match addresses outside the cluster.
//
// In an AdminNetworkPolicy there is no "own namespace": a nil selector there
// means any namespace or any task.
type NetpolPeer struct {
	PodSelector       *LabelSelector
	NamespaceSelector *LabelSelector
	IPBlock           *IPBlock
}

// IPBlock is a CIDR minus the CIDRs in Except, each of which must lie
// strictly inside it.
type IPBlock struct {
	CIDR   string
	Except []string
}

// NetpolPort is a protocol and a port or, with EndPort, an inclusive port
// range. Protocol defaults to TCP and is case-insensitive.
type NetpolPort struct {
	Protocol string
	Port     int
	EndPort  int
}

// PolicyDirections reports which directions the policy isolates, applying
// the Kubernetes defaults when PolicyTypes is empty.
func (p *NetworkPolicy) PolicyDirections() (ingress, egress bool) {
	if len(p.PolicyTypes) == 0 {
		return true, len(p.Egress) > 0
	}
	for _, t := range p.PolicyTypes {
		switch t {
		case PolicyTypeIngress:
			ingress = true
		case PolicyTypeEgress:
			egress = true
		}
	}
	return ingress, egress
}

// Validate checks the whole policy and reports the first problem with the
// path of the offending field.
func (p *NetworkPolicy) Validate() error {
	if err := ValidateName("namespace", p.Namespace); err != nil {
		return &FieldError{Field: "namespace", Err: err}
	}
	if err := ValidateName("network policy", p.Name); err != nil {
		return &FieldError{Field: "name", Err: err}
	}
	if err := p.Selector.Validate(); err != nil {
		return prefixField("selector", err)
	}
	seen := map[string]bool{}
	for _, t := range p.PolicyTypes {
		if t != PolicyTypeIngress && t != PolicyTypeEgress {
			return fieldErrorf("policy_types", "unknown policy type %q: use Ingress or Egress", t)
		}
		if seen[t] {
			return fieldErrorf("policy_types", "policy type %q listed twice", t)
		}
		seen[t] = true
	}
	// Kubernetes silently ignores rules of a direction the policy does not
	// isolate; that is always a mistake, so say so.
	in, eg := p.PolicyDirections()
	if len(p.Ingress) > 0 && !in {
		return fieldErrorf("ingress", "ingress rules given but policy_types does not include Ingress, so they would be ignored")
	}
	if len(p.Egress) > 0 && !eg {
		return fieldErrorf("egress", "egress rules given but policy_types does not include Egress, so they would be ignored")
	}
	for i, r := range p.Ingress {
		if err := validatePeersPorts(r.From, r.Ports, "from", false); err != nil {
			return prefixField(fmt.Sprintf("ingress[%d]", i), err)
		}
	}
	for i, r := range p.Egress {
		if err := validatePeersPorts(r.To, r.Ports, "to", false); err != nil {
			return prefixField(fmt.Sprintf("egress[%d]", i), err)
		}
	}
	return nil
}

func validatePeersPorts(peers []NetpolPeer, ports []NetpolPort, peerField string, admin bool) error {
	if admin && len(peers) == 0 {
		return fieldErrorf(peerField, "an admin rule needs at least one peer")
	}
	for i := range peers {
		if err := peers[i].Validate(); err != nil {
			return prefixField(fmt.Sprintf("%s[%d]", peerField, i), err)
		}
	}
	for i := range ports {
		if err := ports[i].Validate(); err != nil {
			return prefixField(fmt.Sprintf("ports[%d]", i), err)
		}
	}
	return nil
}

// Validate checks that the peer is either an IP block or selectors, and
// that whichever it is is well formed.
func (p *NetpolPeer) Validate() error {
	if p.IPBlock != nil {
		if p.PodSelector != nil || p.NamespaceSelector != nil {
			return errors.New("a peer is either cidr or selectors, not both")
		}
		return p.IPBlock.Validate()
	}
	if p.PodSelector == nil && p.NamespaceSelector == nil {
		return errors.New("a peer needs cidr, selector or namespace_selector")
	}
	if p.PodSelector != nil {
		if err := p.PodSelector.Validate(); err != nil {
			return prefixField("selector", err)
		}
	}
	if p.NamespaceSelector != nil {
		if err := p.NamespaceSelector.Validate(); err != nil {
			return prefixField("namespace_selector", err)
		}
	}
	return nil
}

// Validate checks the CIDR and that every exception lies strictly inside
// it. Host bits must be zero: "10.1.2.3/8" is far more often a typo than a
// way to write 10.0.0.0/8, so it is refused rather than guessed at.
func (b *IPBlock) Validate() error {
	cidr, err := parseNetpolCIDR(b.CIDR)
	if err != nil {
		return &FieldError{Field: "cidr", Err: err}
	}
	for i, e := range b.Except {
		field := fmt.Sprintf("except[%d]", i)
		ex, err := parseNetpolCIDR(e)
		if err != nil {
			return &FieldError{Field: field, Err: err}
		}
		if ex.Addr().Is4() != cidr.Addr().Is4() || ex.Bits() <= cidr.Bits() || !cidr.Contains(ex.Addr()) {
			return fieldErrorf(field, "%s is not strictly inside cidr %s", e, b.CIDR)
		}
	}
	return nil
}

// ParseNetpolCIDR parses a CIDR as IPBlock accepts it.
func ParseNetpolCIDR(s string) (netip.Prefix, error) { return parseNetpolCIDR(s) }

func parseNetpolCIDR(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("invalid CIDR %q: want an address and prefix length like 10.0.0.0/8 or fd00::/64", s)
	}
	if p.Addr().Is4In6() {
		return netip.Prefix{}, fmt.Errorf("invalid CIDR %q: write IPv4 ranges in IPv4 form", s)
	}
	if p.Addr().Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("invalid CIDR %q: zones are not allowed", s)
	}
	if m := p.Masked(); m != p {
		return netip.Prefix{}, fmt.Errorf("invalid CIDR %q: host bits are set; did you mean %s?", s, m)
	}
	return p, nil
}

// ProtocolName returns the canonical (upper-case) protocol, TCP when unset.
func (p *NetpolPort) ProtocolName() string {
	if p.Protocol == "" {
		return ProtocolTCP
	}
	return strings.ToUpper(p.Protocol)
}

// Validate checks the protocol and the port range. A port is required:
// to allow every port of one protocol write port = 1, end_port = 65535
// (leaving ports out altogether allows every port of every protocol).
func (p *NetpolPort) Validate() error {
	switch p.ProtocolName() {
	case ProtocolTCP, ProtocolUDP, ProtocolSCTP:
	default:
		return fieldErrorf("protocol", "unknown protocol %q: use TCP, UDP or SCTP", p.Protocol)
	}
	if p.Port < 1 || p.Port > 65535 {
		return fieldErrorf("port", "port %d is out of range 1-65535", p.Port)
	}
	if p.EndPort != 0 {
		if p.EndPort > 65535 {
			return fieldErrorf("end_port", "end_port %d is out of range 1-65535", p.EndPort)
		}
		if p.EndPort < p.Port {
			return fieldErrorf("end_port", "end_port %d is below port %d", p.EndPort, p.Port)
		}
	}
	return nil
}

// AdminNetworkPolicy is a cluster-wide policy evaluated before namespace
// policies, as Kubernetes AdminNetworkPolicy: rules of all admin policies
// are tried in ascending Priority (ties broken by Name, then rule order) and
// the first that matches decides the direction: Allow and Deny are final,
// Pass hands the decision to the namespace policies.
type AdminNetworkPolicy struct {
	Name        string
	Priority    int
	Subject     AdminNetpolSubject
	Ingress     []AdminNetpolRule
	Egress      []AdminNetpolRule
	CreateIndex uint64
	ModifyIndex uint64
}

// AdminNetpolSubject picks the tasks an admin policy applies to: those in
// namespaces matching NamespaceSelector (empty: all namespaces) whose labels
// match PodSelector (nil: all tasks there).
type AdminNetpolSubject struct {
	NamespaceSelector LabelSelector
	PodSelector       *LabelSelector
}

// AdminNetpolRule is one ordered rule. Peers are the sources (ingress) or
// destinations (egress) and must not be empty; empty Ports means every port
// and protocol.
type AdminNetpolRule struct {
	Name   string
	Action string // Allow, Deny or Pass, case-insensitive
	Peers  []NetpolPeer
	Ports  []NetpolPort
}

// ActionName returns the canonical action ("Allow", "Deny", "Pass"), or ""
// for an unknown one.
func (r *AdminNetpolRule) ActionName() string {
	for _, a := range []string{AdminActionAllow, AdminActionDeny, AdminActionPass} {
		if strings.EqualFold(r.Action, a) {
			return a
		}
	}
	return ""
}

// Validate checks name, priority, subject and rules.
func (p *AdminNetworkPolicy) Validate() error {
	if err := ValidateName("admin network policy", p.Name); err != nil {
		return &FieldError{Field: "name", Err: err}
	}
	if p.Priority < 0 || p.Priority > MaxAdminPriority {
		return fieldErrorf("priority", "priority %d is out of range 0-%d", p.Priority, MaxAdminPriority)
	}
	if err := p.Subject.NamespaceSelector.Validate(); err != nil {
		return prefixField("subject.namespace_selector", err)
	}
	if p.Subject.PodSelector != nil {
		if err := p.Subject.PodSelector.Validate(); err != nil {
			return prefixField("subject.selector", err)
		}
	}
	if len(p.Ingress) > MaxAdminRulesPerDirection {
		return fieldErrorf("ingress", "%d rules; at most %d are allowed", len(p.Ingress), MaxAdminRulesPerDirection)
	}
	if len(p.Egress) > MaxAdminRulesPerDirection {
		return fieldErrorf("egress", "%d rules; at most %d are allowed", len(p.Egress), MaxAdminRulesPerDirection)
	}
	for _, d := range []struct {
		dir, peerField string
		rules          []AdminNetpolRule
	}{{"ingress", "from", p.Ingress}, {"egress", "to", p.Egress}} {
		dir, peerField, rules := d.dir, d.peerField, d.rules
		for i := range rules {
			r := &rules[i]
			field := fmt.Sprintf("%s[%d]", dir, i)
			if r.ActionName() == "" {
				return fieldErrorf(field+".action", "unknown action %q: use allow, deny or pass", r.Action)
			}
			if err := validatePeersPorts(r.Peers, r.Ports, peerField, true); err != nil {
				return prefixField(field, err)
			}
		}
	}
	return nil
}

// prefixField puts path in front of a FieldError's field (or makes err one),
// so nested validators can report "ingress[0].from[1].cidr".
func prefixField(path string, err error) error {
	var fe *FieldError
	if errors.As(err, &fe) {
		return &FieldError{Field: path + "." + fe.Field, Err: fe.Err}
	}
	return &FieldError{Field: path, Err: err}
}

// DefaultClusterCIDR is the range allocation subnets are leased from when
// `hive init` is not given --cluster-cidr, and DefaultSubnetBits the prefix
// length of each worker's subnet (a /24: 253 allocations per worker).
const (
	DefaultClusterCIDR = "10.242.0.0/16"
	DefaultSubnetBits  = 24
)

// Labels every allocation's endpoint carries besides its job's and group's
// own, so policies can select by job and group without declaring labels.
const (
	LabelJob       = "hive.io/job"
	LabelGroup     = "hive.io/group"
	LabelNamespace = "hive.io/namespace" // on namespaces, as Kubernetes' kubernetes.io/metadata.name
)

// NodeNetwork is a worker's view of the cluster dataplane, served to it by
// the managers (GET /v1/node/network, a blocking query): its own subnet,
// its WireGuard peers, and what it needs to compile the network policy for
// the allocations it runs. Endpoints lists every live allocation with an
// address in the cluster, since policies on this node name peers anywhere.
type NodeNetwork struct {
	ClusterCIDR   string               `json:"cluster_cidr"`
	Subnet        string               `json:"subnet"`
	Peers         []NetworkPeer        `json:"peers"`
	Policies      []NetworkPolicy      `json:"policies"`
	AdminPolicies []AdminNetworkPolicy `json:"admin_policies"`
	Endpoints     []NetworkEndpoint    `json:"endpoints"`
}

// NetworkPeer is another worker of the WireGuard mesh.
type NetworkPeer struct {
	NodeID    string `json:"node_id"`
	PublicKey string `json:"public_key"` // base64
	Endpoint  string `json:"endpoint"`   // host:port of its WireGuard socket
	Subnet    string `json:"subnet"`
}

// NetworkEndpoint is one allocation as network policy sees it.
type NetworkEndpoint struct {
	AllocID         string            `json:"alloc_id"`
	NodeID          string            `json:"node_id"`
	Namespace       string            `json:"namespace"`
	Labels          map[string]string `json:"labels"`
	NamespaceLabels map[string]string `json:"namespace_labels"`
	Address         string            `json:"address"`
	Quarantined     bool              `json:"quarantined"`
}
