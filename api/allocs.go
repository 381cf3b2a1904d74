package api

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/hivesec/hive/structs"
)

// Allocations places, reads and stops allocations, and streams their logs.
type Allocations struct{ c *Client }

// Allocations returns the allocation endpoints.
func (c *Client) Allocations() *Allocations { return &Allocations{c} }

// Create places an allocation on the node req names (admins, until the
// scheduler places allocations from jobs). The answer is the allocation as
// committed, pending until the worker reports on it.
func (a *Allocations) Create(req structs.AllocCreateRequest) (*structs.Allocation, error) {
	if err := checkID("node ID", req.NodeID); err != nil {
		return nil, err
	}
	var out structs.Allocation
	if err := a.c.write(http.MethodPost, "/v1/allocations", &req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// AllocFilter narrows a listing; empty fields match everything.
type AllocFilter struct {
	NodeID    string
	Namespace string
}

// List returns the allocations that match f (nil: all of them).
func (a *Allocations) List(f *AllocFilter, q *QueryOptions) ([]*structs.Allocation, *QueryMeta, error) {
	path := "/v1/allocations"
	if f != nil {
		v := url.Values{}
		if f.NodeID != "" {
			v.Set("node", f.NodeID)
		}
		if f.Namespace != "" {
			v.Set("namespace", f.Namespace)
		}
		if len(v) > 0 {
			path += "?" + v.Encode()
		}
	}
	var out []*structs.Allocation
	meta, err := a.c.query(path, q, &out)
	if err != nil {
		return nil, nil, err
	}
	return out, meta, nil
}

// Info returns one allocation. With q.WaitIndex set it blocks until the
// allocation table changes past that index.
func (a *Allocations) Info(id string, q *QueryOptions) (*structs.Allocation, *QueryMeta, error) {
	if err := checkID("allocation ID", id); err != nil {
		return nil, nil, err
	}
	var out structs.Allocation
	meta, err := a.c.query("/v1/allocation/"+esc(id), q, &out)
	if err != nil {
		return nil, nil, err
	}
	return &out, meta, nil
}

// Stop sets the allocation's desired status to stop; the worker then stops
// and removes its containers. It returns the allocation after the change.
func (a *Allocations) Stop(id string) (*structs.Allocation, error) {
	if err := checkID("allocation ID", id); err != nil {
		return nil, err
	}
	var out structs.Allocation
	if err := a.c.write(http.MethodPost, "/v1/allocation/"+esc(id)+"/stop", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// LogOptions choose what Logs streams.
type LogOptions struct {
	// Task names the task; empty is fine for a single-task allocation.
	Task string
	// Stderr selects the error stream instead of stdout.
	Stderr bool
	// Tail starts that many lines from the end; zero means from the start.
	Tail int
	// Follow keeps the stream open and sends new output as it is written,
	// until the caller closes the reader or the task's logs end.
	Follow bool
}

// Logs streams a task's output as the worker running it wrote it. The
// caller must close the reader. The stream has no timeout: with Follow it
// lasts as long as the caller reads.
func (a *Allocations) Logs(id string, o LogOptions) (io.ReadCloser, error) {
	if err := checkID("allocation ID", id); err != nil {
		return nil, err
	}
	if o.Tail < 0 {
		return nil, fmt.Errorf("tail %d: use a non-negative number of lines", o.Tail)
	}
	v := url.Values{}
	if o.Task != "" {
		v.Set("task", o.Task)
	}
	v.Set("stream", "stdout")
	if o.Stderr {
		v.Set("stream", "stderr")
	}
	if o.Tail > 0 {
		v.Set("tail", strconv.Itoa(o.Tail))
	}
	if o.Follow {
		v.Set("follow", "true")
	}
	resp, err := a.c.send(request{method: http.MethodGet, path: "/v1/allocation/" + esc(id) + "/logs?" + v.Encode(), stream: true})
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// Drain marks a worker as draining: it takes no new allocations and, once
// the scheduler lands, its allocations move elsewhere. It also cordons.
func (n *Nodes) Drain(id string) (*structs.NodePublic, error) { return n.eligibility(id, "drain") }

// Cordon stops new allocations from being placed on a worker; running ones
// stay.
func (n *Nodes) Cordon(id string) (*structs.NodePublic, error) { return n.eligibility(id, "cordon") }

// Uncordon makes a cordoned or draining worker eligible again.
func (n *Nodes) Uncordon(id string) (*structs.NodePublic, error) {
	return n.eligibility(id, "uncordon")
}

func (n *Nodes) eligibility(id, op string) (*structs.NodePublic, error) {
	if err := checkID("node ID", id); err != nil {
		return nil, err
	}
	var out structs.NodePublic
	if err := n.c.write(http.MethodPost, "/v1/node/"+esc(id)+"/"+op, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
