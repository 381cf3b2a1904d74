package api

import (
	"fmt"
	"io"
	"net/http"

	"github.com/hivesec/hive/structs"
)

// Operator holds the cluster operator endpoints: Raft, gossip keys,
// snapshots and the secrets keyring.
type Operator struct{ c *Client }

// Operator returns the operator endpoints.
func (c *Client) Operator() *Operator { return &Operator{c} }

// RaftPeers returns the servers in the Raft configuration.
func (o *Operator) RaftPeers(q *QueryOptions) ([]structs.RaftPeer, error) {
	var out []structs.RaftPeer
	if _, err := o.c.query("/v1/operator/raft/peers", q, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// GossipRotate installs a new primary gossip key on every node.
func (o *Operator) GossipRotate() error {
	return o.c.write(http.MethodPost, "/v1/operator/gossip/rotate", nil, nil)
}

// SnapshotSave streams a snapshot archive of the cluster state into w. A
// failure part-way leaves w with a partial archive: write to a temporary
// file and rename it only on success.
func (o *Operator) SnapshotSave(w io.Writer) error {
	const path = "/v1/operator/snapshot"
	resp, err := o.c.send(request{method: http.MethodGet, path: path, stream: true})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("GET %s: receiving snapshot: %w", path, err)
	}
	return nil
}

// SnapshotRestore replaces the cluster state with the archive read from r.
func (o *Operator) SnapshotRestore(r io.Reader) error {
	const path = "/v1/operator/snapshot"
	resp, err := o.c.send(request{method: http.MethodPut, path: path, body: r, ctype: "application/octet-stream", stream: true})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
	return nil
}

// KeyringStatus returns the secrets keyring as the addressed manager sees
// it: its root keys, how many secret versions still wait to be re-wrapped,
// and whether this manager is locked (autolock: it has no unseal key yet).
func (o *Operator) KeyringStatus() (*structs.KeyringStatus, error) {
	var out structs.KeyringStatus
	if _, err := o.c.query("/v1/operator/keyring", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// KeyringRotate makes a new active root key; the leader re-wraps every
// secret version's data key under it in the background.
func (o *Operator) KeyringRotate() (*structs.KeyringStatus, error) {
	var out structs.KeyringStatus
	if err := o.c.write(http.MethodPost, "/v1/operator/keyring/rotate", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RotateUnseal re-wraps the CA key, the gossip keys and every root key
// under a new unseal key, which every manager receives first.
func (o *Operator) RotateUnseal() (*structs.UnsealRotateResponse, error) {
	var out structs.UnsealRotateResponse
	if err := o.c.write(http.MethodPost, "/v1/operator/keyring/rotate-unseal", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Unlock gives the addressed manager (and only it: every manager of an
// autolocked cluster is unlocked on its own) the cluster's unlock key. A
// wrong key is refused with 403 and code "wrong_key".
func (o *Operator) Unlock(key string) (*structs.KeyringStatus, error) {
	if err := checkID("unlock key", key); err != nil {
		return nil, err
	}
	var out structs.KeyringStatus
	if err := o.c.write(http.MethodPost, "/v1/operator/unlock", &structs.UnlockRequest{Key: key}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
