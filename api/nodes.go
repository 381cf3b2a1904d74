package api

import (
	"net/http"

	"github.com/hivesec/hive/structs"
)

// Nodes reads and removes cluster nodes, and serves nodes' own calls.
type Nodes struct{ c *Client }

// Nodes returns the node endpoints.
func (c *Client) Nodes() *Nodes { return &Nodes{c} }

// List returns every node.
func (n *Nodes) List(q *QueryOptions) ([]structs.NodePublic, *QueryMeta, error) {
	var out []structs.NodePublic
	meta, err := n.c.query("/v1/nodes", q, &out)
	if err != nil {
		return nil, nil, err
	}
	return out, meta, nil
}

// Info returns the node with the given ID.
func (n *Nodes) Info(id string, q *QueryOptions) (*structs.NodePublic, *QueryMeta, error) {
	if err := checkID("node ID", id); err != nil {
		return nil, nil, err
	}
	var out structs.NodePublic
	meta, err := n.c.query("/v1/node/"+esc(id), q, &out)
	if err != nil {
		return nil, nil, err
	}
	return &out, meta, nil
}

// Self returns the node the client certificate names.
func (n *Nodes) Self() (*structs.NodePublic, error) {
	var out structs.NodePublic
	if _, err := n.c.query("/v1/node/self", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Remove removes a node: its certificates are revoked and, for a manager,
// it leaves the Raft configuration.
func (n *Nodes) Remove(id string) error {
	if err := checkID("node ID", id); err != nil {
		return err
	}
	return n.c.write(http.MethodDelete, "/v1/node/"+esc(id), nil, nil)
}

// Renew asks for a new certificate for the key in the PEM CSR. The client
// must authenticate with the node's current certificate.
func (n *Nodes) Renew(csrPEM []byte) (*structs.RenewResponse, error) {
	var out structs.RenewResponse
	if err := n.c.write(http.MethodPost, "/v1/node/renew", &structs.RenewRequest{CSRPEM: string(csrPEM)}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// GossipKeys returns the Serf keyring, primary key first. Nodes only.
func (n *Nodes) GossipKeys() (*structs.GossipKeysResponse, error) {
	var out structs.GossipKeysResponse
	if _, err := n.c.query("/v1/internal/gossip-keys", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
