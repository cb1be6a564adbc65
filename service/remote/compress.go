package remote

import (
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
)

// maxZstdWindow bounds the memory a pushed compressed stream may make the
// server use per session: the encoder here (compressing) writes 8 MiB
// windows at most, so no butterd needs more. maxZstdMemory bounds the
// decoder's memory in all.
const (
	maxZstdWindow = 8 << 20
	maxZstdMemory = 2 * maxZstdWindow
)

// compressing returns src compressed with zstd, read through a pipe that a
// goroutine fills. Closing the returned reader stops the goroutine's
// writes; a read of src that blocks is the caller's to end by closing src.
func compressing(src io.Reader) io.ReadCloser {
	pr, pw := io.Pipe()
	go func() {
		enc, err := zstd.NewWriter(pw, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithWindowSize(maxZstdWindow))
		if err == nil {
			_, err = io.Copy(enc, src)
			if cerr := enc.Close(); err == nil {
				err = cerr
			}
		}
		pw.CloseWithError(err) // nil: the reader sees io.EOF
	}()
	return pr
}

// decompressing reads a zstd stream from r. Corrupt data is a bad request.
func decompressing(r io.Reader) (*zstdReader, error) {
	dec, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(maxZstdWindow),
		zstd.WithDecoderMaxMemory(maxZstdMemory))
	if err != nil {
		return nil, err
	}
	return &zstdReader{dec: dec}, nil
}

// zstdReader tells a corrupt compressed stream from a cut one: errors of
// the link (wrapping ErrConnectivity) pass as they are, the decoder's own
// are bad requests.
type zstdReader struct {
	dec *zstd.Decoder
	err error
}

func (z *zstdReader) Read(p []byte) (int, error) {
	if z.err != nil {
		return 0, z.err
	}
	n, err := z.dec.Read(p)
	if err != nil && err != io.EOF {
		switch {
		case IsConnectivity(err):
		case errors.Is(err, zstd.ErrWindowSizeExceeded), errors.Is(err, zstd.ErrDecoderSizeExceeded):
			err = &kindError{kind: ErrBadRequest, err: err, msg: fmt.Sprintf(
				"the compressed stream needs a zstd window larger than the %d MiB this endpoint accepts: compress it with a window of at most %d MiB (butterd's own compression does), or send it uncompressed",
				maxZstdWindow>>20, maxZstdWindow>>20)}
		default:
			err = &kindError{kind: ErrBadRequest, msg: fmt.Sprintf("the compressed stream is corrupt: %v", err), err: err}
		}
		z.err = err
	}
	return n, err
}

// end reads what the decoder still holds and fails when the handler left
// stream data unread; it then frees the decoder.
func (z *zstdReader) end() error {
	defer z.dec.Close()
	n, err := io.Copy(io.Discard, z)
	switch {
	case err != nil:
		return err
	case n > 0:
		return fmt.Errorf("the receiver stopped %d bytes before the end of the stream", n)
	}
	return nil
}
