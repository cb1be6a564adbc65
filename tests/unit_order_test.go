package tests

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"butterd/tests/testenv"
)

// Docker must never see a missing plugin at boot, and boot must never
// deadlock: every packaged unit that the plugin depends on is ordered
// before docker.service, and none waits for Docker.
func TestUnitsOrderedBeforeDocker(t *testing.T) {
	dir := filepath.Join(testenv.ModuleRoot(t), "packaging", "systemd")
	for _, unit := range []string{"butterd.socket", "butterd.service", "butterd-pool.service"} {
		data, err := os.ReadFile(filepath.Join(dir, unit))
		if err != nil {
			t.Fatal(err)
		}
		before := false
		for _, line := range strings.Split(string(data), "\n") {
			key, value, ok := strings.Cut(strings.TrimSpace(line), "=")
			if !ok {
				continue
			}
			names := strings.Fields(value)
			switch key {
			case "Before":
				before = before || slices.Contains(names, "docker.service")
			case "After", "Requires", "Wants", "BindsTo", "Requisite", "PartOf":
				for _, n := range names {
					if strings.HasPrefix(n, "docker.") || strings.HasPrefix(n, "containerd.") {
						t.Errorf("%s: %s=%s: butterd must not wait for Docker (Docker waits for the plugin)", unit, key, value)
					}
				}
			}
		}
		if !before {
			t.Errorf("%s has no Before=docker.service: Docker could start before the plugin is there", unit)
		}
	}
}
