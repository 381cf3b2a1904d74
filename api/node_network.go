package api

import (
	"context"
	"net/http"
	"net/url"

	"github.com/hivesec/hive/structs"
)

// Network returns the calling worker's view of the dataplane: its subnet,
// its WireGuard peers, the network policies and the endpoints they are
// compiled against. With q.WaitIndex set it is a blocking query.
func (n *NodeAgent) Network(ctx context.Context, q *QueryOptions) (*structs.NodeNetwork, *QueryMeta, error) {
	var out structs.NodeNetwork
	meta, err := n.c.doCtx(ctx, http.MethodGet, "/v1/node/network", q, nil, &out)
	if err != nil {
		return nil, nil, err
	}
	return &out, meta, nil
}

// ReportDenied sends flows the calling worker's network policy denied;
// the managers record them as events.
func (n *NodeAgent) ReportDenied(ctx context.Context, flows []structs.DeniedFlow) error {
	_, err := n.c.doCtx(ctx, http.MethodPost, "/v1/node/denied-flows", nil, &structs.DeniedFlowReport{Flows: flows}, nil)
	return err
}

// NetworkStatus returns a worker's report of its dataplane: lease,
// WireGuard peers, allocation networks and verdict counters.
func (n *Nodes) NetworkStatus(id string) (*structs.NodeNetworkStatus, error) {
	if err := checkID("node ID", id); err != nil {
		return nil, err
	}
	var out structs.NodeNetworkStatus
	if _, err := n.c.query("/v1/node/"+url.PathEscape(id)+"/network", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
