package tests

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"butterd/btrfs"
	"butterd/tests/testenv"
)

// TestBtrfsSendUnderSignals sends a snapshot into a pipe read slowly
// while signals keep arriving at butterd's process, as they do (a child
// exiting, the Go runtime's own): the stream must come out whole and equal
// to one sent in peace. A signal caught while the send ioctl waits on a
// full pipe makes it fail with ERESTARTSYS, and the kernel restarts it from
// the beginning: the reader would get the stream's start twice.
func TestBtrfsSendUnderSignals(t *testing.T) {
	mnt := testenv.BtrfsSize(t, "512M")
	vol := filepath.Join(mnt, "vol")
	mustCreate(t, vol)
	buf := make([]byte, 1<<20)
	rng := rand.NewChaCha8([32]byte{7})
	for i := range 32 {
		rng.Read(buf)
		if err := os.WriteFile(filepath.Join(vol, fmt.Sprintf("f%02d", i)), buf, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	snap := filepath.Join(mnt, "vol@ro")
	if err := btrfs.Snapshot(vol, snap, true); err != nil {
		t.Fatal(err)
	}

	want, err := sendHash(snap, 0)
	if err != nil {
		t.Fatalf("send without signals: %v", err)
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			syscall.Kill(os.Getpid(), syscall.SIGURG)
			syscall.Kill(os.Getpid(), syscall.SIGCHLD)
			time.Sleep(20 * time.Microsecond)
		}
	}()
	defer func() { close(stop); wg.Wait() }()
	for round := range 3 {
		got, err := sendHash(snap, 50*time.Microsecond)
		if err != nil {
			t.Fatalf("round %d: send under signals: %v", round, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("round %d: the stream sent under signals differs from the one sent without (sha256 %x, want %x)", round, got, want)
		}
	}
}

// sendHash sends snap into a pipe whose reader pauses after each 64 KiB
// read, and returns the stream's SHA-256. A send that restarts over and
// over never ends: after a minute the reader gives up, which ends it.
func sendHash(snap string, pause time.Duration) ([]byte, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	giveUp := time.AfterFunc(time.Minute, func() { r.Close() })
	defer giveUp.Stop()
	sent := make(chan error, 1)
	go func() {
		err := btrfs.Send(snap, "", w)
		w.Close()
		sent <- err
	}()
	h := sha256.New()
	p := make([]byte, 64<<10)
	var readErr error
	for {
		n, err := r.Read(p)
		h.Write(p[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			readErr = err
			break
		}
		if pause > 0 {
			time.Sleep(pause)
		}
	}
	r.Close()
	if err := <-sent; err != nil {
		return nil, err
	}
	return h.Sum(nil), readErr
}
