package client

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/hivesec/hive/structs"
)

// Attribute keys a worker reports.
const (
	AttrCPUCores      = "cpu.cores"
	AttrCPUMHz        = "cpu.mhz"
	AttrMemoryMB      = "memory.mb"
	AttrKernelVersion = "kernel.version"
	AttrOSName        = "os.name"
	AttrOSVersion     = "os.version"
	AttrArch          = "arch"
	AttrHostname      = "hostname"
)

// fallbackMHz is assumed per core when neither /proc/cpuinfo nor cpufreq
// says (some ARM kernels): a node must offer some CPU to be schedulable.
const fallbackMHz = 1000

// hostFacts is the raw material of a fingerprint, read from the host by
// readHostFacts or given by a test.
type hostFacts struct {
	CPUInfo   string // /proc/cpuinfo
	MaxFreqKH string // /sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq (kHz), may be empty
	MemInfo   string // /proc/meminfo
	OSRelease string // /etc/os-release
	Kernel    string // /proc/sys/kernel/osrelease
	Hostname  string
	Arch      string
}

// readHostFacts reads the files below root ("/" on a real host).
func readHostFacts(root string) (hostFacts, error) {
	read := func(p string) string {
		b, _ := os.ReadFile(filepath.Join(root, p))
		return string(b)
	}
	f := hostFacts{
		CPUInfo:   read("proc/cpuinfo"),
		MaxFreqKH: read("sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq"),
		MemInfo:   read("proc/meminfo"),
		OSRelease: read("etc/os-release"),
		Kernel:    read("proc/sys/kernel/osrelease"),
		Arch:      runtime.GOARCH,
	}
	if f.OSRelease == "" {
		f.OSRelease = read("usr/lib/os-release")
	}
	if f.CPUInfo == "" || f.MemInfo == "" {
		return f, fmt.Errorf("fingerprint: cannot read /proc/cpuinfo or /proc/meminfo under %s", root)
	}
	h, err := os.Hostname()
	if err != nil {
		return f, fmt.Errorf("fingerprint: hostname: %w", err)
	}
	f.Hostname = h
	return f, nil
}

// fingerprint turns host facts into what the worker registers.
func fingerprint(f hostFacts) (map[string]string, structs.Resources) {
	cores, mhz := parseCPUInfo(f.CPUInfo)
	if cores == 0 {
		cores = runtime.NumCPU()
	}
	if mhz == 0 {
		if khz, err := strconv.Atoi(strings.TrimSpace(f.MaxFreqKH)); err == nil && khz > 0 {
			mhz = khz / 1000
		}
	}
	if mhz == 0 {
		mhz = fallbackMHz
	}
	memMB := parseMemInfo(f.MemInfo)
	osName, osVersion := parseOSRelease(f.OSRelease)
	attrs := map[string]string{
		AttrCPUCores:      strconv.Itoa(cores),
		AttrCPUMHz:        strconv.Itoa(mhz),
		AttrMemoryMB:      strconv.Itoa(memMB),
		AttrKernelVersion: strings.TrimSpace(f.Kernel),
		AttrOSName:        osName,
		AttrOSVersion:     osVersion,
		AttrArch:          f.Arch,
		AttrHostname:      f.Hostname,
	}
	for k, v := range attrs {
		if v == "" {
			delete(attrs, k)
		}
	}
	return attrs, structs.Resources{CPU: cores * mhz, MemoryMB: memMB}
}

// parseCPUInfo counts logical CPUs ("processor" entries) and returns the
// highest "cpu MHz" seen, rounded (frequencies differ per core under
// scaling; the highest is what the scheduler can count on at load).
func parseCPUInfo(s string) (cores, mhz int) {
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "processor":
			cores++
		case "cpu MHz":
			if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
				mhz = max(mhz, int(math.Round(f)))
			}
		}
	}
	return cores, mhz
}

// parseMemInfo returns MemTotal in MiB.
func parseMemInfo(s string) int {
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || strings.TrimSpace(k) != "MemTotal" {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) == 0 {
			return 0
		}
		n, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			return 0
		}
		if len(fields) > 1 && strings.EqualFold(fields[1], "kB") {
			return int(n / 1024)
		}
		return int(n / (1 << 20)) // bytes
	}
	return 0
}

// parseOSRelease returns ID and VERSION_ID (as Nomad's os.name and
// os.version: "debian", "12").
func parseOSRelease(s string) (name, version string) {
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if !ok || strings.HasPrefix(k, "#") {
			continue
		}
		if uq, err := strconv.Unquote(v); err == nil {
			v = uq
		} else {
			v = strings.Trim(v, `'"`)
		}
		switch k {
		case "ID":
			name = v
		case "VERSION_ID":
			version = v
		}
	}
	return name, version
}
