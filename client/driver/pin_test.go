package driver

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/images"

	"github.com/hivesec/hive/client/driver/testimage"
)

// TestStartByDigestSurvivesRetag: a task started by digest keeps running
// that image after its name is re-imported with another one (and GC has
// run); the name alone gives the new image; once the pinned image is gone
// for good, a start by its digest is refused naming both digests.
func TestStartByDigestSurvivesRetag(t *testing.T) {
	ctx := context.Background()
	const ref = "hive.test/pin/busybox:1"
	importVersion := func(v string) string {
		t.Helper()
		var buf bytes.Buffer
		if _, err := testimage.Build(&buf, testimage.Options{Ref: ref, Files: map[string]string{"etc/version": v + "\n"}}); err != nil {
			t.Fatal(err)
		}
		imgs, err := testDriver.ImportImage(ctx, &buf)
		if err != nil || len(imgs) != 1 || imgs[0].Name != ref {
			t.Fatalf("import %s: %+v %v", v, imgs, err)
		}
		return imgs[0].Digest
	}
	n := 0
	run := func(image, dgst string) (string, error) {
		t.Helper()
		n++
		cfg := taskConfig(t, "cat /etc/version")
		cfg.ID += "-" + string(rune('a'+n))
		cfg.Image, cfg.ImageDigest = image, dgst
		t.Cleanup(func() { _ = testDriver.DestroyTask(ctx, cfg.ID) })
		if _, err := testDriver.StartTask(ctx, cfg); err != nil {
			assertGone(t, testDriver, cfg.ID)
			return "", err
		}
		if st := waitExit(t, testDriver, cfg.ID, 30*time.Second); st.ExitCode != 0 {
			t.Fatalf("exit %d: %s", st.ExitCode, readLogs(t, cfg, "stderr"))
		}
		return strings.TrimSpace(waitLogs(t, cfg, "stdout", "\n")), nil
	}
	mustRun := func(image, dgst, want string) {
		t.Helper()
		got, err := run(image, dgst)
		if err != nil {
			t.Fatalf("start %s pinned to %q: %v", image, dgst, err)
		}
		if got != want {
			t.Errorf("start %s pinned to %q ran %q, want %q", image, dgst, got, want)
		}
	}

	old := importVersion("old")
	mustRun(ref, old, "old")

	// Retag: the name now points at another image; collect garbage.
	cur := importVersion("new")
	if cur == old {
		t.Fatal("the two images have the same digest")
	}
	is := testDriver.client.ImageService()
	dctx := testDriver.ctx(ctx)
	if _, err := is.Create(dctx, images.Image{Name: "hive.test/pin/gc:1", Target: mustGet(t, ref).Target}); err != nil {
		t.Fatal(err)
	}
	if err := is.Delete(dctx, "hive.test/pin/gc:1", images.SynchronousDelete()); err != nil {
		t.Fatal(err)
	}

	mustRun(ref, old, "old")
	mustRun("hive.test/pin/busybox@"+old, "", "old")
	mustRun(ref, "", "new")
	mustRun(ref, cur, "new")
	list, err := testDriver.ListImages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("images: %+v", list)

	// The old image gone for good: refused, naming the name and both digests.
	for _, name := range []string{"hive.test/pin/busybox@" + old, "hive.test/pin/busybox@" + cur} {
		if err := is.Delete(dctx, name, images.SynchronousDelete()); err != nil {
			t.Fatal(err)
		}
	}
	_, err = run(ref, old)
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("start by a digest that is gone: %v, want ErrNotFound", err)
	}
	for _, want := range []string{ref, old, cur} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s: %v", want, err)
		}
	}
	t.Logf("error: %v", err)
	if _, err := run(ref, "sha256:nothex"); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("bad digest: %v, want ErrInvalidConfig", err)
	}
	if _, err := run("hive.test/pin/busybox@"+cur, old); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("conflicting digests: %v, want ErrInvalidConfig", err)
	}
}

func mustGet(t *testing.T, name string) images.Image {
	t.Helper()
	img, err := testDriver.client.ImageService().Get(testDriver.ctx(context.Background()), name)
	if err != nil {
		t.Fatal(err)
	}
	return img
}
