package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/go-memdb"

	"github.com/hivesec/hive/crypto/pki"
	"github.com/hivesec/hive/fsm"
	"github.com/hivesec/hive/fsm/state"
	"github.com/hivesec/hive/structs"
)

// maxImageArchive bounds an image archive uploaded for import.
const maxImageArchive = 4 << 30

// handleAllocCreate places an allocation on a named worker. Until the
// scheduler lands this is how work reaches a node; it checks what the
// scheduler will check (task validity, privileged policy, node state).
func (s *Server) handleAllocCreate(_ http.ResponseWriter, r *http.Request, _ *caller) (any, error) {
	var req structs.AllocCreateRequest
	if err := decodeJSON(r, &req); err != nil {
		return nil, err
	}
	if req.Namespace == "" {
		req.Namespace = structs.DefaultNamespace
	}
	if req.Group == "" {
		req.Group = "default"
	}
	if len(req.Tasks) == 0 {
		return nil, badRequest("an allocation needs at least one task")
	}
	snap := s.fsm.State().Snapshot()
	ns := snap.Namespace(nil, req.Namespace)
	if ns == nil {
		return nil, notFound("namespace %q not found; create it with `hive namespace create`", req.Namespace)
	}
	node := snap.Node(nil, req.NodeID)
	if node == nil || node.Role != structs.RoleWorker {
		return nil, badRequest("node %q is not a worker of this cluster; list workers with `hive node ls`", req.NodeID)
	}
	if node.Status != structs.NodeStatusReady {
		return nil, errorf(http.StatusConflict, "conflict", "node %s is %s; choose a ready worker (`hive node ls`)", node.ID, node.Status)
	}
	if node.Cordoned || node.Draining {
		return nil, errorf(http.StatusConflict, "conflict", "node %s is cordoned or draining; uncordon it or choose another worker", node.ID)
	}
	seen := map[string]bool{}
	for _, t := range req.Tasks {
		if t == nil {
			return nil, badRequest("task entries cannot be null")
		}
		if err := t.Validate(); err != nil {
			return nil, badRequest("%v", err)
		}
		if seen[t.Name] {
			return nil, badRequest("task name %q is used twice in the group", t.Name)
		}
		seen[t.Name] = true
		if t.Security.Privileged && !ns.AllowPrivileged {
			return nil, errorf(http.StatusForbidden, "forbidden", "task %q asks for a privileged container, which namespace %q does not allow (create the namespace with --allow-privileged)", t.Name, ns.Name)
		}
		if t.Driver == "" || t.Driver == "docker" {
			t.Driver = "containerd"
		}
		if t.Restart == (structs.RestartPolicy{}) {
			t.Restart = structs.DefaultRestartPolicy()
		}
		if t.Restart.Mode == "" {
			t.Restart.Mode = structs.RestartModeFail
		}
		if t.Resources.MemoryMB == 0 {
			t.Resources.MemoryMB = 300 // Nomad's default
		}
		if t.Resources.CPU == 0 {
			t.Resources.CPU = 100
		}
	}
	now := time.Now().UTC()
	// Resources are what the scheduler and plan applier count as used on
	// the node, so a hand-placed allocation takes its share like any other.
	group := structs.TaskGroup{Tasks: req.Tasks}
	a := structs.Allocation{
		ID: uuid.NewString(), Namespace: ns.Name, NodeID: node.ID, JobID: req.JobID, Group: req.Group,
		Tasks: req.Tasks, DesiredStatus: structs.AllocDesiredRun, ClientStatus: structs.AllocPending,
		Resources: group.Resources(), CreateTime: now, ModifyTime: now,
	}
	if _, err := s.apply(fsm.AllocCreateType, &fsm.AllocCreateRequest{Alloc: a}); err != nil {
		return nil, err
	}
	return s.fsm.State().Snapshot().Alloc(nil, a.ID), nil
}

