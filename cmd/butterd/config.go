package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// A config key is a `butterd run` flag (--data-root), a line of the config
// file (DATA_ROOT = ...) and an env variable (BUTTERD_DATA_ROOT).
// Precedence: flag, env, file, default.
type configKey struct {
	name, def, help string
}

var configKeys = []configKey{
	{"DATA_ROOT", "/var/lib/butterd", "where volumes/, snapshots/ and received/ live; when not on BTRFS, butterd loop-mounts its own pool image DATA_ROOT.img there"},
	{"POOL_SIZE", "20G", "size of the sparse pool image made when DATA_ROOT is not on BTRFS (only at its creation)"},
	{"PLUGIN_SOCKET", "/run/docker/plugins/btrfs.sock", "Docker plugin socket to bind (ignored when systemd passes the socket)"},
	{"UNIT_DIR", "/etc/systemd/system", "where schedule units are written (a directory of systemd's unit search path)"},
	{"BUTTERCTL", "/usr/bin/butterctl", "the butterctl the schedule units run"},
	{"SYSTEMD_BUS", "", "how to reach systemd for schedules: empty picks /run/systemd/private as root, else the system bus; a D-Bus address; none turns schedules off"},
	{"SSH_PORT", "1122", "replication endpoint port, bound once a peer exists (under systemd, butterd writes it into a drop-in of butterd-ssh.socket)"},
	{"SSH_ADDRESS", "", "replication endpoint address (all when empty)"},
	{"LOG_LEVEL", "info", "debug, info, warn or error"},
	{"EXIT_IDLE", "0", "exit after this long without plugin requests, D-Bus calls, replication connections or jobs (a time span: minutes, or 90s, 5min...; 0 never); the socket or bus activation starts butterd again"},
	{"WEBHOOK_URL", "", "an http(s) URL that each failed job (a scheduled one too) is posted to as JSON; empty: none"},
	{"DOCKER_HOST", "unix:///var/run/docker.sock", "Docker Engine API whose containers are quiesced around snapshots of their volumes (none turns that off); butterd connects on first use"},
}

const defaultConfigFile = "/etc/butterd/butterd.conf"

// config is the resolved value of every key.
type config map[string]string

// flagName turns DATA_ROOT into data-root.
func flagName(key string) string { return strings.ToLower(strings.ReplaceAll(key, "_", "-")) }

// loadConfig resolves keys from the flags that were set, the environment, the
// file and the defaults.
func loadConfig(fs *flag.FlagSet, file string, fileGiven bool, env func(string) string) (config, error) {
	fromFile, err := readConfigFile(file)
	if err != nil {
		if !os.IsNotExist(err) || fileGiven {
			return nil, err
		}
		fromFile = map[string]string{}
	}
	set := map[string]string{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = f.Value.String() })
	c := config{}
	for _, k := range configKeys {
		v, ok := set[flagName(k.name)]
		if !ok {
			v, ok = env("BUTTERD_"+k.name), env("BUTTERD_"+k.name) != ""
		}
		if !ok {
			v, ok = fromFile[k.name]
		}
		if !ok {
			v = k.def
		}
		c[k.name] = v
	}
	return c, nil
}

// readConfigFile reads KEY = value lines; '#' starts a comment; [sections]
// (such as [policy NAME]) are read by whoever needs them and skipped here.
func readConfigFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseConfig(f, path)
}

// parseConfig is readConfigFile on the text of file name.
func parseConfig(r io.Reader, name string) (map[string]string, error) {
	known := map[string]bool{}
	for _, k := range configKeys {
		known[k.name] = true
	}
	out := map[string]string{}
	section := ""
	err := eachLine(r, name, func(n int, line string) error {
		if strings.HasPrefix(line, "[") {
			section = line
			return nil
		}
		if section != "" {
			return nil
		}
		key, val, ok := strings.Cut(line, "=")
		key, val = strings.ToUpper(strings.TrimSpace(key)), strings.TrimSpace(val)
		if !ok || key == "" {
			return fmt.Errorf("%s:%d: expected KEY = value, got %q", name, n, line)
		}
		if !known[key] {
			return fmt.Errorf("%s:%d: unknown key %q: known keys are %s", name, n, key, strings.Join(keyNames(), ", "))
		}
		out[key] = strings.Trim(val, `"`)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// eachLine calls fn with each line of r that is neither blank nor a comment
// ('#' or ';'), stripped of surrounding spaces, and its number.
func eachLine(r io.Reader, name string, fn func(n int, line string) error) error {
	sc := bufio.NewScanner(r)
	n := 0
	for n = 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";") {
			continue
		}
		if err := fn(n, line); err != nil {
			return err
		}
	}
	if err := sc.Err(); errors.Is(err, bufio.ErrTooLong) {
		return fmt.Errorf("%s:%d: line longer than %d bytes", name, n, bufio.MaxScanTokenSize)
	} else if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

func keyNames() []string {
	var names []string
	for _, k := range configKeys {
		names = append(names, k.name)
	}
	sort.Strings(names)
	return names
}

// readPolicies reads the [policy NAME] sections of the config file: option
// = value lines, the defaults of `-o policy=NAME` (service checks the
// options). Other sections, a policy given twice and an option given twice
// in one policy are errors. A missing file has no policies.
func readPolicies(path string) (map[string]map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parsePolicies(f, path)
}

// parsePolicies is readPolicies on the text of file name.
func parsePolicies(r io.Reader, name string) (map[string]map[string]string, error) {
	policies := map[string]map[string]string{}
	var current map[string]string
	policy := ""
	err := eachLine(r, name, func(n int, line string) error {
		if strings.HasPrefix(line, "[") {
			fields := strings.Fields(strings.TrimSuffix(strings.TrimPrefix(line, "["), "]"))
			if !strings.HasSuffix(line, "]") || len(fields) != 2 || fields[0] != "policy" {
				return fmt.Errorf("%s:%d: section %s: the only sections are [policy NAME]", name, n, line)
			}
			policy = fields[1]
			if _, dup := policies[policy]; dup {
				return fmt.Errorf("%s:%d: policy %q is given twice", name, n, policy)
			}
			current = map[string]string{}
			policies[policy] = current
			return nil
		}
		if current == nil {
			return nil // a top-level key: loadConfig reads those
		}
		key, val, ok := strings.Cut(line, "=")
		key, val = strings.ToLower(strings.TrimSpace(key)), strings.Trim(strings.TrimSpace(val), `"`)
		if !ok || key == "" {
			return fmt.Errorf("%s:%d: expected option = value in [policy %s], got %q", name, n, policy, line)
		}
		if _, dup := current[key]; dup {
			return fmt.Errorf("%s:%d: option %q is given twice in [policy %s]", name, n, key, policy)
		}
		current[key] = val
		return nil
	})
	if err != nil {
		return nil, err
	}
	return policies, nil
}
