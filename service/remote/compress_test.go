package remote

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// A push asked to compress arrives unchanged at the handler, and far
// fewer bytes cross the link when the stream compresses well.
func TestPushCompressed(t *testing.T) {
	var wire atomic.Int64
	e := newTestEnv(t, func(e *testEnv) {
		e.wrap = func(c net.Conn) net.Conn { return &countingConn{Conn: c, n: &wire} }
	})
	c := e.dial(t)
	const size = 16 << 20
	data := bytes.Repeat([]byte("butterd replication stream "), size/27+1)[:size]
	res, err := c.Push(context.Background(), ReceiveRequest{Volume: "v1", Name: snap1, Compression: CompressZstd}, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.handler.waitReceived(t); err != nil {
		t.Fatalf("the handler's Receive failed: %v", err)
	}
	e.handler.mu.Lock()
	got := e.handler.sums[snap1]
	e.handler.mu.Unlock()
	if want := sha256.Sum256(data); got != want || res.Bytes != size {
		t.Errorf("the handler read %d bytes with sha256 %x; want the %d bytes sent, %x", res.Bytes, got, size, want)
	}
	if n := wire.Load(); n > size/20 {
		t.Errorf("%d bytes crossed the link for a compressed %d-byte stream: want far fewer", n, size)
	}
}

// A compressed stream that is not zstd is refused as a bad request; one
// with data after the handler's end fails.
func TestDecompressingRefusesCorruptStreams(t *testing.T) {
	z, err := decompressing(strings.NewReader("this is not a zstd stream at all"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(z)
	if !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), "compressed stream is corrupt") {
		t.Errorf("reading garbage = %v, want a bad request", err)
	}
	z.end()

	var buf bytes.Buffer
	io.Copy(&buf, compressing(strings.NewReader("0123456789")))
	z, err = decompressing(&buf)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadFull(z, make([]byte, 4))
	if err := z.end(); err == nil || !strings.Contains(err.Error(), "stopped 6 bytes before the end") {
		t.Errorf("end after reading 4 of 10 bytes = %v", err)
	}
}

type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// A pushed stream compressed with a window larger than butterd's own
// encoder writes is refused before the decoder takes that memory.
func TestDecompressingRefusesLargeWindows(t *testing.T) {
	var buf bytes.Buffer
	enc, err := zstd.NewWriter(&buf, zstd.WithWindowSize(32<<20))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(enc, io.LimitReader(newPattern(2), 1<<20))
	enc.Close()
	z, err := decompressing(&buf)
	if err != nil {
		t.Fatal(err)
	}
	defer z.end()
	_, err = io.ReadAll(z)
	if !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), "needs a zstd window larger than the 8 MiB this endpoint accepts") {
		t.Errorf("reading a stream with a 32 MiB window = %v: want a bad request saying the window is too large", err)
	}

	// butterd's own compression stays within the bound.
	buf.Reset()
	io.Copy(&buf, compressing(io.LimitReader(newPattern(2), 32<<20)))
	if z, err = decompressing(&buf); err != nil {
		t.Fatal(err)
	}
	if n, err := io.Copy(io.Discard, z); err != nil || n != 32<<20 {
		t.Errorf("reading butterd's own compressed stream: %d bytes, %v", n, err)
	}
}
