package structs

import (
	"strings"
	"testing"
)

func TestParseClusterCIDR(t *testing.T) {
	for _, tc := range []struct {
		cidr string
		bits int
		want string // "" for valid
	}{
		{DefaultClusterCIDR, DefaultSubnetBits, ""},
		{"198.19.0.0/16", 24, ""},
		{"10.0.0.0/8", 30, ""},
		{"10.0.0.0/29", 30, ""},
		{"10.0.0.0/30", 30, "too small"},
		{"10.0.0.0/16", 16, "from /17 to /30"},
		{"10.0.0.0/16", 8, "from /17 to /30"},
		{"10.0.0.0/16", 31, "from /17 to /30"},
		{"10.0.0.1/16", 24, "did you mean 10.0.0.0/16"},
		{"fd00::/48", 64, "only IPv4"},
		{"::ffff:10.0.0.0/104", 120, "only IPv4"},
		{"10.0.0.0", 24, "invalid cluster CIDR"},
		{"", 24, "invalid cluster CIDR"},
	} {
		_, err := ParseClusterCIDR(tc.cidr, tc.bits)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q /%d: %v", tc.cidr, tc.bits, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%q /%d: %v, want an error containing %q", tc.cidr, tc.bits, err, tc.want)
		}
	}
}

func TestClusterNetworkDefaults(t *testing.T) {
	p, bits := (&ClusterConfig{}).Network()
	if p.String() != DefaultClusterCIDR || bits != DefaultSubnetBits {
		t.Errorf("a cluster without a recorded range uses %s /%d", p, bits)
	}
	p, bits = (&ClusterConfig{ClusterCIDR: "198.19.0.0/16", SubnetBits: 26}).Network()
	if p.String() != "198.19.0.0/16" || bits != 26 {
		t.Errorf("recorded range read as %s /%d", p, bits)
	}
}

func TestValidateWireGuardKey(t *testing.T) {
	good := "mFLBb9Mko2aU/WOsAJHyfyYkL2mXJSIx7xOIDkuQq3Q="
	if err := ValidateWireGuardKey(good); err != nil {
		t.Errorf("%s: %v", good, err)
	}
	for _, bad := range []string{"", "short", good[:len(good)-4], good + "AAAA", strings.ReplaceAll(good, "/", "_"), " " + good} {
		if err := ValidateWireGuardKey(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestValidateEndpointLabels(t *testing.T) {
	if err := ValidateEndpointLabels(map[string]string{"app": "web", "example.com/tier": "", "a.b_c-d": "x.y"}); err != nil {
		t.Error(err)
	}
	for _, bad := range []map[string]string{
		{"hive.io/job": "x"}, {"": "x"}, {"a b": "x"}, {"app": "-web"}, {"a/b/c": "x"}, {"app": strings.Repeat("x", 64)},
	} {
		if err := ValidateEndpointLabels(bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

func TestNamespaceIsolationPolicy(t *testing.T) {
	p := NamespaceIsolationPolicy("shop")
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	in, eg := p.PolicyDirections()
	if !in || eg {
		t.Errorf("isolation isolates ingress %v, egress %v; want ingress only", in, eg)
	}
	// Same namespace: admitted; another namespace: not.
	peer := p.Ingress[0].From[0]
	if peer.NamespaceSelector != nil || peer.PodSelector == nil || !peer.PodSelector.Empty() {
		t.Errorf("peer %+v, want every allocation of the policy's own namespace", peer)
	}
}
