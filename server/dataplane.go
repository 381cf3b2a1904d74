package server

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hivesec/hive/fsm"
	"github.com/hivesec/hive/structs"
)

// What managers learn from workers' dataplanes: a worker's status on
// demand (`hive node network`), verdict counters for /v1/metrics, and
// denied flows as security events.

// handleNodeNetworkStatus proxies a worker's own report of its dataplane.
func (s *Server) handleNodeNetworkStatus(w http.ResponseWriter, r *http.Request, _ *caller) (any, error) {
	n, err := s.workerNode(r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	s.proxyToWorker(w, r, n, "/v1/client/network", nil)
	return nil, nil
}

// maxDeniedReport bounds the flows one report may carry, and
// maxDeniedEvents how many become events (the rest are summed in one).
const (
	maxDeniedReport = 100
	maxDeniedEvents = 20
)

// EventNetpolDenied is the event type of a flow network policy denied,
// EventNetpolAudit of one only audit-mode policies would have denied.
const (
	EventNetpolDenied = "netpol-denied"
	EventNetpolAudit  = "netpol-audit"
)

// handleNodeDenied records the flows a worker's policy denied as events.
// The worker has already folded repeats and the kernel rate-limited the
// sample, so what arrives is small.
func (s *Server) handleNodeDenied(_ http.ResponseWriter, r *http.Request, c *caller) (any, error) {
	var req structs.DeniedFlowReport
	if err := decodeJSON(r, &req); err != nil {
		return nil, err
	}
	if len(req.Flows) == 0 || len(req.Flows) > maxDeniedReport {
		return nil, badRequest("a report carries 1 to %d flows, not %d", maxDeniedReport, len(req.Flows))
	}
	for i, f := range req.Flows {
		if err := checkDeniedFlow(&f); err != nil {
			return nil, badRequest("flows[%d]: %v", i, err)
		}
	}
	now := time.Now().UTC()
	extra, extraPackets := 0, 0
	for i, f := range req.Flows {
		if i >= maxDeniedEvents {
			extra++
			extraPackets += f.Packets
			continue
		}
		typ, verb := EventNetpolDenied, "denied"
		if f.Audit {
			typ, verb = EventNetpolAudit, "would deny (audit mode, passed)"
		}
		ev := structs.Event{Time: now, Type: typ, Subject: "node:" + c.nodeID,
			Message: fmt.Sprintf("%s %s %s -> %s %s (%d packets)", strings.Join(f.Policies, ", "), verb, f.Src, deniedDst(f), protoName(f.Protocol), f.Packets),
			Meta: map[string]string{"node": c.nodeID, "src": f.Src, "dst": f.Dst, "protocol": protoName(f.Protocol),
				"port": strconv.Itoa(int(f.Port)), "direction": f.Direction, "policies": strings.Join(f.Policies, ","),
				"packets": strconv.Itoa(f.Packets)}}
		if _, err := s.apply(fsm.EventType, &fsm.EventRequest{Event: ev}); err != nil {
			return nil, err
		}
	}
	if extra > 0 {
		ev := structs.Event{Time: now, Type: EventNetpolDenied, Subject: "node:" + c.nodeID,
			Message: fmt.Sprintf("%d more denied flows (%d packets) in the same report", extra, extraPackets),
			Meta:    map[string]string{"node": c.nodeID, "flows": strconv.Itoa(extra), "packets": strconv.Itoa(extraPackets)}}
		if _, err := s.apply(fsm.EventType, &fsm.EventRequest{Event: ev}); err != nil {
			return nil, err
		}
	}
	return struct{}{}, nil
}

func checkDeniedFlow(f *structs.DeniedFlow) error {
	for _, a := range []string{f.Src, f.Dst} {
		if _, err := netip.ParseAddr(a); err != nil {
			return fmt.Errorf("address %q is not an IP address", a)
		}
	}
	switch f.Direction {
	case "", "ingress", "egress":
	default:
		return fmt.Errorf("direction %q: use ingress, egress or nothing", f.Direction)
	}
	if len(f.Policies) == 0 || len(f.Policies) > 64 {
		return fmt.Errorf("names %d policies; want 1 to 64", len(f.Policies))
	}
	for _, p := range f.Policies {
		if p == "" || len(p) > 300 {
			return fmt.Errorf("policy name %q must be 1-300 characters", p)
		}
	}
	if f.Packets < 1 {
		return fmt.Errorf("packets %d: want at least 1", f.Packets)
	}
	return nil
}

func deniedDst(f structs.DeniedFlow) string {
	if f.Port == 0 {
		return f.Dst
	}
	return netip.AddrPortFrom(netip.MustParseAddr(f.Dst), f.Port).String()
}

func protoName(p uint8) string {
	switch p {
	case 1:
		return "icmp"
	case 6:
		return "tcp"
	case 17:
		return "udp"
	case 58:
		return "icmpv6"
	case 132:
		return "sctp"
	}
	return strconv.Itoa(int(p))
}

// netpolCollector exports the workers' verdict counters as
// hive_netpol_packets_total. The counts live on the workers (the kernel
// counts them); a scrape asks every worker that is not down, in parallel,
// and answers from what it got within a few seconds, so any manager
// serves the whole cluster. Answers are cached briefly so that several
// scrapers do not multiply the fan-out.
type netpolCollector struct {
	s       *Server
	packets *prometheus.Desc
	bytes   *prometheus.Desc
	errors  *prometheus.Desc

	mu      sync.Mutex
	fetched time.Time
	cache   map[string]*structs.NodeNetworkStatus
	failed  int
}

const netpolScrapeCache = 5 * time.Second

func newNetpolCollector(s *Server) *netpolCollector {
	return &netpolCollector{s: s,
		packets: prometheus.NewDesc("hive_netpol_packets_total",
			"New flows (first packets) network policy accepted or dropped on each worker, per policy (namespace/name, admin:NAME or quarantine), direction and verdict.",
			[]string{"node", "policy", "direction", "verdict"}, nil),
		bytes: prometheus.NewDesc("hive_netpol_bytes_total",
			"Bytes of the packets counted in hive_netpol_packets_total.",
			[]string{"node", "policy", "direction", "verdict"}, nil),
		errors: prometheus.NewDesc("hive_netpol_scrape_errors",
			"Workers whose counters could not be read in the last scrape.", nil, nil),
	}
}

func (c *netpolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.packets
	ch <- c.bytes
	ch <- c.errors
}

func (c *netpolCollector) Collect(ch chan<- prometheus.Metric) {
	statuses, failed := c.fetch()
	for node, st := range statuses {
		for _, k := range st.Counters {
			ch <- prometheus.MustNewConstMetric(c.packets, prometheus.CounterValue, float64(k.Packets), node, k.Policy, k.Direction, k.Verdict)
			ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.CounterValue, float64(k.Bytes), node, k.Policy, k.Direction, k.Verdict)
		}
	}
	ch <- prometheus.MustNewConstMetric(c.errors, prometheus.GaugeValue, float64(failed))
}

func (c *netpolCollector) fetch() (map[string]*structs.NodeNetworkStatus, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.fetched) < netpolScrapeCache && c.cache != nil {
		return c.cache, c.failed
	}
	var workers []*structs.Node
	for _, n := range c.s.fsm.State().Snapshot().Nodes(nil) {
		if n.Role == structs.RoleWorker && n.Status != structs.NodeStatusDown && n.WireGuardKey != "" {
			workers = append(workers, n)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	out := make(map[string]*structs.NodeNetworkStatus, len(workers))
	var mu sync.Mutex
	var wg sync.WaitGroup
	failed := 0
	for _, n := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var st structs.NodeNetworkStatus
			err := c.s.fetchWorker(ctx, n, "/v1/client/network", &st)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed++
				return
			}
			out[n.ID] = &st
		}()
	}
	wg.Wait()
	c.cache, c.failed, c.fetched = out, failed, time.Now()
	return out, failed
}
