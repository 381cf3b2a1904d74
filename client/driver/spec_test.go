package driver

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/hivesec/hive/client/driver/testimage"
)

func validConfig() TaskConfig {
	return TaskConfig{ID: "a1-web", Image: "busybox", MemoryBytes: 64 << 20, LogDir: "/tmp/logs"}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*TaskConfig)
		want   error
	}{
		{"ok", func(*TaskConfig) {}, nil},
		{"bad id", func(c *TaskConfig) { c.ID = "a/b" }, ErrInvalidConfig},
		{"no image", func(c *TaskConfig) { c.Image = "" }, ErrInvalidConfig},
		{"privileged", func(c *TaskConfig) { c.Privileged = true }, ErrPrivilegedNotAllowed},
		{"privileged allowed", func(c *TaskConfig) { c.Privileged, c.AllowPrivileged = true, true }, nil},
		{"memory 0", func(c *TaskConfig) { c.MemoryBytes = 0 }, ErrInvalidConfig},
		{"memory 4MiB-1", func(c *TaskConfig) { c.MemoryBytes = 4<<20 - 1 }, ErrInvalidConfig},
		{"memory 4MiB", func(c *TaskConfig) { c.MemoryBytes = 4 << 20 }, nil},
		{"relative log dir", func(c *TaskConfig) { c.LogDir = "logs" }, ErrInvalidConfig},
		{"name with slash", func(c *TaskConfig) { c.Name = "../x" }, ErrInvalidConfig},
		{"reserved label", func(c *TaskConfig) { c.Labels = map[string]string{"hive.driver.managed": "x"} }, ErrInvalidConfig},
		{"unknown cap", func(c *TaskConfig) { c.CapAdd = []string{"FLY"} }, ErrInvalidConfig},
		{"negative quota", func(c *TaskConfig) { c.CPUQuotaMicros = -1 }, ErrInvalidConfig},
		{"relative mount", func(c *TaskConfig) { c.Mounts = []Mount{{Source: "x", Destination: "/x"}} }, ErrInvalidConfig},
		{"relative exec wrapper", func(c *TaskConfig) { c.ExecWrapper = []string{"hive", "secret-exec"} }, ErrInvalidConfig},
		{"absolute exec wrapper", func(c *TaskConfig) { c.ExecWrapper = []string{"/run/hive/hive", "secret-exec", "--"} }, nil},
		{"relative owned path", func(c *TaskConfig) { c.OwnedByUser = []string{"env"} }, ErrInvalidConfig},
		{"tiny log files", func(c *TaskConfig) { c.LogMaxBytes = 10 }, ErrInvalidConfig},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig()
			tc.mutate(&c)
			err := validate(&c)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("validate = %v, want %v", err, tc.want)
			}
		})
	}
	c := validConfig()
	c.CPUQuotaMicros = 50000
	c.CapAdd = []string{"net_bind_service", "CAP_KILL"}
	if err := validate(&c); err != nil {
		t.Fatal(err)
	}
	if c.Name != c.ID || c.CPUPeriodMicros != 100000 || c.LogMaxBytes != DefaultLogMaxBytes || c.LogMaxFiles != DefaultLogMaxFiles {
		t.Errorf("defaults not filled: %+v", c)
	}
	if !reflect.DeepEqual(c.CapAdd, []string{"CAP_NET_BIND_SERVICE", "CAP_KILL"}) {
		t.Errorf("caps = %v", c.CapAdd)
	}
}

func TestProcessArgs(t *testing.T) {
	img := ocispec.ImageConfig{Entrypoint: []string{"/init"}, Cmd: []string{"serve", "-v"}}
	// An exec wrapper goes in front of whatever the rules resolve to.
	wrap := []string{"/run/hive/hive", "secret-exec", "--env-file", "/e", "--"}
	wrapped := func(args ...string) []string { return append(slices.Clone(wrap), args...) }
	cases := []struct {
		name string
		cfg  TaskConfig
		img  ocispec.ImageConfig
		want []string
	}{
		{"image default", TaskConfig{}, img, []string{"/init", "serve", "-v"}},
		{"command+args", TaskConfig{Command: "run", Args: []string{"x"}}, img, []string{"/init", "run", "x"}},
		{"args only", TaskConfig{Args: []string{"x"}}, img, []string{"/init", "x"}},
		{"entrypoint drops cmd", TaskConfig{Entrypoint: []string{"/bin/sh"}}, img, []string{"/bin/sh"}},
		{"entrypoint+command", TaskConfig{Entrypoint: []string{"/bin/sh", "-c"}, Command: "echo hi"}, img, []string{"/bin/sh", "-c", "echo hi"}},
		{"no entrypoint", TaskConfig{Command: "sh"}, ocispec.ImageConfig{Cmd: []string{"x"}}, []string{"sh"}},
		{"wrapped image default", TaskConfig{ExecWrapper: wrap}, img, wrapped("/init", "serve", "-v")},
		{"wrapped command", TaskConfig{ExecWrapper: wrap, Command: "sh", Args: []string{"-c", "x"}}, img, wrapped("/init", "sh", "-c", "x")},
	}
	for _, tc := range cases {
		got, err := processArgs(&tc.cfg, tc.img)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: %v, %v; want %v", tc.name, got, err, tc.want)
		}
	}
	if _, err := processArgs(&TaskConfig{}, ocispec.ImageConfig{}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("no command: %v", err)
	}
}

func TestRotator(t *testing.T) {
	dir := t.TempDir()
	r, err := newRotator(dir, "t.stdout", 10, 2)
	if err != nil {
		t.Fatal(err)
	}
	// 25 bytes in 10-byte files: 0 and 1 full, 2 has 5; keep 2 files.
	if n, err := r.Write([]byte("0123456789abcdefghijKLMNO")); n != 25 || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	r.Close()
	files, _ := LogFiles(dir, "t", "stdout")
	if len(files) != 2 || filepath.Base(files[0]) != "t.stdout.1" || filepath.Base(files[1]) != "t.stdout.2" {
		t.Fatalf("files %v", files)
	}
	// A new rotator (a restarted task) appends to the newest file.
	r, err = newRotator(dir, "t.stdout", 10, 2)
	if err != nil {
		t.Fatal(err)
	}
	r.Write([]byte("PQRSTU"))
	r.Close()
	var all []string
	files, _ = LogFiles(dir, "t", "stdout")
	for _, f := range files {
		b, _ := os.ReadFile(f)
		all = append(all, string(b))
	}
	if got := strings.Join(all, "|"); got != "KLMNOPQRST|U" {
		t.Errorf("contents %q, want %q", got, "KLMNOPQRST|U")
	}
	// Index 10 sorts after 9 (numerically, not as strings).
	for i := 0; i < 11; i++ {
		os.WriteFile(filepath.Join(dir, "n.stderr."+strconv.Itoa(i)), nil, 0o600)
	}
	files, _ = LogFiles(dir, "n", "stderr")
	if filepath.Base(files[len(files)-1]) != "n.stderr.10" {
		t.Errorf("order: %v", files)
	}
}

func TestTestImageDeterministic(t *testing.T) {
	var a, b bytes.Buffer
	ia, err := testimage.Build(&a, testimage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ib, err := testimage.Build(&b, testimage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if ia.ManifestDigest != ib.ManifestDigest || !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Errorf("two builds differ: %s vs %s", ia.ManifestDigest, ib.ManifestDigest)
	}
	if _, err := testimage.Build(&a, testimage.Options{Busybox: "/nonexistent/busybox"}); err == nil || !strings.Contains(err.Error(), "busybox-static") {
		t.Errorf("missing busybox: %v", err)
	}
}
