package driver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
)

// NormalizeRef turns an image reference into the name containerd stores,
// the way Docker does: "busybox" is "docker.io/library/busybox:latest".
func NormalizeRef(ref string) (string, error) {
	named, err := reference.ParseDockerRef(ref)
	if err != nil {
		return "", fmt.Errorf("image reference %q: %w", ref, err)
	}
	return named.String(), nil
}

// ImportImage implements Driver. Names come from the archive: Docker's
// RepoTags, or an OCI index's io.containerd.image.name or
// org.opencontainers.image.ref.name annotation, normalised by NormalizeRef.
// An archive that names no image is refused.
func (d *Containerd) ImportImage(ctx context.Context, r io.Reader) (_ []ImageInfo, err error) {
	ctx = d.ctx(ctx)
	d.importMu.Lock()
	defer d.importMu.Unlock()

	before, err := d.client.ImageService().List(ctx)
	if err != nil {
		return nil, fmt.Errorf("import image: list images: %w", err)
	}
	// On any failure put the image store back as it was: delete names the
	// import created, point moved names back at their old targets. The
	// import's lease is gone by then, so GC removes the orphaned blobs.
	defer func() {
		if err != nil {
			d.rollbackImport(ctx, before)
		}
	}()

	imgs, err := d.client.Import(ctx, r,
		containerd.WithImageRefTranslator(func(name string) string {
			if n, err := NormalizeRef(name); err == nil {
				return n
			}
			return name
		}))
	if err != nil {
		if ctx.Err() != nil || errdefs.IsUnavailable(err) {
			return nil, fmt.Errorf("import image: %w", err)
		}
		return nil, fmt.Errorf("import image: %w: %w", ErrBadArchive, err)
	}
	if len(imgs) == 0 {
		return nil, fmt.Errorf("import image: %w: the archive names no image (no RepoTags in manifest.json, no org.opencontainers.image.ref.name annotation in index.json)", ErrBadArchive)
	}
	var out []ImageInfo
	for _, rec := range imgs {
		img := containerd.NewImage(d.client, rec)
		if err := img.Unpack(ctx, d.snapshotter); err != nil {
			return nil, fmt.Errorf("import image: unpack %s: %w: %w", rec.Name, ErrBadArchive, err)
		}
		info, err := d.imageInfo(ctx, img)
		if err != nil {
			return nil, fmt.Errorf("import image: %w", err)
		}
		out = append(out, info)
	}
	return out, nil
}

func (d *Containerd) rollbackImport(ctx context.Context, before []images.Image) {
	ctx, cancel := cleanupCtx(ctx)
	defer cancel()
	after, err := d.client.ImageService().List(ctx)
	if err != nil {
		d.logger.Error("import rollback: list images", "error", err)
		return
	}
	old := make(map[string]images.Image, len(before))
	for _, img := range before {
		old[img.Name] = img
	}
	is := d.client.ImageService()
	for _, img := range after {
		prev, existed := old[img.Name]
		switch {
		case !existed:
			if err := is.Delete(ctx, img.Name, images.SynchronousDelete()); err != nil && !errdefs.IsNotFound(err) {
				d.logger.Error("import rollback: delete image", "image", img.Name, "error", err)
			}
		case prev.Target.Digest != img.Target.Digest:
			if _, err := is.Update(ctx, prev, "target"); err != nil {
				d.logger.Error("import rollback: restore image", "image", img.Name, "error", err)
			}
		}
	}
}

// PullImage implements Driver. It uses containerd's resolver with default
// hosts (HTTPS, anonymous); registry auth and mirrors come later.
func (d *Containerd) PullImage(ctx context.Context, ref string) (ImageInfo, error) {
	ctx = d.ctx(ctx)
	name, err := NormalizeRef(ref)
	if err != nil {
		return ImageInfo{}, fmt.Errorf("pull image: %w: %w", ErrInvalidConfig, err)
	}
	img, err := d.client.Pull(ctx, name,
		containerd.WithPullUnpack,
		containerd.WithPullSnapshotter(d.snapshotter))
	if err != nil {
		return ImageInfo{}, fmt.Errorf("pull image %s: %w", name, notFound(err))
	}
	info, err := d.imageInfo(ctx, img)
	if err != nil {
		return ImageInfo{}, fmt.Errorf("pull image %s: %w", name, err)
	}
	return info, nil
}

