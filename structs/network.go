package structs

import (
	"encoding/base64"
	"fmt"
	"net/netip"
	"sort"
	"strings"
)

// MaxSubnetBits is the longest prefix a worker's subnet may have: a /30
// still holds a gateway and one allocation; anything longer holds none.
const MaxSubnetBits = 30

// ParseClusterCIDR checks a cluster CIDR and the prefix length of the
// worker subnets cut from it, and returns the parsed range. Only IPv4 is
// supported: the dataplane (bridge, WireGuard AllowedIPs, nftables sets)
// is IPv4-only for now.
func ParseClusterCIDR(cidr string, subnetBits int) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("invalid cluster CIDR %q: want an IPv4 range such as %s", cidr, DefaultClusterCIDR)
	}
	if !p.Addr().Is4() {
		return netip.Prefix{}, fmt.Errorf("invalid cluster CIDR %q: only IPv4 ranges are supported, such as %s", cidr, DefaultClusterCIDR)
	}
	if m := p.Masked(); m != p {
		return netip.Prefix{}, fmt.Errorf("invalid cluster CIDR %q: host bits are set; did you mean %s?", cidr, m)
	}
	if p.Bits() >= MaxSubnetBits {
		return netip.Prefix{}, fmt.Errorf("cluster CIDR %s is too small to hold worker subnets: use a /%d or larger range", cidr, MaxSubnetBits-1)
	}
	if subnetBits <= p.Bits() || subnetBits > MaxSubnetBits {
		return netip.Prefix{}, fmt.Errorf("invalid subnet prefix length /%d for cluster CIDR %s: each worker's subnet must be smaller than the cluster CIDR and hold at least a gateway and one allocation, so use a length from /%d to /%d",
			subnetBits, cidr, p.Bits()+1, MaxSubnetBits)
	}
	return p, nil
}

// Network returns the cluster CIDR and the workers' subnet prefix length.
// Clusters created before the dataplane have neither recorded and use the
// defaults, which is what their workers were told too.
func (c *ClusterConfig) Network() (netip.Prefix, int) {
	cidr, bits := c.ClusterCIDR, c.SubnetBits
	if cidr == "" {
		cidr = DefaultClusterCIDR
	}
	if bits == 0 {
		bits = DefaultSubnetBits
	}
	p, err := ParseClusterCIDR(cidr, bits)
	if err != nil {
		// Bootstrap validates both, so only a hand-edited state gets here;
		// fall back rather than leave every worker without a subnet.
		return netip.MustParsePrefix(DefaultClusterCIDR), DefaultSubnetBits
	}
	return p, bits
}

// ValidateWireGuardKey checks a WireGuard public key as the agent sends it:
// standard base64 of exactly 32 bytes (what `wg pubkey` prints).
func ValidateWireGuardKey(key string) error {
	raw, err := base64.StdEncoding.DecodeString(key)
	if err != nil || len(raw) != 32 {
		return fmt.Errorf("invalid WireGuard public key %q: want the base64 encoding of 32 bytes, as `wg pubkey` prints", key)
	}
	return nil
}

// ValidateLabels checks every key and value of a label set, in key order so
// the first problem reported is always the same one.
func ValidateLabels(labels map[string]string) error {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := ValidateLabelKey(k); err != nil {
			return err
		}
		if err := ValidateLabelValue(labels[k]); err != nil {
			return fmt.Errorf("label %s: %w", k, err)
		}
	}
	return nil
}

// ReservedLabelPrefix starts the label keys Hive sets on every endpoint
// itself (LabelJob, LabelGroup, LabelNamespace); jobs may not set them, so
// a policy selecting hive.io/job=web selects that job and nothing posing
// as it.
const ReservedLabelPrefix = "hive.io/"

// ValidateEndpointLabels checks the labels of a job or group: valid keys
// and values, none under ReservedLabelPrefix.
func ValidateEndpointLabels(labels map[string]string) error {
	if err := ValidateLabels(labels); err != nil {
		return err
	}
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if strings.HasPrefix(k, ReservedLabelPrefix) {
			return fmt.Errorf("label key %q: keys starting with %q are set by Hive itself", k, ReservedLabelPrefix)
		}
	}
	return nil
}

// NamespaceIsolationPolicyName names the policy generated for a namespace
// with Isolation set. Users may not create a policy of that name, so the
// generated one never collides with theirs.
const NamespaceIsolationPolicyName = "hive-namespace-isolation"

// NamespaceIsolationPolicy is the policy `isolation = true` stands for:
// every allocation of ns accepts traffic only from allocations of ns.
// Egress is left alone, so isolated namespaces can still call out.
func NamespaceIsolationPolicy(ns string) NetworkPolicy {
	return NetworkPolicy{
		Namespace:   ns,
		Name:        NamespaceIsolationPolicyName,
		PolicyTypes: []string{PolicyTypeIngress},
		Ingress:     []NetpolIngressRule{{From: []NetpolPeer{{PodSelector: &LabelSelector{}}}}},
	}
}

// NamespaceUpdateRequest changes a namespace's labels, isolation and
// description (PATCH /v1/namespace/{name}). Fields left out (nil) are kept;
// SetLabels are added or replaced and RemoveLabels deleted, so concurrent
// updates of different labels do not undo each other.
type NamespaceUpdateRequest struct {
	Description  *string           `json:"description,omitempty"`
	SetLabels    map[string]string `json:"set_labels,omitempty"`
	RemoveLabels []string          `json:"remove_labels,omitempty"`
	Isolation    *bool             `json:"isolation,omitempty"`
}
