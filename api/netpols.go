package api

import (
	"net/http"
	"net/url"

	"github.com/hivesec/hive/structs"
)

// NetworkPolicies manages namespaced network policies, which decide what
// allocations may talk to (Kubernetes NetworkPolicy semantics).
type NetworkPolicies struct{ c *Client }

// NetworkPolicies returns the network policy endpoints.
func (c *Client) NetworkPolicies() *NetworkPolicies { return &NetworkPolicies{c} }

// List returns the policies of namespace ns, or of every namespace when ns
// is empty (which needs netpol:list granted globally).
func (n *NetworkPolicies) List(ns string, q *QueryOptions) ([]structs.NetworkPolicy, *QueryMeta, error) {
	path := "/v1/netpols"
	if ns != "" {
		path += "?" + url.Values{"namespace": {ns}}.Encode()
	}
	var out []structs.NetworkPolicy
	meta, err := n.c.query(path, q, &out)
	if err != nil {
		return nil, nil, err
	}
	return out, meta, nil
}

// Info returns one policy.
func (n *NetworkPolicies) Info(ns, name string, q *QueryOptions) (*structs.NetworkPolicy, *QueryMeta, error) {
	if err := checkID("namespace", ns); err != nil {
		return nil, nil, err
	}
	if err := checkID("network policy name", name); err != nil {
		return nil, nil, err
	}
	var out structs.NetworkPolicy
	meta, err := n.c.query("/v1/netpol/"+esc(ns)+"/"+esc(name), q, &out)
	if err != nil {
		return nil, nil, err
	}
	return &out, meta, nil
}

// Put creates the policy, or replaces the one of that namespace and name,
// and returns it as stored.
func (n *NetworkPolicies) Put(p *structs.NetworkPolicy) (*structs.NetworkPolicy, error) {
	if err := checkID("network policy name", p.Name); err != nil {
		return nil, err
	}
	var out structs.NetworkPolicy
	if err := n.c.write(http.MethodPut, "/v1/netpols", p, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Delete deletes one policy.
func (n *NetworkPolicies) Delete(ns, name string) error {
	if err := checkID("namespace", ns); err != nil {
		return err
	}
	if err := checkID("network policy name", name); err != nil {
		return err
	}
	return n.c.write(http.MethodDelete, "/v1/netpol/"+esc(ns)+"/"+esc(name), nil, nil)
}

// AdminNetworkPolicies manages the cluster-wide admin network policies,
// evaluated before namespaced ones (Kubernetes AdminNetworkPolicy).
type AdminNetworkPolicies struct{ c *Client }

// AdminNetworkPolicies returns the admin network policy endpoints.
func (c *Client) AdminNetworkPolicies() *AdminNetworkPolicies { return &AdminNetworkPolicies{c} }

// List returns every admin policy.
func (a *AdminNetworkPolicies) List(q *QueryOptions) ([]structs.AdminNetworkPolicy, *QueryMeta, error) {
	var out []structs.AdminNetworkPolicy
	meta, err := a.c.query("/v1/admin-netpols", q, &out)
	if err != nil {
		return nil, nil, err
	}
	return out, meta, nil
}

// Info returns one admin policy.
func (a *AdminNetworkPolicies) Info(name string, q *QueryOptions) (*structs.AdminNetworkPolicy, *QueryMeta, error) {
	if err := checkID("admin network policy name", name); err != nil {
		return nil, nil, err
	}
	var out structs.AdminNetworkPolicy
	meta, err := a.c.query("/v1/admin-netpol/"+esc(name), q, &out)
	if err != nil {
		return nil, nil, err
	}
	return &out, meta, nil
}

// Put creates the admin policy, or replaces the one of that name, and
// returns it as stored.
func (a *AdminNetworkPolicies) Put(p *structs.AdminNetworkPolicy) (*structs.AdminNetworkPolicy, error) {
	if err := checkID("admin network policy name", p.Name); err != nil {
		return nil, err
	}
	var out structs.AdminNetworkPolicy
	if err := a.c.write(http.MethodPut, "/v1/admin-netpols", p, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Delete deletes one admin policy.
func (a *AdminNetworkPolicies) Delete(name string) error {
	if err := checkID("admin network policy name", name); err != nil {
		return err
	}
	return a.c.write(http.MethodDelete, "/v1/admin-netpol/"+esc(name), nil, nil)
}

// Quarantine cuts an allocation off the network: its worker drops all its
// traffic, established connections included, until Unquarantine. It
// returns the allocation after the change.
func (a *Allocations) Quarantine(id string) (*structs.Allocation, error) {
	return a.quarantine(http.MethodPost, id)
}

// Unquarantine releases an allocation from quarantine; the network
// policies apply to it again.
func (a *Allocations) Unquarantine(id string) (*structs.Allocation, error) {
	return a.quarantine(http.MethodDelete, id)
}

func (a *Allocations) quarantine(method, id string) (*structs.Allocation, error) {
	if err := checkID("allocation ID", id); err != nil {
		return nil, err
	}
	var out structs.Allocation
	if err := a.c.write(method, "/v1/allocation/"+esc(id)+"/quarantine", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Update changes a namespace's labels, isolation or description; what req
// leaves out is kept. It returns the namespace after the change.
func (n *Namespaces) Update(name string, req structs.NamespaceUpdateRequest) (*structs.Namespace, error) {
	if err := checkID("namespace name", name); err != nil {
		return nil, err
	}
	var out structs.Namespace
	if err := n.c.write(http.MethodPatch, "/v1/namespace/"+esc(name), &req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
