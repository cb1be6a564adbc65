package units

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// The packaged butterd-schedules.target is the one butterd renders, so a
// package and a running butterd never disagree about it.
func TestPackagedTarget(t *testing.T) {
	path := filepath.Join("..", "packaging", "systemd", TargetName)
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := RenderTarget(); !bytes.Equal(got, want) {
		t.Errorf("%s differs from RenderTarget(); rewrite it with:\n  go run ./packaging/gen target >%s\ngot:\n%s\nwant:\n%s", path, path, got, want)
	}
}
