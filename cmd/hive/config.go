package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// The CLI config file is the lowest-priority source of the API address,
// token and CA: flags beat HIVE_* variables, which beat the file. `hive dev`
// writes it so the CLI works at once; users may write it by hand.
//
// Format: one "key=value" per line; blank lines and lines starting with #
// are ignored. Keys: address, token, ca_cert. Unknown keys are an error, so
// a typo does not silently fall back to the defaults.
const (
	// EnvConfig names another config file ("" means ~/.hive/config).
	envConfig     = "HIVE_CONFIG"
	configAddress = "address"
	configToken   = "token"
	configCACert  = "ca_cert"
)

// configPath is HIVE_CONFIG, else ~/.hive/config; "" when there is no home.
func configPath() string {
	if p := strings.TrimSpace(os.Getenv(envConfig)); p != "" {
		return p
	}
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		return ""
	}
	return filepath.Join(home, ".hive", "config")
}

// readCLIConfig reads path; a missing file is an empty config.
func readCLIConfig(path string) (map[string]string, error) {
	out := map[string]string{}
	if path == "" {
		return out, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading CLI config %s: %w", path, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" {
			return nil, fmt.Errorf("CLI config %s:%d: want key=value, got %q", path, n, line)
		}
		switch k {
		case configAddress, configToken, configCACert:
			out[k] = v
		default:
			return nil, fmt.Errorf("CLI config %s:%d: unknown key %q (use address, token or ca_cert)", path, n, k)
		}
	}
	return out, sc.Err()
}

// writeCLIConfig writes kv to path (mode 0600, its directory 0700), through
// a temporary file so a reader never sees half of it.
func writeCLIConfig(path string, kv map[string]string) error {
	if path == "" {
		return errors.New("no home directory for the CLI config; set HIVE_CONFIG")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("writing CLI config: %w", err)
	}
	keys := make([]string, 0, len(kv))
	for k := range kv {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("# Hive CLI config: flags and HIVE_ADDR/HIVE_TOKEN/HIVE_CACERT override it.\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%s\n", k, kv[k])
	}
	tmp := path + ".tmp"
	_ = os.Remove(tmp) // a stale one could carry a looser mode
	if err := os.WriteFile(tmp, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("writing CLI config: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("writing CLI config: %w", err)
	}
	return nil
}
