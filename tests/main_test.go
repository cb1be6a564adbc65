package tests

import (
	"fmt"
	"os"
	"testing"
)

// TestMain lets the test binary act as a crashing butterd: with
// BUTTERD_CRASH_ROOT set it runs one operation and kills itself at the
// named step (see crash_test.go); with BUTTERD_ACCESS_CHILD set it is a
// client running as another user (see access_test.go).
func TestMain(m *testing.M) {
	if req := os.Getenv("BUTTERD_ACCESS_CHILD"); req != "" {
		os.Exit(accessChild(req))
	}
	if os.Getenv("BUTTERD_CRASH_ROOT") != "" {
		err := crashChild(os.Getenv("BUTTERD_CRASH_ROOT"), os.Getenv("BUTTERD_CRASH_OP"), os.Getenv("BUTTERD_CRASH_STEP"))
		fmt.Fprintf(os.Stderr, "step %q not reached: %v\n", os.Getenv("BUTTERD_CRASH_STEP"), err)
		os.Exit(3)
	}
	os.Exit(m.Run())
}