func (s *Server) handleAllocs(w http.ResponseWriter, r *http.Request, _ *caller) (any, error) {
	node, ns := r.URL.Query().Get("node"), r.URL.Query().Get("namespace")
	return s.blockingQuery(w, r, func(ws memdb.WatchSet, snap *state.Snapshot) (any, uint64, error) {
		var all []*structs.Allocation
		switch {
		case node != "":
			all = snap.AllocsByNode(ws, node)
		case ns != "":
			all = snap.AllocsByNamespace(ws, ns)
		default:
			all = snap.Allocs(ws)
		}
		out := []*structs.Allocation{}
		for _, a := range all {
			if (node == "" || a.NodeID == node) && (ns == "" || a.Namespace == ns) {
				out = append(out, a)
			}
		}
		return out, snap.Index(state.TableAllocs), nil
	})
}

func (s *Server) handleAlloc(w http.ResponseWriter, r *http.Request, _ *caller) (any, error) {
	id := r.PathValue("id")
	return s.blockingQuery(w, r, func(ws memdb.WatchSet, snap *state.Snapshot) (any, uint64, error) {
		a := snap.Alloc(ws, id)
		if a == nil {
			return nil, 0, notFound("allocation %q not found; list them with `hive alloc ls`", id)
		}
		return a, snap.Index(state.TableAllocs), nil
	})
}

func (s *Server) handleAllocStop(_ http.ResponseWriter, r *http.Request, _ *caller) (any, error) {
	id := r.PathValue("id")
	if s.fsm.State().Snapshot().Alloc(nil, id) == nil {
		return nil, notFound("allocation %q not found; list them with `hive alloc ls`", id)
	}
	if _, err := s.apply(fsm.AllocDesiredType, &fsm.AllocDesiredRequest{IDs: []string{id}, DesiredStatus: structs.AllocDesiredStop, Now: time.Now().UTC()}); err != nil {
		return nil, err
	}
	return s.fsm.State().Snapshot().Alloc(nil, id), nil
}

// handleNodeAllocs is the worker's long poll for its own allocations.
func (s *Server) handleNodeAllocs(w http.ResponseWriter, r *http.Request, c *caller) (any, error) {
	return s.blockingQuery(w, r, func(ws memdb.WatchSet, snap *state.Snapshot) (any, uint64, error) {
		out := []*structs.Allocation{}
		out = append(out, snap.AllocsByNode(ws, c.nodeID)...)
		return out, snap.Index(state.TableAllocs), nil
	})
}

func (s *Server) handleNodeAllocUpdate(_ http.ResponseWriter, r *http.Request, c *caller) (any, error) {
	var req structs.AllocUpdateRequest
	if err := decodeJSON(r, &req); err != nil {
		return nil, err
	}
	if len(req.Updates) == 0 {
		return nil, badRequest("no updates given")
	}
	if _, err := s.apply(fsm.AllocClientUpdateType, &fsm.AllocClientUpdateRequest{NodeID: c.nodeID, Updates: req.Updates, Now: time.Now().UTC()}); err != nil {
		return nil, err
	}
	s.afterAllocUpdate(req.Updates)
	return struct{}{}, nil
}

func (s *Server) handleNodeRegister(_ http.ResponseWriter, r *http.Request, c *caller) (any, error) {
	var req structs.NodeRegisterRequest
	if err := decodeJSON(r, &req); err != nil {
		return nil, err
	}
	if req.Resources.CPU < 0 || req.Resources.MemoryMB < 0 {
		return nil, badRequest("resources cannot be negative")
	}
	for k := range req.Labels {
		if k == "" || len(k) > 128 {
			return nil, badRequest("label keys must be 1-128 characters")
		}
	}
	if req.WireGuardKey != "" {
		if err := structs.ValidateWireGuardKey(req.WireGuardKey); err != nil {
			return nil, badRequest("wireguard_key: %v", err)
		}
		if req.WireGuardPort < 1 || req.WireGuardPort > 65535 {
			return nil, badRequest("wireguard_port: %d is out of range 1-65535; send the UDP port the worker's WireGuard listens on", req.WireGuardPort)
		}
	} else if req.WireGuardPort != 0 {
		return nil, badRequest("wireguard_port: %d given without wireguard_key; send both or neither", req.WireGuardPort)
	}
	s.liveness.heartbeat(c.nodeID, time.Now().UTC())
	if _, err := s.apply(fsm.NodeFingerprintType, &fsm.NodeFingerprintRequest{
		NodeID: c.nodeID, Attributes: req.Attributes, Resources: req.Resources, Labels: req.Labels,
		WireGuardKey: req.WireGuardKey, WireGuardPort: req.WireGuardPort, Now: time.Now().UTC(),
	}); err != nil {
		return nil, err
	}
	return structs.HeartbeatResponse{TTL: s.cfg.HeartbeatTTL}, nil
}

