// Package testimage builds a tiny OCI (or Docker) image archive from the
// host's static busybox, for tests on machines without a registry or a
// Docker engine. The archive is deterministic: same busybox, same digest.
package testimage

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"time"
)

// DefaultRef is the name the test image is imported under (containerd
// stores it as is: it is already a normalised reference).
const DefaultRef = "docker.io/hive/busybox:test"

// DefaultBusybox is where Debian's busybox-static puts the binary.
const DefaultBusybox = "/bin/busybox"

// Applets get a symlink to busybox in /bin.
var Applets = []string{
	"[", "ash", "awk", "base64", "basename", "cat", "chmod", "chown", "cp", "cut", "date", "dd",
	"df", "dirname", "du", "echo", "env", "false", "find", "free", "grep", "head", "hostname",
	"id", "ip", "kill", "ln", "ls", "md5sum", "mkdir", "mount", "mv", "nc", "nslookup", "ping",
	"printf", "ps", "pwd", "readlink", "rm", "sed", "seq", "sh", "sha256sum", "sleep", "sort",
	"stat", "tail", "tee", "test", "timeout", "top", "touch", "tr", "true", "uname", "uniq",
	"usleep", "wc", "wget", "whoami", "xargs", "yes",
}

// Format of the archive.
type Format int

const (
	OCI    Format = iota // oci-layout + index.json + blobs/sha256/…
	Docker               // manifest.json + <digest>.json + <digest>/layer.tar
)

// Options for Build. Zero values mean the defaults above and OCI.
type Options struct {
	Ref     string
	Busybox string
	Format  Format
	// Files are extra regular files (path without leading slash ->
	// content) in the layer; different Files give a different layer digest.
	Files map[string]string
}

// Info describes a built image.
type Info struct {
	Ref            string
	ManifestDigest string // OCI only
	ConfigDigest   string
	Size           int64 // of the archive
}

// epoch is the mtime of everything in the image, for reproducible digests.
var epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// Build writes the image archive to w.
func Build(w io.Writer, opts Options) (Info, error) {
	if opts.Ref == "" {
		opts.Ref = DefaultRef
	}
	if opts.Busybox == "" {
		opts.Busybox = DefaultBusybox
	}
	bb, err := readStaticBusybox(opts.Busybox)
	if err != nil {
		return Info{}, err
	}
	layer, err := rootfsLayer(bb, opts.Files)
	if err != nil {
		return Info{}, err
	}
	layerDigest := digest(layer)

	config, err := json.Marshal(map[string]any{
		"created":      epoch.Format(time.RFC3339),
		"architecture": runtime.GOARCH,
		"os":           "linux",
		"config": map[string]any{
			"Env":        []string{"PATH=/bin"},
			"Cmd":        []string{"sh"},
			"WorkingDir": "/",
		},
		"rootfs":  map[string]any{"type": "layers", "diff_ids": []string{layerDigest}},
		"history": []map[string]any{{"created": epoch.Format(time.RFC3339), "created_by": "hive testimage from " + opts.Busybox}},
	})
	if err != nil {
		return Info{}, err
	}
	configDigest := digest(config)

	cw := &countingWriter{w: w}
	tw := tar.NewWriter(cw)
	info := Info{Ref: opts.Ref, ConfigDigest: configDigest}
	switch opts.Format {
	case OCI:
		manifest, err := json.Marshal(map[string]any{
			"schemaVersion": 2,
			"mediaType":     "application/vnd.oci.image.manifest.v1+json",
			"config":        descriptor("application/vnd.oci.image.config.v1+json", config),
			"layers":        []any{descriptor("application/vnd.oci.image.layer.v1.tar", layer)},
		})
		if err != nil {
			return Info{}, err
		}
		info.ManifestDigest = digest(manifest)
		md := descriptor("application/vnd.oci.image.manifest.v1+json", manifest)
		md["annotations"] = map[string]string{"org.opencontainers.image.ref.name": opts.Ref}
		md["platform"] = map[string]string{"architecture": runtime.GOARCH, "os": "linux"}
		index, err := json.Marshal(map[string]any{
			"schemaVersion": 2,
			"mediaType":     "application/vnd.oci.image.index.v1+json",
			"manifests":     []any{md},
		})
		if err != nil {
			return Info{}, err
		}
		files := []struct {
			name string
			data []byte
		}{
			{"oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)},
			{"index.json", index},
			{blobPath(config), config},
			{blobPath(manifest), manifest},
			{blobPath(layer), layer},
		}
		for _, d := range []string{"blobs/", "blobs/sha256/"} {
			if err := tw.WriteHeader(dirHeader(d)); err != nil {
				return Info{}, err
			}
		}
		for _, f := range files {
			if err := writeFile(tw, f.name, f.data, 0o644); err != nil {
				return Info{}, err
			}
		}
	case Docker:
		hexOf := func(d string) string { return d[len("sha256:"):] }
		manifest, err := json.Marshal([]map[string]any{{
			"Config":   hexOf(configDigest) + ".json",
			"RepoTags": []string{opts.Ref},
			"Layers":   []string{hexOf(layerDigest) + "/layer.tar"},
		}})
		if err != nil {
			return Info{}, err
		}
		if err := tw.WriteHeader(dirHeader(hexOf(layerDigest) + "/")); err != nil {
			return Info{}, err
		}
		for _, f := range []struct {
			name string
			data []byte
		}{
			{hexOf(configDigest) + ".json", config},
			{hexOf(layerDigest) + "/layer.tar", layer},
			{"manifest.json", manifest},
		} {
			if err := writeFile(tw, f.name, f.data, 0o644); err != nil {
				return Info{}, err
			}
		}
	default:
		return Info{}, fmt.Errorf("testimage: unknown format %d", opts.Format)
	}
	if err := tw.Close(); err != nil {
		return Info{}, err
	}
	info.Size = cw.n
	return info, nil
}

// WriteFile builds the archive into path.
func WriteFile(path string, opts Options) (Info, error) {
	f, err := os.Create(path)
	if err != nil {
		return Info{}, err
	}
	info, err := Build(f, opts)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
	}
	return info, err
}