// ListImages implements Driver, sorted by name.
func (d *Containerd) ListImages(ctx context.Context) ([]ImageInfo, error) {
	ctx = d.ctx(ctx)
	imgs, err := d.client.ListImages(ctx)
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	out := make([]ImageInfo, 0, len(imgs))
	for _, img := range imgs {
		info, err := d.imageInfo(ctx, img)
		if err != nil {
			// An image whose blobs are gone (a pull interrupted by a
			// crash) is still listed, with size -1, so it can be removed.
			d.logger.Warn("image size", "image", img.Name(), "error", err)
			info = ImageInfo{Name: img.Name(), Digest: img.Target().Digest.String(), Size: -1}
		}
		out = append(out, info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (d *Containerd) imageInfo(ctx context.Context, img containerd.Image) (ImageInfo, error) {
	size, err := img.Size(ctx)
	if err != nil {
		return ImageInfo{}, fmt.Errorf("size of %s: %w", img.Name(), err)
	}
	return ImageInfo{Name: img.Name(), Digest: img.Target().Digest.String(), Size: size}, nil
}

// DigestRef is ref's repository at digest dgst: "busybox" (or
// "busybox:1.36") and "sha256:…" give "docker.io/library/busybox@sha256:…",
// the name containerd gives an image pulled by digest.
func DigestRef(ref, dgst string) (string, error) {
	named, err := reference.ParseDockerRef(ref)
	if err != nil {
		return "", fmt.Errorf("image reference %q: %w", ref, err)
	}
	pinned, err := reference.ParseNormalizedNamed(reference.TrimNamed(named).Name() + "@" + dgst)
	if err != nil {
		return "", fmt.Errorf("image digest %q of %s: %w", dgst, named.Name(), err)
	}
	return pinned.String(), nil
}

// getImage finds the image to run and makes sure it is unpacked for the
// snapshotter: by (normalised) reference, or, when pinned to a digest (dgst,
// or a reference given as name@digest), the image with that target digest.
func (d *Containerd) getImage(ctx context.Context, ref, dgst string) (containerd.Image, error) {
	named, err := reference.ParseDockerRef(ref)
	if err != nil {
		return nil, fmt.Errorf("%w: image reference %q: %w", ErrInvalidConfig, ref, err)
	}
	name := named.String()
	if c, ok := named.(reference.Canonical); ok {
		if dgst != "" && dgst != c.Digest().String() {
			return nil, fmt.Errorf("%w: image %s names a digest other than the pinned %s", ErrInvalidConfig, name, dgst)
		}
		dgst = c.Digest().String()
	}
	var img containerd.Image
	if dgst != "" {
		if img, err = d.pinnedImage(ctx, name, dgst); err != nil {
			return nil, err
		}
	} else {
		img, err = d.client.GetImage(ctx, name)
		if err != nil {
			if errdefs.IsNotFound(err) {
				return nil, fmt.Errorf("image %s is not on this node (import or pull it first): %w", name, ErrNotFound)
			}
			return nil, fmt.Errorf("image %s: %w", name, err)
		}
	}
	ok, err := img.IsUnpacked(ctx, d.snapshotter)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", img.Name(), err)
	}
	if !ok {
		if err := img.Unpack(ctx, d.snapshotter); err != nil {
			return nil, fmt.Errorf("image %s: unpack: %w", img.Name(), err)
		}
	}
	return img, nil
}

// pinnedImage returns the image whose target has digest dgst, recorded
// under DigestRef(name, dgst) so that it outlives a retag of name: the pin
// record if there is one, else name if it still points there, else any
// image with that target. An image that is nowhere is ErrNotFound, with
// an error naming what name points at now.
func (d *Containerd) pinnedImage(ctx context.Context, name, dgst string) (containerd.Image, error) {
	pinName, err := DigestRef(name, dgst)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	is := d.client.ImageService()
	get := func(n string) (*images.Image, error) {
		img, err := is.Get(ctx, n)
		if errdefs.IsNotFound(err) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", n, err)
		}
		return &img, nil
	}
	if pin, err := get(pinName); err != nil {
		return nil, err
	} else if pin != nil && pin.Target.Digest.String() == dgst {
		return containerd.NewImage(d.client, *pin), nil
	}

	// Creating the pin record: an import must not move name meanwhile (and
	// let GC take the image), nor roll the record back as its own.
	d.importMu.Lock()
	defer d.importMu.Unlock()
	cur, err := get(name)
	if err != nil {
		return nil, err
	}
	var found *images.Image
	if cur != nil && cur.Target.Digest.String() == dgst {
		found = cur
	} else {
		all, err := is.List(ctx)
		if err != nil {
			return nil, fmt.Errorf("image %s: list images: %w", pinName, err)
		}
		for i := range all {
			if all[i].Target.Digest.String() == dgst {
				found = &all[i]
				break
			}
		}
	}
	if found == nil {
		if cur == nil {
			return nil, fmt.Errorf("image %s is not on this node, nor any image with the pinned digest %s (import it, or pull %s): %w",
				name, dgst, pinName, ErrNotFound)
		}
		return nil, fmt.Errorf("image %s is now %s, not the pinned %s, and no image with digest %s is on this node (import it, or pull %s): %w",
			name, cur.Target.Digest, dgst, dgst, pinName, ErrNotFound)
	}
	if found.Name != pinName {
		rec := images.Image{Name: pinName, Target: found.Target}
		_, err := is.Create(ctx, rec)
		if errdefs.IsAlreadyExists(err) {
			_, err = is.Update(ctx, rec, "target")
		}
		if err != nil {
			// It runs all the same; only a retag may now lose it.
			d.logger.Warn("record pinned image", "image", pinName, "error", err)
			return containerd.NewImage(d.client, *found), nil
		}
		found = &rec
	}
	return containerd.NewImage(d.client, *found), nil
}

var errNoCommand = errors.New("no command: the image has no entrypoint or cmd and the task sets none")
