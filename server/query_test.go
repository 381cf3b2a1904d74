package server

import (
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/hivesec/hive/structs"
)

// TestBlockingQuery checks ?index=N&wait=D on a list endpoint: it returns
// early on a change with a higher X-Hive-Index, or after the wait with the
// same index, and refuses malformed parameters.
func TestBlockingQuery(t *testing.T) {
	tc := startCluster(t, 1)
	s := tc.leader(t)
	admin := bearer(tc.boot.AdminToken)
	c := newRawCaller(t, s.APIAddr(), tc.boot.CACertPEM, nil, true)

	list := func(t *testing.T, query string) (uint64, []string) {
		t.Helper()
		r := c.call(t, "GET", "/v1/namespaces"+query, admin, nil)
		if r.status != http.StatusOK {
			t.Fatalf("GET /v1/namespaces%s: %s", query, r)
		}
		idx, err := strconv.ParseUint(r.header.Get(headerIndex), 10, 64)
		if err != nil || idx == 0 {
			t.Fatalf("GET /v1/namespaces%s: bad %s header %q", query, headerIndex, r.header.Get(headerIndex))
		}
		var out []structs.Namespace
		mustUnmarshal(t, r.body, &out)
		var names []string
		for _, ns := range out {
			names = append(names, ns.Name)
		}
		return idx, names
	}

	t.Run("WakesOnChange", func(t *testing.T) {
		idx, _ := list(t, "")
		created := make(chan error, 1)
		go func() {
			time.Sleep(200 * time.Millisecond)
			r, err := c.try("PUT", "/v1/namespace/woken", admin, nil)
			if err == nil && r.status != http.StatusOK {
				err = &apiErrorReply{r}
			}
			created <- err
		}()
		got, names := list(t, "?index="+strconv.FormatUint(idx, 10)+"&wait=5s")
		if err := <-created; err != nil {
			t.Fatalf("create namespace: %v", err)
		}
		if got <= idx {
			t.Errorf("woke with index %d, want more than %d", got, idx)
		}
		if !slices.Contains(names, "woken") {
			t.Errorf("woke with namespaces %q, want the new one", names)
		}
	})

	t.Run("ReturnsAfterWaitUnchanged", func(t *testing.T) {
		idx, _ := list(t, "")
		start := time.Now()
		got, _ := list(t, "?index="+strconv.FormatUint(idx, 10)+"&wait=300ms")
		if got != idx {
			t.Errorf("index %d after an unchanged wait, want %d", got, idx)
		}
		if d := time.Since(start); d < 300*time.Millisecond {
			t.Errorf("returned after %s, before the 300ms wait was over", d)
		}
		// A change to another table does not wake a namespace query.
		if r := c.call(t, "POST", "/v1/join-tokens", admin, []byte(`{"role":"worker"}`)); r.status != http.StatusOK {
			t.Fatalf("create join token: %s", r)
		}
		got, _ = list(t, "?index="+strconv.FormatUint(idx, 10)+"&wait=200ms")
		if got != idx {
			t.Errorf("namespace index %d after a join token write, want %d", got, idx)
		}
	})

	t.Run("IndexAheadOfState", func(t *testing.T) {
		idx, _ := list(t, "")
		got, _ := list(t, "?index="+strconv.FormatUint(idx+1000, 10)+"&wait=100ms")
		if got != idx {
			t.Errorf("index %d, want the current %d", got, idx)
		}
	})

	t.Run("NoIndexDoesNotBlock", func(t *testing.T) {
		// wait without index, or index 0, answers at once (the caller's
		// 30s timeout would fail the test long before the 5m wait).
		list(t, "?wait=5m")
		list(t, "?index=0&wait=5m")
	})

	t.Run("BadParameters", func(t *testing.T) {
		for _, q := range []string{
			"?index=abc", "?index=-1", "?index=1.5", "?index=18446744073709551616",
			"?index=1&wait=abc", "?index=1&wait=-1s", "?index=1&wait=5", "?wait=forever",
		} {
			for _, path := range []string{"/v1/namespaces", "/v1/nodes", "/v1/join-tokens", "/v1/events", "/v1/namespace/default"} {
				r := c.call(t, "GET", path+q, admin, nil)
				wantError(t, "GET "+path+q, r, http.StatusBadRequest, "bad_request")
			}
		}
	})
}

type apiErrorReply struct{ r *reply }

func (e *apiErrorReply) Error() string { return e.r.String() }
