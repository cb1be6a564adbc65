package units

import (
	"os"
	"os/exec"
	"testing"
)

// needTool finds a program the test runs. In CI (CI=true) a missing one
// fails the test; elsewhere the test is skipped and says why.
func needTool(t *testing.T, name, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is missing (Debian package %s): CI must run this test", name, pkg)
	}
	t.Skipf("%s not found (Debian package %s): skipping", name, pkg)
	return ""
}
