package api

import (
	"errors"
	"net/http"
	"net/url"

	"github.com/hivesec/hive/structs"
)

// Jobs submits, plans, reads, reverts and stops jobs. Every call works in
// one namespace; an empty namespace means structs.DefaultNamespace.
type Jobs struct{ c *Client }

// Jobs returns the job endpoints.
func (c *Client) Jobs() *Jobs { return &Jobs{c} }

// jobPath is /v1/job/<id><suffix>?namespace=<ns>[&extra...].
func jobPath(ns, id, suffix string, extra url.Values) string {
	v := url.Values{}
	for k, vs := range extra {
		v[k] = vs
	}
	v.Set("namespace", nsOrDefault(ns))
	return "/v1/job/" + esc(id) + suffix + "?" + v.Encode()
}

func nsOrDefault(ns string) string {
	if ns == "" {
		return structs.DefaultNamespace
	}
	return ns
}

func checkJob(job *structs.Job) error {
	if job == nil {
		return errors.New("no job given")
	}
	return checkID("job ID", job.ID)
}

// Register submits job (a new job or a new version of one) and returns the
// evaluation the scheduler will work through. The namespace is the job's.
func (j *Jobs) Register(job *structs.Job) (*structs.JobRegisterResponse, error) {
	if err := checkJob(job); err != nil {
		return nil, err
	}
	var out structs.JobRegisterResponse
	path := "/v1/jobs?" + url.Values{"namespace": {nsOrDefault(job.Namespace)}}.Encode()
	if err := j.c.write(http.MethodPost, path, &structs.JobRegisterRequest{Job: job}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Plan is a dry run of Register: what the scheduler would place, update and
// stop, and why a group could not be placed. Nothing is changed.
func (j *Jobs) Plan(job *structs.Job) (*structs.JobPlanResponse, error) {
	if err := checkJob(job); err != nil {
		return nil, err
	}
	var out structs.JobPlanResponse
	if err := j.c.write(http.MethodPost, jobPath(job.Namespace, job.ID, "/plan", nil), &structs.JobRegisterRequest{Job: job}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// List returns a summary of every job in namespace ns.
func (j *Jobs) List(ns string, q *QueryOptions) ([]structs.JobListStub, *QueryMeta, error) {
	var out []structs.JobListStub
	meta, err := j.c.query("/v1/jobs?"+url.Values{"namespace": {nsOrDefault(ns)}}.Encode(), q, &out)
	if err != nil {
		return nil, nil, err
	}
	return out, meta, nil
}

// Info returns the current version of a job.
func (j *Jobs) Info(ns, id string, q *QueryOptions) (*structs.Job, *QueryMeta, error) {
	if err := checkID("job ID", id); err != nil {
		return nil, nil, err
	}
	var out structs.Job
	meta, err := j.c.query(jobPath(ns, id, "", nil), q, &out)
	if err != nil {
		return nil, nil, err
	}
	return &out, meta, nil
}

// Versions returns every kept version of a job, newest first.
func (j *Jobs) Versions(ns, id string, q *QueryOptions) ([]*structs.Job, *QueryMeta, error) {
	if err := checkID("job ID", id); err != nil {
		return nil, nil, err
	}
	var out []*structs.Job
	meta, err := j.c.query(jobPath(ns, id, "/versions", nil), q, &out)
	if err != nil {
		return nil, nil, err
	}
	return out, meta, nil
}

// Revert makes an earlier version the job's current one (as a new version)
// and returns the evaluation that rolls it out.
func (j *Jobs) Revert(ns, id string, version uint64) (*structs.JobRegisterResponse, error) {
	if err := checkID("job ID", id); err != nil {
		return nil, err
	}
	var out structs.JobRegisterResponse
	if err := j.c.write(http.MethodPost, jobPath(ns, id, "/revert", nil), &structs.JobRevertRequest{Version: version}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Promote ends the canary phase of the job's running deployment: the rest
// of the update then rolls, the canaries counting as updated. Every canary
// must be healthy. The answer names the evaluation that continues the
// rollout.
func (j *Jobs) Promote(ns, id string) (*structs.JobRegisterResponse, error) {
	if err := checkID("job ID", id); err != nil {
		return nil, err
	}
	var out structs.JobRegisterResponse
	if err := j.c.write(http.MethodPost, jobPath(ns, id, "/promote", nil), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Deregister stops a job: its allocations are stopped and the job stays,
// marked stopped, for its history; with purge it is removed altogether.
func (j *Jobs) Deregister(ns, id string, purge bool) (*structs.JobRegisterResponse, error) {
	if err := checkID("job ID", id); err != nil {
		return nil, err
	}
	var extra url.Values
	if purge {
		extra = url.Values{"purge": {"true"}}
	}
	var out structs.JobRegisterResponse
	if err := j.c.write(http.MethodDelete, jobPath(ns, id, "", extra), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Allocations returns every allocation of a job, of all its versions.
func (j *Jobs) Allocations(ns, id string, q *QueryOptions) ([]*structs.Allocation, *QueryMeta, error) {
	if err := checkID("job ID", id); err != nil {
		return nil, nil, err
	}
	var out []*structs.Allocation
	meta, err := j.c.query(jobPath(ns, id, "/allocations", nil), q, &out)
	if err != nil {
		return nil, nil, err
	}
	return out, meta, nil
}

// Evaluations returns the evaluations of a job.
func (j *Jobs) Evaluations(ns, id string, q *QueryOptions) ([]*structs.Evaluation, *QueryMeta, error) {
	if err := checkID("job ID", id); err != nil {
		return nil, nil, err
	}
	var out []*structs.Evaluation
	meta, err := j.c.query(jobPath(ns, id, "/evaluations", nil), q, &out)
	if err != nil {
		return nil, nil, err
	}
	return out, meta, nil
}

// LatestDeployment returns the job's most recent deployment. A job that
// never had one answers with a not-found *Error (see IsNotFound).
func (j *Jobs) LatestDeployment(ns, id string, q *QueryOptions) (*structs.Deployment, *QueryMeta, error) {
	if err := checkID("job ID", id); err != nil {
		return nil, nil, err
	}
	var out structs.Deployment
	meta, err := j.c.query(jobPath(ns, id, "/deployment", nil), q, &out)
	if err != nil {
		return nil, nil, err
	}
	return &out, meta, nil
}

// IsNotFound reports whether err is the API's 404 answer.
func IsNotFound(err error) bool {
	var ae *Error
	return errors.As(err, &ae) && ae.StatusCode == http.StatusNotFound
}