// handleHeartbeat runs on the leader, which holds the heartbeat timers.
func (s *Server) handleHeartbeat(_ http.ResponseWriter, _ *http.Request, c *caller) (any, error) {
	if s.fsm.State().Snapshot().Node(nil, c.nodeID) == nil {
		return nil, errorf(http.StatusForbidden, "forbidden", "node %s is not a member of the cluster", c.nodeID)
	}
	s.liveness.heartbeat(c.nodeID, time.Now().UTC())
	return structs.HeartbeatResponse{TTL: s.cfg.HeartbeatTTL}, nil
}

func (s *Server) handleNodeEligibility(cordon, drain bool) handlerFunc {
	return func(_ http.ResponseWriter, r *http.Request, _ *caller) (any, error) {
		id := r.PathValue("id")
		n := s.fsm.State().Snapshot().Node(nil, id)
		if n == nil {
			return nil, notFound("node %q not found; list nodes with `hive node ls`", id)
		}
		if n.Role != structs.RoleWorker {
			return nil, badRequest("node %s is a manager; only workers run allocations", id)
		}
		if _, err := s.apply(fsm.NodeEligibilityType, &fsm.NodeEligibilityRequest{NodeID: id, Cordoned: cordon, Draining: drain, Now: time.Now().UTC()}); err != nil {
			return nil, err
		}
		return s.nodePublic(s.fsm.State().Snapshot().Node(nil, id)), nil
	}
}

// workerClient returns an HTTP client that reaches worker nodeID's own
// endpoint over mTLS and refuses any other server.
func (s *Server) workerClient(nodeID string) *http.Client {
	tc := pki.WorkerClientTLS(s.certs.Pool, s.certs.GetClientCertificate, nodeID, s.verifyPeer)
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig:     tc,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		TLSHandshakeTimeout: 10 * time.Second,
	}}
}

// proxyToWorker forwards r to path on the worker that node names.
func (s *Server) proxyToWorker(w http.ResponseWriter, r *http.Request, node *structs.Node, path string, query url.Values) {
	if node.Status == structs.NodeStatusDown {
		writeError(w, errorf(http.StatusServiceUnavailable, "node_down", "node %s is down", node.ID))
		return
	}
	target := &url.URL{Scheme: "https", Host: net.JoinHostPort(node.Address, strconv.Itoa(node.RPCPort))}
	client := s.workerClient(node.ID)
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.URL.Path = path
			pr.Out.URL.RawQuery = query.Encode()
			pr.Out.Header.Del("Authorization") // the worker trusts the manager's certificate, not user tokens
		},
		Transport:     client.Transport,
		FlushInterval: -1, // stream logs as they come
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			writeError(w, errorf(http.StatusBadGateway, "node_unreachable", "cannot reach worker %s at %s: %v", node.ID, target.Host, err))
		},
	}
	proxy.ServeHTTP(w, r)
}

