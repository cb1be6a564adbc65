package main

import (
	"context"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// testFlags is the flag set of `butterd run` (as runCommand builds it),
// parsed from args.
func testFlags(t *testing.T, args ...string) *flag.FlagSet {
	t.Helper()
	fs := flag.NewFlagSet("butterd run", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.String("config", defaultConfigFile, "")
	for _, k := range configKeys {
		fs.String(flagName(k.name), k.def, "")
	}
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parse %q: %v", args, err)
	}
	return fs
}

// writeConf writes a config file in a temp dir and returns its path.
func writeConf(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "butterd.conf")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func defaultOf(t *testing.T, key string) string {
	t.Helper()
	for _, k := range configKeys {
		if k.name == key {
			return k.def
		}
	}
	t.Fatalf("no config key %s", key)
	return ""
}

func TestConfigDefaults(t *testing.T) {
	want := map[string]string{
		"DATA_ROOT":     "/var/lib/butterd",
		"PLUGIN_SOCKET": "/run/docker/plugins/btrfs.sock",
		"UNIT_DIR":      "/etc/systemd/system",
		"SSH_PORT":      "1122",
		"SSH_ADDRESS":   "",
		"LOG_LEVEL":     "info",
		"DOCKER_HOST":   "unix:///var/run/docker.sock",
	}
	c, err := loadConfig(testFlags(t), "/dev/null", true, envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range want {
		if got, ok := c[k]; !ok || got != v {
			t.Errorf("default %s = %q (present %v), want %q", k, got, ok, v)
		}
	}
	if len(c) != len(configKeys) {
		t.Errorf("resolved %d keys, want one per config key (%d): %v", len(c), len(configKeys), c)
	}
}

// Flag, then env, then file, then default: each layer checked alone and on
// top of the ones below it, for a couple of keys.
func TestConfigPrecedence(t *testing.T) {
	conf := writeConf(t, "DATA_ROOT = /from/file\nSSH_PORT = 2001\n")
	cases := []struct {
		name string
		args []string
		env  map[string]string
		file string
		key  string
		want string
	}{
		{"default", nil, nil, "/dev/null", "DATA_ROOT", "/var/lib/butterd"},
		{"file over default", nil, nil, conf, "DATA_ROOT", "/from/file"},
		{"env over file", nil, map[string]string{"BUTTERD_DATA_ROOT": "/from/env"}, conf, "DATA_ROOT", "/from/env"},
		{"env over default", nil, map[string]string{"BUTTERD_DATA_ROOT": "/from/env"}, "/dev/null", "DATA_ROOT", "/from/env"},
		{"flag over env and file", []string{"--data-root=/from/flag"}, map[string]string{"BUTTERD_DATA_ROOT": "/from/env"}, conf, "DATA_ROOT", "/from/flag"},
		{"flag over file", []string{"--data-root", "/from/flag"}, nil, conf, "DATA_ROOT", "/from/flag"},
		{"empty env is unset", nil, map[string]string{"BUTTERD_DATA_ROOT": ""}, conf, "DATA_ROOT", "/from/file"},
		{"other key: file", nil, nil, conf, "SSH_PORT", "2001"},
		{"other key: env", nil, map[string]string{"BUTTERD_SSH_PORT": "3001"}, conf, "SSH_PORT", "3001"},
		{"other key: flag", []string{"--ssh-port=4001"}, map[string]string{"BUTTERD_SSH_PORT": "3001"}, conf, "SSH_PORT", "4001"},
		// A flag given with the default's own value still wins.
		{"flag equal to default", []string{"--log-level=info"}, map[string]string{"BUTTERD_LOG_LEVEL": "debug"}, "/dev/null", "LOG_LEVEL", "info"},
		{"env of another key", nil, map[string]string{"BUTTERD_SSH_PORT": "3001"}, conf, "DATA_ROOT", "/from/file"},
		{"unprefixed env ignored", nil, map[string]string{"DATA_ROOT": "/nope", "LOG_LEVEL": "debug"}, "/dev/null", "DATA_ROOT", "/var/lib/butterd"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := loadConfig(testFlags(t, c.args...), c.file, true, envOf(c.env))
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg[c.key]; got != c.want {
				t.Fatalf("%s = %q, want %q (args %q, env %v, file %s)", c.key, got, c.want, c.args, c.env, c.file)
			}
		})
	}
}

func TestConfigFileParsing(t *testing.T) {
	conf := writeConf(t, `# butterd configuration
; another comment style

   DATA_ROOT   =   "/srv/butter root"
	LOG_LEVEL=debug
SSH_ADDRESS =
  # indented comment
DOCKER_HOST = unix:///run/docker.sock

[policy nightly]
snapshot = 1d
purge = 1d:4w:1y
DATA_ROOT = /from/policy/section

[policy other]
anything goes here = yes
`)
	cfg, err := loadConfig(testFlags(t), conf, true, envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"DATA_ROOT":   "/srv/butter root", // quotes dropped, inner space kept, section line ignored
		"LOG_LEVEL":   "debug",
		"SSH_ADDRESS": "",
		"DOCKER_HOST": "unix:///run/docker.sock",
		"SSH_PORT":    defaultOf(t, "SSH_PORT"),
		"UNIT_DIR":    defaultOf(t, "UNIT_DIR"),
	}
	for k, v := range want {
		if cfg[k] != v {
			t.Errorf("%s = %q, want %q", k, cfg[k], v)
		}
	}
}

func TestConfigFileErrors(t *testing.T) {
	cases := []struct {
		name, content string
		want          []string
	}{
		{"unknown key", "DATA_ROOT = /x\n\nDATAROOT = /y\n", append([]string{":3:", `unknown key "DATAROOT"`}, keyNames()...)},
		{"no equals", "# comment\nDATA_ROOT /x\n", []string{":2:", "KEY = value", "DATA_ROOT /x"}},
		{"empty key", "LOG_LEVEL = info\n = value\n", []string{":2:", "KEY = value"}},
		{"unknown key before a section", "SNAPSHOT = 1h\n[policy p]\nsnapshot = 1h\n", []string{":1:", `unknown key "SNAPSHOT"`, "DATA_ROOT"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			conf := writeConf(t, c.content)
			_, err := loadConfig(testFlags(t), conf, true, envOf(nil))
			if err == nil {
				t.Fatalf("config %q accepted", c.content)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, conf+":") {
				t.Errorf("error %q does not start with the file name %s:", msg, conf)
			}
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not mention %q", msg, w)
				}
			}
		})
	}
	// A flag for the same key does not hide a broken file.
	conf := writeConf(t, "BOGUS = 1\n")
	if _, err := loadConfig(testFlags(t, "--data-root=/x"), conf, true, envOf(nil)); err == nil {
		t.Fatal("a file with an unknown key was accepted because a flag was set")
	}
}

