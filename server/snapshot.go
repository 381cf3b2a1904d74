package server

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/hivesec/hive/fsm"
	"github.com/hivesec/hive/snapshot"
	"github.com/hivesec/hive/structs"
)

// maxSnapshotSize bounds an uploaded snapshot.
const maxSnapshotSize = 1 << 30

// handleSnapshotSave takes a Raft snapshot on the leader and streams it as a
// checksummed archive.
func (s *Server) handleSnapshotSave(w http.ResponseWriter, _ *http.Request, _ *caller) (any, error) {
	f := s.raft.Snapshot()
	if err := f.Error(); err != nil {
		return nil, fmt.Errorf("take snapshot: %w", err)
	}
	meta, rc, err := f.Open()
	if err != nil {
		return nil, fmt.Errorf("open snapshot: %w", err)
	}
	defer rc.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set(headerIndex, fmt.Sprint(meta.Index))
	w.WriteHeader(http.StatusOK)
	if err := snapshot.Write(w, meta, rc); err != nil {
		// Headers are gone; the client sees a truncated body, which fails
		// its checksum.
		s.logger.Error("snapshot save interrupted", "error", err)
	}
	return nil, nil
}

// handleSnapshotRestore replaces the cluster state with an uploaded archive.
// The whole file is verified (checksum, every record decodes, same cluster)
// before Raft sees a byte of it, so a bad file changes nothing.
func (s *Server) handleSnapshotRestore(_ http.ResponseWriter, r *http.Request, c *caller) (any, error) {
	tmp, err := os.CreateTemp(s.cfg.DataDir, ".restore-*")
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	if _, err := io.Copy(tmp, r.Body); err != nil {
		return nil, badRequest("restore: reading the upload: %v", err)
	}
	a, err := snapshot.Open(tmp)
	if err != nil {
		return nil, badRequest("restore refused: %v", err)
	}
	_, cluster, err := a.Counts()
	if err != nil {
		return nil, badRequest("restore refused: %v", err)
	}
	cur := s.fsm.State().Snapshot().Cluster(nil)
	if cluster == nil {
		return nil, badRequest("restore refused: the snapshot holds no cluster configuration")
	}
	if cur != nil && cluster.ClusterID != cur.ClusterID {
		return nil, errorf(http.StatusConflict, "conflict", "restore refused: the snapshot is of cluster %s but this is cluster %s", cluster.ClusterID, cur.ClusterID)
	}
	if err := s.raft.Restore(&a.Meta, a.Data(), time.Minute); err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	// Record the restore after it, so the event survives it.
	ev := structs.Event{Time: time.Now().UTC(), Type: structs.EventSnapshotRestored, Subject: a.Meta.ID,
		Message: fmt.Sprintf("cluster state restored from snapshot %s (index %d) by %s", a.Meta.ID, a.Meta.Index, c)}
	if _, err := s.apply(fsm.EventType, &fsm.EventRequest{Event: ev}); err != nil {
		s.logger.Warn("could not record snapshot restore event", "error", err)
	}
	s.logger.Info("snapshot restored", "id", a.Meta.ID, "index", a.Meta.Index)
	return struct{}{}, nil
}
