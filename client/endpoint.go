package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"time"

	"github.com/hivesec/hive/client/driver"
	"github.com/hivesec/hive/crypto/pki"
	"github.com/hivesec/hive/structs"
)

// importTimeout bounds one image import (a large archive over a slow link).
const importTimeout = 30 * time.Minute

// listen starts the worker's own endpoint on BindAddr:RPCPort. Only
// managers get through the TLS handshake (pki.NodeServerTLS); they proxy
// users' log and image requests here after authorizing them.
func (a *Agent) listen() error {
	addr := net.JoinHostPort(a.cfg.BindAddr, strconv.Itoa(a.cfg.RPCPort))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen for managers on %s: %w", addr, err)
	}
	a.httpSrv = &http.Server{
		Handler:           a.handler(),
		TLSConfig:         pki.NodeServerTLS(a.certs.Pool, a.certs.GetCertificate, nil),
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return a.ctx },
		ErrorLog:          a.logger.Named("rpc").StandardLogger(nil),
	}
	go func() {
		if err := a.httpSrv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.logger.Error("worker endpoint stopped", "error", err)
		}
	}()
	return nil
}

// handler routes the worker endpoint. It is separate from listen so tests
// can call it without TLS.
func (a *Agent) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/client/images", a.handleImages)
	mux.HandleFunc("POST /v1/client/images", a.handleImageImport)
	mux.HandleFunc("GET /v1/client/logs/{alloc}/{task}", a.handleLogs)
	mux.HandleFunc("GET /v1/client/network", a.handleNetwork)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no worker endpoint %s %s", r.Method, r.URL.Path))
	})
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, structs.ErrorResponse{Error: msg, Code: code})
}

func toImageInfos(in []driver.ImageInfo) []structs.ImageInfo {
	out := make([]structs.ImageInfo, 0, len(in))
	for _, i := range in {
		out = append(out, structs.ImageInfo{Name: i.Name, Digest: i.Digest, Size: i.Size})
	}
	return out
}

func (a *Agent) handleImages(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), listTimeout)
	defer cancel()
	imgs, err := a.driver.ListImages(ctx)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, toImageInfos(imgs))
}

// handleImageImport streams the request body (an OCI or Docker archive)
// into containerd.
func (a *Agent) handleImageImport(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), importTimeout)
	defer cancel()
	imgs, err := a.driver.ImportImage(ctx, r.Body)
	if err != nil {
		if errors.Is(err, driver.ErrBadArchive) {
			writeError(w, http.StatusBadRequest, "bad_archive", err.Error())
			return
		}
		writeError(w, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	a.logger.Info("imported images", "count", len(imgs))
	writeJSON(w, http.StatusOK, toImageInfos(imgs))
}

// handleNetwork reports the dataplane: lease, WireGuard peers, allocation
// networks.
func (a *Agent) handleNetwork(w http.ResponseWriter, r *http.Request) {
	if a.net == nil {
		writeJSON(w, http.StatusOK, &structs.NodeNetworkStatus{Peers: []structs.WireGuardPeerState{}, Allocations: []structs.AllocNetworkState{}})
		return
	}
	st, err := a.net.status()
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// pathSegment is what an allocation ID or task name may look like here;
// anything else (a "..", a slash) never reaches the file system.
var pathSegment = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// handleLogs serves a task's stdout or stderr: everything, or the last
// ?tail=N lines, then with ?follow=true whatever it writes next until the
// caller goes away or the task is dead and its output fully read.
func (a *Agent) handleLogs(w http.ResponseWriter, r *http.Request) {
	allocID, task := r.PathValue("alloc"), r.PathValue("task")
	q := r.URL.Query()
	stream := q.Get("stream")
	if stream == "" {
		stream = "stdout"
	}
	if stream != "stdout" && stream != "stderr" {
		writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("stream %q: use stdout or stderr", stream))
		return
	}
	tail := -1
	if v := q.Get("tail"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("tail %q: use a non-negative number of lines", v))
			return
		}
		tail = n
	}
	follow := q.Get("follow") == "true" || q.Get("follow") == "1"
	if !pathSegment.MatchString(allocID) || !pathSegment.MatchString(task) {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no task %q of allocation %q on this node", task, allocID))
		return
	}
	ar := a.allocs.runner(allocID)
	known := false
	if ar != nil {
		_, known = ar.taskDead(task)
	}
	dir := taskLogDir(a.cfg.AllocDir, allocID, task)
	if !known {
		// A finished allocation from before an agent restart still has
		// its files.
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no logs of task %q of allocation %s on this node", task, allocID))
			return
		}
	}
	dead := func() bool {
		if ar == nil || !known {
			return true
		}
		d, _ := ar.taskDead(task)
		return d
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	lr := &logReader{dir: dir, name: task, stream: stream}
	if err := lr.serve(r.Context(), w, tail, follow, dead); err != nil && r.Context().Err() == nil {
		a.logger.Debug("serve logs", "alloc", allocID, "task", task, "error", err)
	}
}
