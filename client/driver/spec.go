package driver

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/contrib/seccomp"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/cap"
	"github.com/containerd/containerd/v2/pkg/identifiers"
	"github.com/containerd/containerd/v2/pkg/oci"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/opencontainers/runtime-spec/specs-go"
)

// Log rotation defaults, as Nomad's.
const (
	DefaultLogMaxBytes = 10 << 20
	DefaultLogMaxFiles = 10
)

// validate checks cfg and fills defaults. Every refusal wraps
// ErrInvalidConfig or ErrPrivilegedNotAllowed and names the field.
func validate(cfg *TaskConfig) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	if err := identifiers.Validate(cfg.ID); err != nil {
		return bad("id: %v", err)
	}
	if cfg.Name == "" {
		cfg.Name = cfg.ID
	}
	if strings.ContainsAny(cfg.Name, "/\x00") || cfg.Name == "." || cfg.Name == ".." {
		return bad("name %q: must be usable as a file name", cfg.Name)
	}
	if cfg.Image == "" {
		return bad("image is required")
	}
	if cfg.Privileged && !cfg.AllowPrivileged {
		return fmt.Errorf("%w: task %s asks for privileged mode", ErrPrivilegedNotAllowed, cfg.ID)
	}
	if cfg.MemoryBytes < MinMemoryBytes {
		return bad("memory limit %d bytes is below the minimum of %d bytes (4 MiB)", cfg.MemoryBytes, MinMemoryBytes)
	}
	if cfg.CPUQuotaMicros < 0 {
		return bad("cpu quota %d is negative", cfg.CPUQuotaMicros)
	}
	if cfg.CPUQuotaMicros > 0 && cfg.CPUPeriodMicros == 0 {
		cfg.CPUPeriodMicros = 100000
	}
	if cfg.CPUPeriodMicros != 0 && (cfg.CPUPeriodMicros < 1000 || cfg.CPUPeriodMicros > 1000000) {
		return bad("cpu period %dµs is outside 1000..1000000", cfg.CPUPeriodMicros)
	}
	if cfg.CPUShares != 0 && (cfg.CPUShares < 2 || cfg.CPUShares > 262144) {
		return bad("cpu shares %d is outside 2..262144", cfg.CPUShares)
	}
	if cfg.PidsLimit < 0 {
		return bad("pids limit %d is negative", cfg.PidsLimit)
	}
	if cfg.LogDir == "" || !filepath.IsAbs(cfg.LogDir) {
		return bad("log dir %q must be an absolute path", cfg.LogDir)
	}
	if cfg.LogMaxBytes == 0 {
		cfg.LogMaxBytes = DefaultLogMaxBytes
	}
	if cfg.LogMaxFiles == 0 {
		cfg.LogMaxFiles = DefaultLogMaxFiles
	}
	if cfg.LogMaxBytes < 1024 || cfg.LogMaxFiles < 1 {
		return bad("log rotation: max bytes %d (min 1024) and max files %d (min 1)", cfg.LogMaxBytes, cfg.LogMaxFiles)
	}
	for _, m := range cfg.Mounts {
		if !filepath.IsAbs(m.Source) || !filepath.IsAbs(m.Destination) {
			return bad("mount %s -> %s: both paths must be absolute", m.Source, m.Destination)
		}
	}
	if len(cfg.ExecWrapper) > 0 && !filepath.IsAbs(cfg.ExecWrapper[0]) {
		return bad("exec wrapper %q must be an absolute path", cfg.ExecWrapper[0])
	}
	for _, p := range cfg.OwnedByUser {
		if !filepath.IsAbs(p) {
			return bad("path %q to give to the task's user must be absolute", p)
		}
	}
	if cfg.NetNSPath != "" && !filepath.IsAbs(cfg.NetNSPath) {
		return bad("network namespace %q must be an absolute path", cfg.NetNSPath)
	}
	for k := range cfg.Labels {
		if strings.HasPrefix(k, labelPrefix) {
			return bad("label %q: the %s prefix is reserved", k, labelPrefix)
		}
	}
	var err error
	if cfg.CapAdd, err = normalizeCaps(cfg.CapAdd); err != nil {
		return bad("cap_add: %v", err)
	}
	if cfg.CapDrop, err = normalizeCaps(cfg.CapDrop); err != nil {
		return bad("cap_drop: %v", err)
	}
	return nil
}

// normalizeCaps upper-cases, adds the CAP_ prefix, expands ALL and rejects
// names the kernel headers do not know.
func normalizeCaps(in []string) ([]string, error) {
	known := cap.Known()
	var out []string
	for _, c := range in {
		c = strings.ToUpper(strings.TrimSpace(c))
		if c == "ALL" {
			out = append(out, known...)
			continue
		}
		if !strings.HasPrefix(c, "CAP_") {
			c = "CAP_" + c
		}
		if !slices.Contains(known, c) {
			return nil, fmt.Errorf("unknown capability %q", c)
		}
		out = append(out, c)
	}
	return out, nil
}