// handleAllocLogs streams a task's logs from the worker running it.
func (s *Server) handleAllocLogs(w http.ResponseWriter, r *http.Request, _ *caller) (any, error) {
	a := s.fsm.State().Snapshot().Alloc(nil, r.PathValue("id"))
	if a == nil {
		return nil, notFound("allocation %q not found", r.PathValue("id"))
	}
	q := r.URL.Query()
	task := q.Get("task")
	if task == "" && len(a.Tasks) == 1 {
		task = a.Tasks[0].Name
	}
	found := false
	for _, t := range a.Tasks {
		found = found || t.Name == task
	}
	if !found {
		return nil, badRequest("allocation %s has no task %q; name one of its tasks with ?task=", a.ID, task)
	}
	stream := q.Get("stream")
	if stream == "" {
		stream = "stdout"
	}
	if stream != "stdout" && stream != "stderr" {
		return nil, badRequest("stream %q: use stdout or stderr", stream)
	}
	if v := q.Get("tail"); v != "" {
		if n, err := strconv.Atoi(v); err != nil || n < 0 {
			return nil, badRequest("tail %q: use a non-negative number of lines", v)
		}
	}
	node := s.fsm.State().Snapshot().Node(nil, a.NodeID)
	if node == nil {
		return nil, errorf(http.StatusGone, "gone", "the node that ran allocation %s was removed; its logs are gone", a.ID)
	}
	fwd := url.Values{"stream": {stream}}
	if v := q.Get("tail"); v != "" {
		fwd.Set("tail", v)
	}
	if _, ok := q["follow"]; ok && q.Get("follow") != "false" {
		fwd.Set("follow", "true")
	}
	s.proxyToWorker(w, r, node, "/v1/client/logs/"+url.PathEscape(a.ID)+"/"+url.PathEscape(task), fwd)
	return nil, nil
}

func (s *Server) workerNode(id string) (*structs.Node, error) {
	n := s.fsm.State().Snapshot().Node(nil, id)
	if n == nil || n.Role != structs.RoleWorker {
		return nil, notFound("worker %q not found; list nodes with `hive node ls`", id)
	}
	return n, nil
}

// handleImageImport streams an image archive to one worker.
func (s *Server) handleImageImport(w http.ResponseWriter, r *http.Request, _ *caller) (any, error) {
	n, err := s.workerNode(r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	s.proxyToWorker(w, r, n, "/v1/client/images", nil)
	return nil, nil
}

// handleNodeImages lists the images on one worker.
func (s *Server) handleNodeImages(w http.ResponseWriter, r *http.Request, _ *caller) (any, error) {
	n, err := s.workerNode(r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	s.proxyToWorker(w, r, n, "/v1/client/images", nil)
	return nil, nil
}

// fetchWorker GETs path from a worker and decodes JSON into out.
func (s *Server) fetchWorker(ctx context.Context, n *structs.Node, path string, out any) error {
	u := (&url.URL{Scheme: "https", Host: net.JoinHostPort(n.Address, strconv.Itoa(n.RPCPort)), Path: path}).String()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := s.workerClient(n.ID).Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach worker %s: %w", n.ID, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("worker %s answered %s: %s", n.ID, resp.Status, b)
	}
	return decodeBody(resp.Body, out)
}

// handleImages lists the images of every worker that is not down.
func (s *Server) handleImages(_ http.ResponseWriter, r *http.Request, _ *caller) (any, error) {
	var workers []*structs.Node
	for _, n := range s.fsm.State().Snapshot().Nodes(nil) {
		if n.Role == structs.RoleWorker && n.Status != structs.NodeStatusDown {
			workers = append(workers, n)
		}
	}
	out := make([]structs.NodeImages, len(workers))
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for i, n := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i].NodeID = n.ID
			if err := s.fetchWorker(ctx, n, "/v1/client/images", &out[i].Images); err != nil {
				out[i].Error = err.Error()
			}
		}()
	}
	wg.Wait()
	return out, nil
}

func decodeBody(r io.Reader, out any) error {
	if err := json.NewDecoder(io.LimitReader(r, 16<<20)).Decode(out); err != nil {
		return fmt.Errorf("decode worker answer: %w", err)
	}
	return nil
}
