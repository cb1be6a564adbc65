package service

import (
	"bufio"
	"bytes"
	"io"

	"github.com/klauspost/compress/zstd"
)

// zstdMagic starts every zstd frame (RFC 8878).
var zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}

// maxZstdWindow bounds the memory a compressed stream file may make butterd
// use (zstd's own default limit for a decoder is 8 MiB per frame window;
// zstd -19 --long=26 writes 64 MiB windows).
const maxZstdWindow = 64 << 20

// zstdStream decompresses an import stream and remembers the decoder's
// first error, which is the cause of a failure even when btrfs receive,
// seeing its input end early, reports it first.
type zstdStream struct {
	dec *zstd.Decoder
	err error
}

// decompressed returns r itself, or, when r starts with zstd's magic, a
// reader of its decompressed content (z non-nil, to be closed).
func decompressed(r io.Reader) (io.Reader, *zstdStream, error) {
	br := bufio.NewReaderSize(r, streamPipeSize)
	head, err := br.Peek(len(zstdMagic))
	if err != nil && err != io.EOF {
		return nil, nil, err
	}
	if !bytes.Equal(head, zstdMagic) {
		return br, nil, nil
	}
	dec, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(maxZstdWindow),
		zstd.WithDecoderMaxMemory(4*maxZstdWindow))
	if err != nil {
		return nil, nil, err
	}
	z := &zstdStream{dec: dec}
	return z, z, nil
}

func (z *zstdStream) Read(p []byte) (int, error) {
	if z.err != nil {
		return 0, z.err
	}
	n, err := z.dec.Read(p)
	if err != nil && err != io.EOF {
		z.err = errorf(ErrInvalidArg, "import refused: the zstd-compressed stream is corrupt: %v", err)
		return n, z.err
	}
	return n, err
}

// failed is the decoder's error, if any; nil for a plain stream.
func (z *zstdStream) failed() error {
	if z == nil {
		return nil
	}
	return z.err
}

// finish reads the rest of the compressed stream (past the end of the send
// stream, which btrfs receive stops at) so that its checksums are checked.
func (z *zstdStream) finish() error {
	if z == nil {
		return nil
	}
	_, err := io.Copy(io.Discard, z)
	return err
}

func (z *zstdStream) close() {
	if z != nil {
		z.dec.Close()
	}
}
