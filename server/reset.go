package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/hivesec/hive/fsm"
	"github.com/hivesec/hive/structs"
)

// Admin reset: the way back in when every admin credential is lost. It
// needs local root on a manager, proven by reaching a Unix socket in the
// manager's data dir (mode 0600 in a 0700 dir), never by anything on the
// network. The socket answers one request: revoke every management token
// and issue a new bootstrap token. The manager that receives it asks the
// leader through the API with its own manager certificate.

// AdminSocketName is the reset socket's name inside the data dir.
const AdminSocketName = "admin.sock"

// AdminSocketPath is where a manager with data dir dir listens for resets.
func AdminSocketPath(dir string) string { return filepath.Join(dir, AdminSocketName) }

// startAdminSocket listens on the reset socket.
func (s *Server) startAdminSocket() error {
	path := AdminSocketPath(s.cfg.DataDir)
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove stale admin socket: %w", err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("listen on admin socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		_ = ln.Close()
		return fmt.Errorf("restrict admin socket: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /reset-admin", s.handleLocalReset)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.logger.Error("admin socket stopped", "error", err)
		}
	}()
	go func() {
		defer s.wg.Done()
		<-s.ctx.Done()
		_ = srv.Close()
		_ = os.Remove(path)
	}()
	return nil
}

// handleLocalReset passes the reset to the cluster as this manager.
func (s *Server) handleLocalReset(w http.ResponseWriter, r *http.Request) {
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: s.internalTLS}}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+s.APIAddr()+"/v1/internal/reset-admin", nil)
	if err != nil {
		writeError(w, err)
		return
	}
	resp, err := client.Do(req)
	if err != nil {
		writeError(w, errorf(http.StatusServiceUnavailable, "unavailable", "cannot reach this manager's API: %v", err))
		return
	}
	defer resp.Body.Close()
	s.auditEvent(r, "admin-reset", "local:"+AdminSocketName, decisionFor(resp.StatusCode), "admin reset requested on the local socket", resp.StatusCode)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, io.LimitReader(resp.Body, 1<<20))
}

func decisionFor(status int) string {
	switch {
	case status < 400:
		return "allow"
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return "deny"
	}
	return "error"
}

// handleResetAdmin runs on the leader for a manager's certificate.
func (s *Server) handleResetAdmin(_ http.ResponseWriter, _ *http.Request, c *caller) (any, error) {
	if c.nodeRole != structs.RoleManager {
		return nil, errorf(http.StatusForbidden, "forbidden", "only a manager may reset the admin token, on behalf of its local root")
	}
	now := time.Now().UTC()
	tok, secret, err := newToken("admin", bootstrapTokenName, "", "node:"+c.nodeID, 0, now)
	if err != nil {
		return nil, err
	}
	tok.Kind = structs.ACLTokenKindManagement
	write := &fsm.ACLWriteRequest{Tokens: []*structs.ACLToken{tok}, Now: now}
	for _, t := range s.fsm.State().Snapshot().ACLTokens(nil) {
		if t.Kind == structs.ACLTokenKindManagement || t.Role == "admin" {
			write.DeleteTokens = append(write.DeleteTokens, t.AccessorID)
		}
	}
	if _, err := s.apply(fsm.ACLWriteType, write); err != nil {
		return nil, err
	}
	c.reason = fmt.Sprintf("admin reset: %d management tokens revoked, new bootstrap token %s", len(write.DeleteTokens), tok.AccessorID)
	s.logger.Warn("admin credentials reset from a manager's local socket", "manager", c.nodeID, "revoked", len(write.DeleteTokens))
	return &structs.ResetAdminResponse{Secret: secret, Revoked: len(write.DeleteTokens)}, nil
}

// ResetAdmin asks the manager whose data dir is dir, over its local admin
// socket, to revoke every management token and issue a new one.
func ResetAdmin(ctx context.Context, dir string) (*structs.ResetAdminResponse, error) {
	path := AdminSocketPath(dir)
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://local/reset-admin", nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the manager's admin socket %s (is the manager running with this data dir, and are you root?): %w", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		var e structs.ErrorResponse
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return nil, fmt.Errorf("admin reset refused: %s", e.Error)
		}
		return nil, fmt.Errorf("admin reset refused: HTTP %d", resp.StatusCode)
	}
	var out structs.ResetAdminResponse
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("admin reset: bad answer: %w", err)
	}
	return &out, nil
}
