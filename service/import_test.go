package service

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// blockingPipe is a pipe in blocking mode, as a descriptor received over
// D-Bus may be: os.File cannot interrupt a read on it by closing it.
func blockingPipe(t *testing.T) (*os.File, *os.File) {
	t.Helper()
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	r, w := os.NewFile(uintptr(p[0]), "r"), os.NewFile(uintptr(p[1]), "w")
	t.Cleanup(func() { r.Close(); w.Close() })
	return r, w
}

func TestImportRefusesWhatIsNotAStream(t *testing.T) {
	s := jobStore(t, t.TempDir())
	r, w := blockingPipe(t)
	go func() {
		w.Write([]byte("this is no btrfs send stream, not at all"))
		w.Close()
	}()
	j, err := s.ImportSnapshot(r)
	if err != nil {
		t.Fatal(err)
	}
	j = waitState(t, s, j.ID, JobFailed)
	if !strings.Contains(j.Error, "not a valid btrfs send stream") || j.Kind != "import" || j.BytesDone == 0 {
		t.Fatalf("job %+v", j)
	}
}

func TestImportCancelWhileTheHeaderStalls(t *testing.T) {
	s := jobStore(t, t.TempDir())
	r, w := blockingPipe(t)
	if _, err := w.Write([]byte("btrfs-str")); err != nil {
		t.Fatal(err)
	}
	j, err := s.ImportSnapshot(r)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		cur, _ := s.GetJob(j.ID)
		if cur.BytesDone == 9 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %+v did not read what was written", cur)
		}
		time.Sleep(time.Millisecond)
	}
	if err := s.CancelJob(j.ID); err != nil {
		t.Fatal(err)
	}
	waitState(t, s, j.ID, JobCanceled)
}

func TestResolveImportLeavesWhatItDoesNotOwn(t *testing.T) {
	root := t.TempDir()
	s := &Store{receivedDir: filepath.Join(root, "received"), snapshotsDir: filepath.Join(root, "snapshots"), stateDir: filepath.Join(root, "state")}
	keep := filepath.Join(root, "keep")
	if err := os.WriteFile(keep, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, in := range []*intent{
		{ID: "..", Op: opImport, Volume: "app", Source: "app@2024-01-02T03:04:05.000000"},
		{ID: "x", Op: opImport, Volume: "app", Source: "app@2024-01-02T03:04:05.000000"},
		{ID: "7", Op: opImport, Volume: "app", Source: "../keep"},
	} {
		if _, err := s.resolveImport(in); err == nil {
			t.Errorf("intent %+v resolved", in)
		}
	}
	if _, err := os.Stat(keep); err != nil {
		t.Fatal(err)
	}
}
