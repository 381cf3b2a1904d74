package server

import (
	"encoding/json"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/hashicorp/go-memdb"

	"github.com/hivesec/hive/fsm"
	"github.com/hivesec/hive/fsm/state"
	"github.com/hivesec/hive/structs"
)

// The network dataplane's API: network policies and admin network
// policies, allocation quarantine, namespace labels, and the worker's long
// poll for everything its dataplane is compiled from.

// netpolBodyScope authorizes PUT /v1/netpols in the namespace the body's
// policy names. It decodes the body into the type the handler decodes, so
// the namespace authorized is the one written, whatever the spelling of
// the key (encoding/json matches field names case-insensitively).
func netpolBodyScope(_ *Server, r *http.Request, body []byte) (string, string, error) {
	var p structs.NetworkPolicy
	if json.Unmarshal(body, &p) != nil {
		return namespaceParam(r), "", nil // the handler reports the bad body
	}
	if err := netpolNamespace(r, &p); err != nil {
		return "", "", err
	}
	return p.Namespace, p.Name, nil
}

// netpolNamespace fills in a policy's namespace from ?namespace= (default
// "default") when the body names none, and refuses a body and a parameter
// that disagree rather than pick one.
func netpolNamespace(r *http.Request, p *structs.NetworkPolicy) error {
	ns, _, err := pickNamespace(r, namespaceParam(r), p.Namespace, p.Name)
	if err != nil {
		return err
	}
	p.Namespace = ns
	return nil
}

func (s *Server) handleNetpols(w http.ResponseWriter, r *http.Request, _ *caller) (any, error) {
	ns := r.URL.Query().Get("namespace")
	return s.blockingQuery(w, r, func(ws memdb.WatchSet, snap *state.Snapshot) (any, uint64, error) {
		out := []*structs.NetworkPolicy{}
		out = append(out, snap.NetworkPolicies(ws, ns)...)
		return out, snap.Index(state.TableNetworkPolicies), nil
	})
}

func (s *Server) handleNetpol(w http.ResponseWriter, r *http.Request, _ *caller) (any, error) {
	ns, name := r.PathValue("ns"), r.PathValue("name")
	return s.blockingQuery(w, r, func(ws memdb.WatchSet, snap *state.Snapshot) (any, uint64, error) {
		p := snap.NetworkPolicy(ws, ns, name)
		if p == nil {
			return nil, 0, notFound("network policy %s/%s not found; list them with `hive netpol ls -n %s`", ns, name, ns)
		}
		return p, snap.Index(state.TableNetworkPolicies), nil
	})
}

// handleNetpolPut creates or replaces one network policy. Creating needs
// netpol:create (the route's permission), replacing also netpol:update.
func (s *Server) handleNetpolPut(_ http.ResponseWriter, r *http.Request, c *caller) (any, error) {
	var p structs.NetworkPolicy
	if err := decodeJSON(r, &p); err != nil {
		return nil, err
	}
	if err := netpolNamespace(r, &p); err != nil {
		return nil, err
	}
	p.CreateIndex, p.ModifyIndex = 0, 0
	if err := p.Validate(); err != nil {
		return nil, badRequest("network policy %s/%s: %v", p.Namespace, p.Name, err)
	}
	if p.Name == structs.NamespaceIsolationPolicyName {
		return nil, badRequest("network policy %s/%s: name: %q is reserved for the policy a namespace's isolation generates; choose another name", p.Namespace, p.Name, p.Name)
	}
	snap := s.fsm.State().Snapshot()
	if snap.Namespace(nil, p.Namespace) == nil {
		return nil, notFound("network policy %s/%s: namespace: namespace %q does not exist; create it with `hive namespace create %s`", p.Namespace, p.Name, p.Namespace, p.Namespace)
	}
	if snap.NetworkPolicy(nil, p.Namespace, p.Name) != nil && !s.decide(c, "netpol", "update", p.Namespace, p.Name).Allowed {
		return nil, errorf(http.StatusForbidden, "forbidden", "network policy %s/%s exists; replacing it needs netpol:update", p.Namespace, p.Name)
	}
	if _, err := s.apply(fsm.NetworkPolicyUpsertType, &fsm.NetworkPolicyUpsertRequest{Policy: p}); err != nil {
		return nil, err
	}
	return s.fsm.State().Snapshot().NetworkPolicy(nil, p.Namespace, p.Name), nil
}

