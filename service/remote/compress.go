package remote

import (
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
)

// maxZstdWindow bounds the memory a compressed stream may make the server
// use: the encoder here writes 8 MiB windows at most.
const maxZstdWindow = 64 << 20

// compressing returns src compressed with zstd, read through a pipe that a
// goroutine fills. Closing the returned reader stops the goroutine's
// writes; a read of src that blocks is the caller's to end by closing src.
func compressing(src io.Reader) io.ReadCloser {
	pr, pw := io.Pipe()
	go func() {
		enc, err := zstd.NewWriter(pw, zstd.WithEncoderLevel(zstd.SpeedDefault))
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
		zstd.WithDecoderMaxMemory(4*maxZstdWindow))
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
		if !IsConnectivity(err) {
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
