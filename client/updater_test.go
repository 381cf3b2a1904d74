package client

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/hivesec/hive/api"
	"github.com/hivesec/hive/structs"
)

type fakeSink struct {
	mu      sync.Mutex
	batches [][]structs.AllocUpdate
	fail    func(batch []structs.AllocUpdate) error
}

func (s *fakeSink) send(_ context.Context, b []structs.AllocUpdate) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		if err := s.fail(b); err != nil {
			return err
		}
	}
	s.batches = append(s.batches, slices.Clone(b))
	return nil
}

func (s *fakeSink) get() [][]structs.AllocUpdate {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.batches)
}

func waitIdle(t *testing.T, u *updater) {
	t.Helper()
	select {
	case <-u.idleCh():
	case <-time.After(10 * time.Second):
		t.Fatal("updater never became idle")
	}
}

func TestUpdaterCoalesces(t *testing.T) {
	s := &fakeSink{}
	u := newUpdater(s.send, hclog.NewNullLogger())
	go u.run(t.Context())
	for i := 0; i < 50; i++ {
		id := []string{"a", "b", "c"}[i%3]
		u.push(structs.AllocUpdate{ID: id, ClientStatus: structs.AllocPending, ClientDescription: string(rune('0' + i%10))})
	}
	u.push(structs.AllocUpdate{ID: "b", ClientStatus: structs.AllocRunning})
	waitIdle(t, u)
	b := s.get()
	if len(b) != 1 {
		t.Fatalf("%d batches, want 1: %+v", len(b), b)
	}
	var ids []string
	for _, up := range b[0] {
		ids = append(ids, up.ID)
	}
	if !slices.Equal(ids, []string{"a", "b", "c"}) {
		t.Errorf("batch ids %v, want a b c in first-pushed order", ids)
	}
	if b[0][1].ClientStatus != structs.AllocRunning {
		t.Errorf("b sent as %+v, want the latest report", b[0][1])
	}
}

func TestUpdaterRetriesAndKeepsNewest(t *testing.T) {
	var mu sync.Mutex
	down := true
	s := &fakeSink{fail: func([]structs.AllocUpdate) error {
		mu.Lock()
		defer mu.Unlock()
		if down {
			return errors.New("connection refused")
		}
		return nil
	}}
	u := newUpdater(s.send, hclog.NewNullLogger())
	go u.run(t.Context())
	u.push(structs.AllocUpdate{ID: "a", ClientStatus: structs.AllocPending})
	time.Sleep(300 * time.Millisecond) // first send fails; backoff 1 s
	u.push(structs.AllocUpdate{ID: "a", ClientStatus: structs.AllocRunning})
	mu.Lock()
	down = false
	mu.Unlock()
	waitIdle(t, u)
	b := s.get()
	if len(b) != 1 || len(b[0]) != 1 || b[0][0].ClientStatus != structs.AllocRunning {
		t.Errorf("batches %+v, want one with the running report", b)
	}
}

func TestUpdaterDropsRefusedReports(t *testing.T) {
	s := &fakeSink{fail: func(b []structs.AllocUpdate) error {
		for _, up := range b {
			if up.ID == "deleted" {
				return &api.Error{StatusCode: http.StatusNotFound, Message: "allocation deleted: not found"}
			}
		}
		return nil
	}}
	u := newUpdater(s.send, hclog.NewNullLogger())
	go u.run(t.Context())
	u.push(structs.AllocUpdate{ID: "ok1", ClientStatus: structs.AllocRunning})
	u.push(structs.AllocUpdate{ID: "deleted", ClientStatus: structs.AllocRunning})
	u.push(structs.AllocUpdate{ID: "ok2", ClientStatus: structs.AllocRunning})
	waitIdle(t, u)
	var sent []string
	for _, b := range s.get() {
		for _, up := range b {
			sent = append(sent, up.ID)
		}
	}
	if !slices.Equal(sent, []string{"ok1", "ok2"}) {
		t.Errorf("delivered %v, want ok1 ok2", sent)
	}
}

func TestUpdaterFlushesOnShutdown(t *testing.T) {
	s := &fakeSink{}
	u := newUpdater(s.send, hclog.NewNullLogger())
	u.window = time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { u.run(ctx); close(done) }()
	u.push(structs.AllocUpdate{ID: "a", ClientStatus: structs.AllocComplete})
	time.Sleep(20 * time.Millisecond)
	cancel()
	<-done
	if b := s.get(); len(b) != 1 || b[0][0].ID != "a" {
		t.Errorf("batches %+v, want the pending report flushed", b)
	}
}
