package remote

import (
	"bytes"
	"context"
	"testing"
	"time"
)

// The pacer holds writes back so that the bytes written never run ahead of
// the rate by more than one piece: with a fake clock that advances only
// when the pacer sleeps, 100 KiB at 10 KiB/s take 9.9 s of sleeping (the
// first piece goes at once), written in pieces of a tenth of a second.
func TestPacer(t *testing.T) {
	var clock time.Time
	var slept time.Duration
	var out bytes.Buffer
	var writes int
	w := writerFunc(func(b []byte) (int, error) {
		writes++
		if len(b) > 1024 {
			t.Fatalf("a piece of %d bytes: want at most 1 KiB (a tenth of the rate)", len(b))
		}
		return out.Write(b)
	})
	p := newPacer(context.Background(), w, 10<<10)
	p.now = func() time.Time { return clock }
	p.sleep = func(_ context.Context, d time.Duration) error {
		slept += d
		clock = clock.Add(d)
		return nil
	}
	data := bytes.Repeat([]byte("x"), 100<<10)
	if n, err := p.Write(data[:30<<10]); n != 30<<10 || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if n, err := p.Write(data[30<<10:]); n != 70<<10 || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if out.Len() != len(data) || writes != 100 {
		t.Errorf("wrote %d bytes in %d writes, want %d in 100", out.Len(), writes, len(data))
	}
	if want := 9900 * time.Millisecond; slept < want-time.Millisecond || slept > want+time.Millisecond {
		t.Errorf("slept %v in all, want %v", slept, want)
	}

	// Canceling ends a wait with the context's error.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	p = newPacer(ctx, w, 1024)
	p.Write(make([]byte, 512))
	if _, err := p.Write(make([]byte, 1024)); err != context.Canceled {
		t.Errorf("Write after cancel = %v, want context.Canceled", err)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }
