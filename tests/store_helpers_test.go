package tests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"butterd/service"
	"butterd/tests/testenv"
)

// openStore opens a store on a data root inside a fresh BTRFS.
func openStore(t *testing.T) (*service.Store, string) {
	t.Helper()
	root := filepath.Join(testenv.Btrfs(t), "data root")
	return openStoreAt(t, root, service.Config{}), root
}

func openStoreAt(t *testing.T, root string, cfg service.Config) *service.Store {
	t.Helper()
	cfg.Root = root
	if cfg.BootID == "" {
		cfg.BootID = "boot-1"
	}
	s, err := service.Open(cfg)
	if err != nil {
		t.Fatalf("open store at %q: %v", root, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// leftovers lists butterd's temporaries and journal entries under a data root.
func leftovers(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	for _, dir := range []string{"volumes", "snapshots", "state/journal"} {
		entries, err := os.ReadDir(filepath.Join(root, dir))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if dir == "state/journal" || strings.HasPrefix(e.Name(), ".") {
				out = append(out, dir+"/"+e.Name())
			}
		}
	}
	return out
}

func snapshotNames(t *testing.T, s *service.Store, vol string) []string {
	t.Helper()
	snaps, err := s.ListSnapshots(vol)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, sn := range snaps {
		names = append(names, sn.Name)
	}
	return names
}
