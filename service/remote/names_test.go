package remote_test

import (
	"strings"
	"testing"

	"butterd/service"
	"butterd/service/remote"
)

// The name rules here and in service must agree.
func TestNamesAgreeWithService(t *testing.T) {
	names := []string{"", "a", "ab", "v1", "A_b.c-d", "_x", "-x", ".x", "x.", "a..b", "a/b", "a@b", "a b", "é1",
		strings.Repeat("a", 96), strings.Repeat("a", 97), "9", "99", "a\x00b", "a\nb"}
	for _, n := range names {
		if got, want := remote.ValidateNameForTest("volume", n) == nil, service.ValidateName(n) == nil; got != want {
			t.Errorf("name %q: valid here %v, in service %v", n, got, want)
		}
	}
	for _, n := range []string{"v1@2024-05-01T10:00:00.000000", "v1@x@hostb", "v1@", "v1@a/b", "v1@..", "v1@a..b", "v1@a b", "v1@" + strings.Repeat("x", 252), "v1@" + strings.Repeat("x", 253)} {
		if got, want := remote.ValidateSnapshotNameForTest("v1", n) == nil, service.ValidateSnapshotName(n) == nil; got != want {
			t.Errorf("snapshot name %q: valid here %v, in service %v", n, got, want)
		}
	}
}