func TestConfigMissingFile(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope", "butterd.conf")
	// The default file may be absent: defaults (and env, flags) apply.
	cfg, err := loadConfig(testFlags(t, "--ssh-port=9"), missing, false, envOf(map[string]string{"BUTTERD_LOG_LEVEL": "warn"}))
	if err != nil {
		t.Fatalf("missing default config file: %v", err)
	}
	if cfg["DATA_ROOT"] != "/var/lib/butterd" || cfg["SSH_PORT"] != "9" || cfg["LOG_LEVEL"] != "warn" {
		t.Fatalf("config without a file: %v", cfg)
	}
	// A file named explicitly must exist.
	if _, err := loadConfig(testFlags(t), missing, true, envOf(nil)); err == nil || !strings.Contains(err.Error(), missing) {
		t.Fatalf("missing explicit config file: err = %v, want an error naming %s", err, missing)
	}
	// A default file that exists but cannot be read is an error too.
	dir := t.TempDir() // a directory: open works, reading fails
	if _, err := loadConfig(testFlags(t), dir, false, envOf(nil)); err == nil {
		t.Fatal("unreadable default config file accepted")
	}
}

// runCommand notices an explicit --config and refuses a missing one before
// touching anything.
func TestRunCommandConfigErrors(t *testing.T) {
	for _, k := range configKeys {
		t.Setenv("BUTTERD_"+k.name, "") // empty means unset
	}
	missing := filepath.Join(t.TempDir(), "missing.conf")
	root := filepath.Join(t.TempDir(), "root")
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"missing explicit config", []string{"--config=" + missing, "--data-root=" + root}, missing},
		{"missing explicit config, two args", []string{"--config", missing, "--data-root=" + root}, missing},
		{"unknown key in file", []string{"--config=" + writeConf(t, "POOLSIZE = 1G\n"), "--data-root=" + root}, `unknown key "POOLSIZE"`},
		{"bad log level", []string{"--config=/dev/null", "--log-level=loud", "--data-root=" + root}, "LOG_LEVEL"},
		{"stray argument", []string{"--config=/dev/null", "--data-root=" + root, "extra"}, `unexpected argument "extra"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := runCommand(context.Background(), c.args)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("runCommand %q: err = %v, want one containing %q", c.args, err, c.want)
			}
			if _, err := os.Stat(root); err == nil {
				t.Fatalf("runCommand %q created the data root %s before failing", c.args, root)
			}
		})
	}
	if err := runCommand(context.Background(), []string{"--no-such-flag"}); err == nil {
		t.Fatal("unknown flag accepted")
	}
}
