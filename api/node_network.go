package api

import (
	"context"
	"net/http"

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
