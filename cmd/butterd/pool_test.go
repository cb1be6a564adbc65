package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"butterd/service"
)

// butterd run --mount-pool=false (butterd.service) refuses a data root
// that is not on BTRFS, says what to do, and makes nothing there.
func TestRequirePoolRefusesPlainDirectory(t *testing.T) {
	// /dev/shm is a tmpfs.
	dir, err := os.MkdirTemp("/dev/shm", "butterd-pool-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	root := filepath.Join(dir, "data")
	if ok, err := service.OnBtrfs(dir); err != nil || ok {
		t.Fatalf("OnBtrfs(%s) = %v, %v: want false for a tmpfs", dir, ok, err)
	}
	for _, dir := range []string{root, filepath.Dir(root)} { // missing, then plain
		err := requirePool(dir)
		if err == nil || !strings.Contains(err.Error(), "is not on BTRFS") || !strings.Contains(err.Error(), `run "butterd pool" first`) {
			t.Errorf("requirePool(%s) = %v, want a refusal naming butterd pool", dir, err)
		}
	}
	if _, err := os.Stat(root); !os.IsNotExist(err) {
		t.Errorf("requirePool made %s: %v", root, err)
	}
}
