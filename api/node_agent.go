package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/hivesec/hive/structs"
)

// NodeAgent holds the calls a worker agent makes about itself. The client
// must authenticate with the node's certificate (Config.ClientCert); the
// manager takes the node's identity from it, never from the request.
//
// Unlike the user-facing calls these take a context: the agent cancels a
// long poll when it shuts down rather than waiting for the server's answer.
type NodeAgent struct{ c *Client }

// NodeAgent returns the worker's own endpoints.
func (c *Client) NodeAgent() *NodeAgent { return &NodeAgent{c} }

// Register sends the node's fingerprint; the answer says how often to
// heartbeat.
func (n *NodeAgent) Register(ctx context.Context, req *structs.NodeRegisterRequest) (*structs.HeartbeatResponse, error) {
	var out structs.HeartbeatResponse
	if _, err := n.c.doCtx(ctx, http.MethodPut, "/v1/node/register", nil, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Heartbeat tells the leader the node is alive.
func (n *NodeAgent) Heartbeat(ctx context.Context) (*structs.HeartbeatResponse, error) {
	var out structs.HeartbeatResponse
	if _, err := n.c.doCtx(ctx, http.MethodPost, "/v1/node/heartbeat", nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Allocations returns the allocations placed on the calling node. With
// q.WaitIndex set it is a blocking query: it returns once the allocations
// table passes that index or q.WaitTime is over.
func (n *NodeAgent) Allocations(ctx context.Context, q *QueryOptions) ([]*structs.Allocation, *QueryMeta, error) {
	var out []*structs.Allocation
	meta, err := n.c.doCtx(ctx, http.MethodGet, "/v1/node/allocations", q, nil, &out)
	if err != nil {
		return nil, nil, err
	}
	return out, meta, nil
}

// UpdateAllocs reports the state of some of the calling node's allocations
// in one write.
func (n *NodeAgent) UpdateAllocs(ctx context.Context, updates []structs.AllocUpdate) error {
	_, err := n.c.doCtx(ctx, http.MethodPut, "/v1/node/allocations", nil, &structs.AllocUpdateRequest{Updates: updates}, nil)
	return err
}

// Secrets returns the current values of the secrets the tasks of one of
// the calling node's allocations reference, in the allocation's namespace;
// expired secrets are left out. With q.WaitIndex set it is a blocking
// query: it returns once the state passes that index (a new version, say)
// or q.WaitTime is over. An allocation on another node is refused (403).
//
// The answer holds secret values: callers must keep them out of logs and
// off disk.
func (n *NodeAgent) Secrets(ctx context.Context, allocID string, q *QueryOptions) (*structs.NodeSecretsResponse, *QueryMeta, error) {
	if err := checkID("allocation ID", allocID); err != nil {
		return nil, nil, err
	}
	var out structs.NodeSecretsResponse
	meta, err := n.c.doCtx(ctx, http.MethodGet, "/v1/node/secrets?alloc="+url.QueryEscape(allocID), q, nil, &out)
	if err != nil {
		return nil, nil, err
	}
	return &out, meta, nil
}

// doCtx is send with a caller's context: in (when not nil) goes as JSON, the
// answer is decoded into out (when not nil). The client's timeout, extended
// by a blocking query's wait, still applies.
func (c *Client) doCtx(ctx context.Context, method, path string, q *QueryOptions, in, out any) (*QueryMeta, error) {
	u := c.addr + path
	if qs := q.encode(); qs != "" {
		// A path may carry its own parameters (?alloc=...).
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		u += sep + qs
	}
	if c.timeout > 0 {
		w := q.wait()
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout+w+w/16)
		defer cancel()
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("%s %s: encoding request: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, transportError(method, path, c.addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, decodeError(resp)
	}
	meta, err := parseMeta(resp)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
		return meta, nil
	}
	if err := decodeBody(resp.Body, out); err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	return meta, nil
}