// processArgs follows Docker's rules: Entrypoint replaces the image's
// entrypoint; Command (+Args) or Args alone replace the image's cmd.
func processArgs(cfg *TaskConfig, img ocispec.ImageConfig) ([]string, error) {
	entry := img.Entrypoint
	if len(cfg.Entrypoint) > 0 {
		entry = cfg.Entrypoint
	}
	cmd := img.Cmd
	switch {
	case cfg.Command != "":
		cmd = append([]string{cfg.Command}, cfg.Args...)
	case len(cfg.Args) > 0:
		cmd = cfg.Args
	case len(cfg.Entrypoint) > 0:
		// Docker drops the image's cmd when the entrypoint is replaced.
		cmd = nil
	}
	args := append(append([]string{}, entry...), cmd...)
	if len(args) == 0 {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, errNoCommand)
	}
	if len(cfg.ExecWrapper) > 0 {
		args = append(append([]string{}, cfg.ExecWrapper...), args...)
	}
	return args, nil
}

// specOpts builds the OCI spec: containerd's defaults (runc's masked and
// read-only paths, new namespaces, cgroup /hive/<id>), then Hive's
// restrictions. Order matters: the seccomp profile is derived from the
// capabilities, so it comes after them.
func (d *Containerd) specOpts(cfg *TaskConfig, image containerd.Image, args []string) []oci.SpecOpts {
	opts := []oci.SpecOpts{
		oci.WithImageConfig(image),
		oci.WithProcessArgs(args...),
		oci.WithHostname(hostname(cfg)),
	}
	if len(cfg.Env) > 0 {
		keys := make([]string, 0, len(cfg.Env))
		for k := range cfg.Env {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		env := make([]string, 0, len(keys))
		for _, k := range keys {
			env = append(env, k+"="+cfg.Env[k])
		}
		opts = append(opts, oci.WithEnv(env))
	}
	if cfg.User != "" {
		opts = append(opts, oci.WithUser(cfg.User))
	}
	if cfg.Cwd != "" {
		opts = append(opts, oci.WithProcessCwd(cfg.Cwd))
	}

	// The task's own cgroup, read-only, so it can see its limits.
	mounts := []specs.Mount{{
		Destination: "/sys/fs/cgroup",
		Type:        "cgroup",
		Source:      "cgroup",
		Options:     []string{"ro", "nosuid", "noexec", "nodev"},
	}}
	for _, m := range cfg.Mounts {
		o := []string{"rbind", "nosuid", "nodev", "rprivate"}
		if m.ReadOnly {
			o = append(o, "ro")
		} else {
			o = append(o, "rw")
		}
		mounts = append(mounts, specs.Mount{Destination: m.Destination, Type: "bind", Source: m.Source, Options: o})
	}
	opts = append(opts, oci.WithMounts(mounts))
	if cfg.NetNSPath != "" {
		opts = append(opts, oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: cfg.NetNSPath}))
	}
	if d.cgroups == CgroupsV2 {
		// On v2 a private cgroup namespace makes /sys/fs/cgroup the task's
		// own cgroup; on v1 runc bind-mounts the task's cgroups instead.
		opts = append(opts, oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.CgroupNamespace}))
	}
	if cfg.ReadOnlyRootfs {
		opts = append(opts, oci.WithRootFSReadonly())
	}

	// Resources.
	opts = append(opts, oci.WithMemoryLimit(uint64(cfg.MemoryBytes)))
	if cfg.CPUShares > 0 {
		opts = append(opts, oci.WithCPUShares(cfg.CPUShares))
	}
	if cfg.CPUQuotaMicros > 0 {
		opts = append(opts, oci.WithCPUCFS(cfg.CPUQuotaMicros, cfg.CPUPeriodMicros))
	}
	if cfg.PidsLimit > 0 {
		opts = append(opts, oci.WithPidsLimit(cfg.PidsLimit))
	}

	if cfg.Privileged {
		// Only reached with AllowPrivileged (validate).
		return append(opts,
			oci.WithPrivileged,
			oci.WithAllDevicesAllowed,
			oci.WithHostDevices,
			oci.WithNewPrivileges)
	}
	return append(opts,
		oci.WithNoNewPrivileges,
		oci.WithCapabilities(nil),
		oci.WithAddedCapabilities(cfg.CapAdd),
		oci.WithDroppedCapabilities(cfg.CapDrop),
		withoutInheritableCaps,
		seccomp.WithDefaultProfile())
}

// withoutInheritableCaps clears the inheritable and ambient sets, so that
// an added capability cannot pass through exec to an unprivileged binary.
func withoutInheritableCaps(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
	if s.Process != nil && s.Process.Capabilities != nil {
		s.Process.Capabilities.Inheritable = nil
		s.Process.Capabilities.Ambient = nil
	}
	return nil
}

func hostname(cfg *TaskConfig) string {
	h := cfg.Name
	if len(h) > 63 {
		h = h[:63]
	}
	return h
}
