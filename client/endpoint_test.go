package client

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/hivesec/hive/structs"
)

func TestEndpointHandler(t *testing.T) {
	d, r := newFakeDriver(), newReports()
	d.addImage("busybox", "sha256:x")
	cfg := testRunnerConfig(t, d, r)
	a := &Agent{cfg: Config{AllocDir: cfg.allocDir}, logger: hclog.NewNullLogger(), driver: d, allocs: newAllocManager(t.Context(), cfg)}
	// A finished allocation from before a restart: files only.
	dir := taskLogDir(cfg.allocDir, "old", "web")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "web.stdout.0"), []byte("one\ntwo\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "web.stderr.0"), []byte("oops\n"), 0o644)

	h := a.handler()
	get := func(method, path, body string) (int, string) {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w.Code, w.Body.String()
	}
	cases := []struct {
		path string
		code int
		body string
	}{
		{"/v1/client/logs/old/web", 200, "one\ntwo\n"},
		{"/v1/client/logs/old/web?stream=stderr", 200, "oops\n"},
		{"/v1/client/logs/old/web?tail=1&follow=true", 200, "two\n"},
		{"/v1/client/logs/old/db", 404, `"code":"not_found"`},
		{"/v1/client/logs/nope/web", 404, `"code":"not_found"`},
		{"/v1/client/logs/old/.web", 404, `"code":"not_found"`},
		{"/v1/client/logs/old/web?stream=stdin", 400, "use stdout or stderr"},
		{"/v1/client/logs/old/web?tail=-1", 400, "non-negative"},
		{"/v1/client/nothing", 404, `"code":"not_found"`},
	}
	for _, c := range cases {
		code, body := get(http.MethodGet, c.path, "")
		if code != c.code || !strings.Contains(body, c.body) {
			t.Errorf("GET %s: %d %q, want %d with %q", c.path, code, body, c.code, c.body)
		}
	}
	code, body := get(http.MethodGet, "/v1/client/images", "")
	var imgs []structs.ImageInfo
	if err := json.Unmarshal([]byte(body), &imgs); code != 200 || err != nil || len(imgs) != 1 || imgs[0].Digest != "sha256:x" {
		t.Errorf("images: %d %s %v", code, body, err)
	}
	// The fake refuses every archive as the real driver refuses a bad one.
	code, body = get(http.MethodPost, "/v1/client/images", "garbage")
	if code != 400 || !strings.Contains(body, `"code":"bad_archive"`) || !strings.Contains(body, "bad image archive") {
		t.Errorf("bad archive: %d %s", code, body)
	}
}