func readStaticBusybox(path string) ([]byte, error) {
	hint := "install Debian's busybox-static (apt-get install busybox-static, or scripts/install-deps.sh)"
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("testimage: %w; %s", err, hint)
	}
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("testimage: %s is not an ELF binary: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return nil, fmt.Errorf("testimage: %s is dynamically linked and would not run in an empty image; %s", path, hint)
		}
	}
	return b, nil
}

// rootfsLayer is an uncompressed tar: /bin/busybox and its applets, a
// passwd and group with root, nobody and an unprivileged user 1000, and
// writable /tmp.
func rootfsLayer(busybox []byte, extra map[string]string) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, d := range []string{"bin/", "etc/", "proc/", "sys/", "dev/", "run/", "root/", "home/", "home/user/"} {
		h := dirHeader(d)
		if d == "home/user/" {
			h.Uid, h.Gid = 1000, 1000
		}
		if d == "root/" {
			h.Mode = 0o700
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
	}
	tmp := dirHeader("tmp/")
	tmp.Mode = 0o1777
	if err := tw.WriteHeader(tmp); err != nil {
		return nil, err
	}
	if err := writeFile(tw, "bin/busybox", busybox, 0o755); err != nil {
		return nil, err
	}
	for _, a := range Applets {
		if err := tw.WriteHeader(&tar.Header{
			Typeflag: tar.TypeSymlink, Name: "bin/" + a, Linkname: "busybox",
			Mode: 0o777, ModTime: epoch, Format: tar.FormatPAX,
		}); err != nil {
			return nil, err
		}
	}
	passwd := "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
	group := "root:x:0:\nuser:x:1000:\nnogroup:x:65534:\n"
	for _, f := range []struct{ name, data string }{
		{"etc/passwd", passwd}, {"etc/group", group},
		{"etc/hosts", "127.0.0.1 localhost\n::1 localhost\n"},
	} {
		if err := writeFile(tw, f.name, []byte(f.data), 0o644); err != nil {
			return nil, err
		}
	}
	names := make([]string, 0, len(extra))
	for name := range extra {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := writeFile(tw, name, []byte(extra[name]), 0o644); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func dirHeader(name string) *tar.Header {
	return &tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755, ModTime: epoch, Format: tar.FormatPAX}
}

func writeFile(tw *tar.Writer, name string, data []byte, mode int64) error {
	if err := tw.WriteHeader(&tar.Header{
		Typeflag: tar.TypeReg, Name: name, Size: int64(len(data)),
		Mode: mode, ModTime: epoch, Format: tar.FormatPAX,
	}); err != nil {
		return err
	}
	_, err := tw.Write(data)
	return err
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func blobPath(b []byte) string {
	sum := sha256.Sum256(b)
	return filepath.Join("blobs", "sha256", hex.EncodeToString(sum[:]))
}

func descriptor(mediaType string, b []byte) map[string]any {
	return map[string]any{"mediaType": mediaType, "digest": digest(b), "size": len(b)}
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
