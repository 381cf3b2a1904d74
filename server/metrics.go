package server

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are a manager's Prometheus series, on a registry of its own so
// that several managers in one process (the tests) do not collide.
type metrics struct {
	reg          *prometheus.Registry
	authFailures *prometheus.CounterVec
	denied       *prometheus.CounterVec
	auditEvents  *prometheus.CounterVec
	handler      http.Handler
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hive_authentication_failures_total",
			Help: "Failed authentications, by method (token, password, certificate).",
		}, []string{"method"}),
		denied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hive_authorization_denied_total",
			Help: "Requests denied by RBAC, by resource and action.",
		}, []string{"resource", "action"}),
		auditEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hive_audit_events_total",
			Help: "Audit entries written, by level.",
		}, []string{"level"}),
	}
	m.reg.MustRegister(m.authFailures, m.denied, m.auditEvents,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.handler = promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
	return m
}

func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request, _ *caller) (any, error) {
	s.metrics.handler.ServeHTTP(w, r)
	return nil, nil
}
