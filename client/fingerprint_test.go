package client

import (
	"maps"
	"testing"

	"github.com/hivesec/hive/structs"
)

func TestFingerprintFixtures(t *testing.T) {
	cases := []struct {
		dir   string
		attrs map[string]string
		res   structs.Resources
	}{
		{"testdata/fingerprint/debian12-amd64", map[string]string{
			AttrCPUCores: "2", AttrCPUMHz: "2596", AttrMemoryMB: "24105", AttrKernelVersion: "6.18.44-fc-v669",
			AttrOSName: "debian", AttrOSVersion: "12", AttrArch: "testarch", AttrHostname: "fixture-host",
		}, structs.Resources{CPU: 2 * 2596, MemoryMB: 24105}},
		// No "cpu MHz" in /proc/cpuinfo (ARM): cpufreq's maximum is used.
		{"testdata/fingerprint/alpine-arm64", map[string]string{
			AttrCPUCores: "4", AttrCPUMHz: "1800", AttrMemoryMB: "3793", AttrKernelVersion: "6.1.0-rpi7-rpi-v8",
			AttrOSName: "alpine", AttrOSVersion: "3.19.1", AttrArch: "testarch", AttrHostname: "fixture-host",
		}, structs.Resources{CPU: 4 * 1800, MemoryMB: 3793}},
	}
	for _, c := range cases {
		f, err := readHostFacts(c.dir)
		if err != nil {
			t.Fatalf("%s: %v", c.dir, err)
		}
		f.Hostname, f.Arch = "fixture-host", "testarch"
		attrs, res := fingerprint(f)
		if !maps.Equal(attrs, c.attrs) {
			t.Errorf("%s: attributes\n got %v\nwant %v", c.dir, attrs, c.attrs)
		}
		if res != c.res {
			t.Errorf("%s: resources %+v, want %+v", c.dir, res, c.res)
		}
	}
}

func TestFingerprintParsers(t *testing.T) {
	if c, m := parseCPUInfo("processor: 0\ncpu MHz: 1200.4\nprocessor: 1\ncpu MHz\t: 3400.6\n"); c != 2 || m != 3401 {
		t.Errorf("cpuinfo: %d cores %d MHz", c, m)
	}
	if c, m := parseCPUInfo(""); c != 0 || m != 0 {
		t.Errorf("empty cpuinfo: %d %d", c, m)
	}
	if got := parseMemInfo("MemFree: 1 kB\nMemTotal:   2097152 kB\n"); got != 2048 {
		t.Errorf("meminfo: %d", got)
	}
	if got := parseMemInfo("garbage"); got != 0 {
		t.Errorf("bad meminfo: %d", got)
	}
	n, v := parseOSRelease("# comment\nNAME='Fedora Linux'\nID=fedora\nVERSION_ID=40\n")
	if n != "fedora" || v != "40" {
		t.Errorf("os-release: %q %q", n, v)
	}
	// Empty values are left out; unknown MHz falls back.
	attrs, res := fingerprint(hostFacts{CPUInfo: "processor: 0\n", MemInfo: "MemTotal: 1048576 kB\n"})
	if _, ok := attrs[AttrOSName]; ok || attrs[AttrCPUMHz] != "1000" || res.CPU != 1000 || res.MemoryMB != 1024 {
		t.Errorf("sparse host: %v %+v", attrs, res)
	}
}
