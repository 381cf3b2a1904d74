package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/hivesec/hive/audit"
)

// The audit log: every request a manager handles is one entry, written
// after the response, at the level the audit policy gives it. Requests are
// recorded on the manager that received them and again on the leader when
// forwarded, so each manager's log covers what it did.

// maxAuditBody bounds what of a request or response an entry keeps.
const maxAuditBody = 64 << 10

// openAudit opens the manager's audit log and policy.
func openAudit(cfg Config) (*audit.Writer, *audit.Policy, error) {
	var pol *audit.Policy
	if cfg.AuditPolicyFile != "" {
		src, err := os.ReadFile(cfg.AuditPolicyFile)
		if err != nil {
			return nil, nil, fmt.Errorf("reading audit policy: %w", err)
		}
		if pol, err = audit.ParsePolicy(cfg.AuditPolicyFile, src); err != nil {
			return nil, nil, err
		}
	}
	var sinks []audit.Sink
	if cfg.AuditWebhook != "" {
		sinks = append(sinks, audit.NewWebhook(cfg.AuditWebhook, audit.WebhookOptions{}))
	}
	w, err := audit.Open(filepath.Join(cfg.DataDir, "audit"), audit.WriterOptions{
		Logger: cfg.Logger.Named("audit"), Sinks: sinks, MaxBodyBytes: maxAuditBody,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("opening audit log: %w", err)
	}
	return w, pol, nil
}

// recorder captures the status and (when asked) the start of the body of
// a response.
type recorder struct {
	http.ResponseWriter
	status  int
	keep    bool
	body    bytes.Buffer
	written int
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	if r.keep && r.body.Len() < maxAuditBody {
		r.body.Write(b[:min(len(b), maxAuditBody-r.body.Len())])
	}
	r.written += len(b)
	return r.ResponseWriter.Write(b)
}

// Flush lets streaming handlers (logs) flush through the recorder.
func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap gives http.ResponseController the real writer.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func authMethod(r *http.Request) string {
	if r.Header.Get("Authorization") != "" {
		return "token"
	}
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		return "certificate"
	}
	return "none"
}

// auditLevel is the policy's level for a request by c.
func (s *Server) auditLevel(rt route, r *http.Request, c *caller) audit.Level {
	// Nodes poll their allocations with blocking reads all the time; their
	// writes (status, heartbeats) are recorded.
	if c.nodeID != "" && c.token == nil && r.Method == http.MethodGet {
		return audit.LevelNone
	}
	if s.auditPolicy == nil {
		return audit.LevelMetadata
	}
	var groups []string
	for _, sub := range c.subjects {
		if g, ok := strings.CutPrefix(sub, "group:"); ok {
			groups = append(groups, g)
		}
	}
	return s.auditPolicy.Level(c.String(), groups, c.resource, c.action, c.namespace)
}

// captureRequest keeps the request body (and arranges to keep the
// response) when the policy asks for them.
func (s *Server) captureRequest(rt route, r *http.Request, c *caller, w *recorder) {
	lvl := s.auditLevel(rt, r, c)
	if lvl >= audit.LevelRequest && r.Body != nil && rt.maxBody <= defaultMaxBody {
		if b, err := readBody(r); err == nil {
			c.requestBody = b
		}
	}
	w.keep = lvl >= audit.LevelRequestResponse
}

// auditRequest writes the entry for one request.
func (s *Server) auditRequest(rt route, r *http.Request, c *caller, w *recorder, start time.Time) {
	if s.auditLog == nil {
		return
	}
	status := w.status
	if status == 0 {
		status = http.StatusOK
	}
	lvl := s.auditLevel(rt, r, c)
	// Refusals and authentications are always recorded.
	event := c.event
	if event == "" {
		event = audit.EventRequest
	}
	if lvl == audit.LevelNone && status < 400 && event == audit.EventRequest {
		return
	}
	if lvl == audit.LevelNone {
		lvl = audit.LevelMetadata
	}
	decision := audit.DecisionAllow
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden || status == http.StatusTooManyRequests:
		// A throttled login is a refusal too: brute force shows up in
		// `hive audit tail --decision deny`.
		decision = audit.DecisionDeny
	case status >= 400:
		decision = audit.DecisionError
	}
	var groups []string
	for _, sub := range c.subjects {
		if g, ok := strings.CutPrefix(sub, "group:"); ok {
			groups = append(groups, g)
		}
	}
	e := &audit.Entry{
		Time: start.UTC(), RequestID: requestID(r), Subject: c.String(), Groups: groups, Source: r.RemoteAddr,
		Method: r.Method, Path: r.URL.Path, Action: c.action, Resource: c.resource, Namespace: c.namespace, Name: c.name,
		Decision: decision, Reason: audit.RedactToken(c.reason), Status: status,
		LatencyMS: float64(time.Since(start).Microseconds()) / 1000, Level: lvl, Event: event,
	}
	if c.resource == "" && rt.perm != nil {
		e.Resource, e.Action = rt.perm.resource, rt.perm.action
	}
	if lvl >= audit.LevelRequest && len(c.requestBody) > 0 {
		e.Request = audit.Redact(c.requestBody)
	}
	if lvl >= audit.LevelRequestResponse && w.body.Len() > 0 && json.Valid(w.body.Bytes()) {
		e.Response = audit.Redact(w.body.Bytes())
	}
	if err := s.auditLog.Write(e); err != nil {
		s.logger.Error("cannot write audit entry", "error", err)
		return
	}
	s.metrics.auditEvents.WithLabelValues(lvl.String()).Inc()
}

// auditEvent records something that is not one request's outcome, such as
// a login attempt's verdict or a node joining.
func (s *Server) auditEvent(r *http.Request, event, subject, decision, reason string, status int) {
	if s.auditLog == nil {
		return
	}
	e := &audit.Entry{
		Time: time.Now().UTC(), RequestID: requestID(r), Subject: subject, Source: r.RemoteAddr,
		Method: r.Method, Path: r.URL.Path, Decision: decision, Reason: audit.RedactToken(reason), Status: status,
		Level: audit.LevelMetadata, Event: event,
	}
	if err := s.auditLog.Write(e); err != nil {
		s.logger.Error("cannot write audit entry", "error", err)
		return
	}
	s.metrics.auditEvents.WithLabelValues(audit.LevelMetadata.String()).Inc()
}

// requestID is the caller's X-Request-ID if it looks sane, else a new one,
// set on the request so every entry of one request shares it.
func requestID(r *http.Request) string {
	id := r.Header.Get("X-Request-ID")
	if id == "" || len(id) > 64 || strings.ContainsAny(id, " \t\r\n\"") {
		id = uuid.NewString()
		r.Header.Set("X-Request-ID", id)
	}
	return id
}