func (s *Server) handleNetpolDelete(_ http.ResponseWriter, r *http.Request, _ *caller) (any, error) {
	ns, name := r.PathValue("ns"), r.PathValue("name")
	if s.fsm.State().Snapshot().NetworkPolicy(nil, ns, name) == nil {
		return nil, notFound("network policy %s/%s not found; list them with `hive netpol ls -n %s`", ns, name, ns)
	}
	if _, err := s.apply(fsm.NetworkPolicyDeleteType, &fsm.NetworkPolicyDeleteRequest{Namespace: ns, Name: name}); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

func (s *Server) handleAdminNetpols(w http.ResponseWriter, r *http.Request, _ *caller) (any, error) {
	return s.blockingQuery(w, r, func(ws memdb.WatchSet, snap *state.Snapshot) (any, uint64, error) {
		out := []*structs.AdminNetworkPolicy{}
		out = append(out, snap.AdminNetworkPolicies(ws)...)
		return out, snap.Index(state.TableAdminNetworkPolicies), nil
	})
}

func (s *Server) handleAdminNetpol(w http.ResponseWriter, r *http.Request, _ *caller) (any, error) {
	name := r.PathValue("name")
	return s.blockingQuery(w, r, func(ws memdb.WatchSet, snap *state.Snapshot) (any, uint64, error) {
		p := snap.AdminNetworkPolicy(ws, name)
		if p == nil {
			return nil, 0, notFound("admin network policy %s not found; list them with `hive admin-netpol ls`", name)
		}
		return p, snap.Index(state.TableAdminNetworkPolicies), nil
	})
}

// handleAdminNetpolPut creates or replaces one admin network policy;
// replacing also needs netpol/admin:update.
func (s *Server) handleAdminNetpolPut(_ http.ResponseWriter, r *http.Request, c *caller) (any, error) {
	var p structs.AdminNetworkPolicy
	if err := decodeJSON(r, &p); err != nil {
		return nil, err
	}
	p.CreateIndex, p.ModifyIndex = 0, 0
	if err := p.Validate(); err != nil {
		return nil, badRequest("admin network policy %s: %v", p.Name, err)
	}
	if s.fsm.State().Snapshot().AdminNetworkPolicy(nil, p.Name) != nil && !s.decide(c, "netpol/admin", "update", "", p.Name).Allowed {
		return nil, errorf(http.StatusForbidden, "forbidden", "admin network policy %s exists; replacing it needs netpol/admin:update", p.Name)
	}
	if _, err := s.apply(fsm.AdminNetworkPolicyUpsertType, &fsm.AdminNetworkPolicyUpsertRequest{Policy: p}); err != nil {
		return nil, err
	}
	return s.fsm.State().Snapshot().AdminNetworkPolicy(nil, p.Name), nil
}

func (s *Server) handleAdminNetpolDelete(_ http.ResponseWriter, r *http.Request, _ *caller) (any, error) {
	name := r.PathValue("name")
	if s.fsm.State().Snapshot().AdminNetworkPolicy(nil, name) == nil {
		return nil, notFound("admin network policy %s not found; list them with `hive admin-netpol ls`", name)
	}
	if _, err := s.apply(fsm.AdminNetworkPolicyDeleteType, &fsm.AdminNetworkPolicyDeleteRequest{Name: name}); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

// handleAllocQuarantine quarantines (on) or releases an allocation. Its
// worker sees the change in its next /v1/node/network answer and drops
// the allocation's traffic, established flows included. The write raises
// an event; the request itself is in the audit log like every mutation.
func (s *Server) handleAllocQuarantine(on bool) handlerFunc {
	return func(_ http.ResponseWriter, r *http.Request, c *caller) (any, error) {
		id := r.PathValue("id")
		if s.fsm.State().Snapshot().Alloc(nil, id) == nil {
			return nil, notFound("allocation %q not found; list them with `hive alloc ls`", id)
		}
		if _, err := s.apply(fsm.AllocQuarantineType, &fsm.AllocQuarantineRequest{
			AllocID: id, Quarantined: on, By: c.String(), Now: time.Now().UTC(),
		}); err != nil {
			return nil, err
		}
		return s.fsm.State().Snapshot().Alloc(nil, id), nil
	}
}

// handleNamespaceUpdate changes a namespace's labels, isolation or
// description. Only global grants reach it: a namespace's labels decide
// which admin policies select it, so its owners must not change them.
func (s *Server) handleNamespaceUpdate(_ http.ResponseWriter, r *http.Request, _ *caller) (any, error) {
	name := r.PathValue("name")
	var req structs.NamespaceUpdateRequest
	if err := decodeJSON(r, &req); err != nil {
		return nil, err
	}
	if err := structs.ValidateLabels(req.SetLabels); err != nil {
		return nil, badRequest("set_labels: %v", err)
	}
	for _, k := range req.RemoveLabels {
		if _, set := req.SetLabels[k]; set {
			return nil, badRequest("label %s is both set and removed; give it once", k)
		}
	}
	if req.Description != nil && len(*req.Description) > 1024 {
		return nil, badRequest("namespace description is %d bytes; the limit is 1024", len(*req.Description))
	}
	if s.fsm.State().Snapshot().Namespace(nil, name) == nil {
		return nil, notFound("namespace %q not found; create it with `hive namespace create`", name)
	}
	if _, err := s.apply(fsm.NamespaceUpdateType, &fsm.NamespaceUpdateRequest{Name: name, Update: req}); err != nil {
		return nil, err
	}
	return s.fsm.State().Snapshot().Namespace(nil, name), nil
}

// nodeNetworkTables are what a worker's dataplane view is computed from;
// a change to any of them answers its long poll.
var nodeNetworkTables = []string{
	state.TableCluster, state.TableNodes, state.TableAllocs, state.TableJobs, state.TableJobVersions,
	state.TableNamespaces, state.TableNetworkPolicies, state.TableAdminNetworkPolicies,
}

// handleNodeNetwork is the worker's long poll for its dataplane: its
// subnet, its WireGuard peers, every policy and every live addressed
// allocation of the cluster (policies on this node name peers anywhere).
// It is a blocking query on the tables the answer is made from.
func (s *Server) handleNodeNetwork(w http.ResponseWriter, r *http.Request, c *caller) (any, error) {
	return s.blockingQuery(w, r, func(ws memdb.WatchSet, snap *state.Snapshot) (any, uint64, error) {
		idx := snap.Indexes(ws, nodeNetworkTables...)
		self := snap.Node(nil, c.nodeID)
		if self == nil {
			return nil, 0, errorf(http.StatusForbidden, "forbidden", "node %s is not a member of the cluster", c.nodeID)
		}
		if self.Role != structs.RoleWorker {
			return nil, 0, errorf(http.StatusForbidden, "forbidden", "node %s is a %s; only workers take part in the network dataplane", c.nodeID, self.Role)
		}
		return nodeNetwork(snap, self), idx, nil
	})
}

// nodeNetwork builds worker self's view of the dataplane from snap.
func nodeNetwork(snap *state.Snapshot, self *structs.Node) *structs.NodeNetwork {
	out := &structs.NodeNetwork{
		Subnet: self.Subnet, Peers: []structs.NetworkPeer{}, Policies: []structs.NetworkPolicy{},
		AdminPolicies: []structs.AdminNetworkPolicy{}, Endpoints: []structs.NetworkEndpoint{},
	}
	cluster := &structs.ClusterConfig{}
	if c := snap.Cluster(nil); c != nil {
		cluster = c
	}
	cidr, _ := cluster.Network()
	out.ClusterCIDR = cidr.String()

	for _, n := range snap.Nodes(nil) {
		// Unknown nodes stay peers: they are likely to come back, and
		// dropping them would cut their allocations off for a blip.
		if n.ID == self.ID || n.Role != structs.RoleWorker || n.WireGuardKey == "" || n.Subnet == "" || n.Status == structs.NodeStatusDown {
			continue
		}
		out.Peers = append(out.Peers, structs.NetworkPeer{
			NodeID: n.ID, PublicKey: n.WireGuardKey, Subnet: n.Subnet,
			Endpoint: net.JoinHostPort(n.Address, strconv.Itoa(n.WireGuardPort)),
		})
	}

	for _, p := range snap.NetworkPolicies(nil, "") {
		out.Policies = append(out.Policies, *p)
	}
	namespaces := map[string]*structs.Namespace{}
	for _, ns := range snap.Namespaces(nil) {
		namespaces[ns.Name] = ns
		if ns.Isolation {
			out.Policies = append(out.Policies, structs.NamespaceIsolationPolicy(ns.Name))
		}
	}
	for _, p := range snap.AdminNetworkPolicies(nil) {
		out.AdminPolicies = append(out.AdminPolicies, *p)
	}

	nsLabels := map[string]map[string]string{}
	labels := map[jobVersionKey]*structs.Job{}
	for _, a := range snap.Allocs(nil) {
		if a.Address == "" || !a.HoldsResources() {
			continue
		}
		nl, ok := nsLabels[a.Namespace]
		if !ok {
			nl = map[string]string{}
			if ns := namespaces[a.Namespace]; ns != nil {
				for k, v := range ns.Labels {
					nl[k] = v
				}
			}
			nl[structs.LabelNamespace] = a.Namespace
			nsLabels[a.Namespace] = nl
		}
		out.Endpoints = append(out.Endpoints, structs.NetworkEndpoint{
			AllocID: a.ID, NodeID: a.NodeID, Namespace: a.Namespace, Address: a.Address, Quarantined: a.Quarantined,
			Labels: endpointLabels(snap, labels, a), NamespaceLabels: nl,
		})
	}
	return out
}

type jobVersionKey struct {
	ns, id  string
	version uint64
}

// endpointLabels are the labels policies select allocation a by: its job
// version's (job and group labels, job and group names). When that version
// is gone (pruned, or a hand-placed allocation with no job) only the job
// and group names are known; guessing from another version could make a
// policy select what it was never written for.
func endpointLabels(snap *state.Snapshot, cache map[jobVersionKey]*structs.Job, a *structs.Allocation) map[string]string {
	if a.JobID != "" {
		k := jobVersionKey{a.Namespace, a.JobID, a.JobVersion}
		j, ok := cache[k]
		if !ok {
			j = snap.JobVersion(nil, a.Namespace, a.JobID, a.JobVersion)
			cache[k] = j
		}
		if j != nil {
			if g := j.LookupGroup(a.Group); g != nil {
				return j.EndpointLabels(g)
			}
		}
	}
	out := map[string]string{structs.LabelGroup: a.Group}
	if a.JobID != "" {
		out[structs.LabelJob] = a.JobID
	}
	return out
}
