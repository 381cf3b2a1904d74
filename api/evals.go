package api

import "github.com/hivesec/hive/structs"

// Evaluations reads the scheduler's evaluations.
type Evaluations struct{ c *Client }

// Evaluations returns the evaluation endpoints.
func (c *Client) Evaluations() *Evaluations { return &Evaluations{c} }

// Info returns one evaluation. With q.WaitIndex set it blocks until the
// state changes past that index.
func (e *Evaluations) Info(id string, q *QueryOptions) (*structs.Evaluation, *QueryMeta, error) {
	if err := checkID("evaluation ID", id); err != nil {
		return nil, nil, err
	}
	var out structs.Evaluation
	meta, err := e.c.query("/v1/evaluation/"+esc(id), q, &out)
	if err != nil {
		return nil, nil, err
	}
	return &out, meta, nil
}

// Deployments reads deployments, the progress of rolling updates.
type Deployments struct{ c *Client }

// Deployments returns the deployment endpoints.
func (c *Client) Deployments() *Deployments { return &Deployments{c} }

// Info returns one deployment. With q.WaitIndex set it blocks until the
// state changes past that index.
func (d *Deployments) Info(id string, q *QueryOptions) (*structs.Deployment, *QueryMeta, error) {
	if err := checkID("deployment ID", id); err != nil {
		return nil, nil, err
	}
	var out structs.Deployment
	meta, err := d.c.query("/v1/deployment/"+esc(id), q, &out)
	if err != nil {
		return nil, nil, err
	}
	return &out, meta, nil
}
