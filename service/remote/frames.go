package remote

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Streams are framed (see the package documentation): a 4-byte big-endian
// length and that many bytes, 1 to MaxFrame, and a frame of length 0 at the
// end. An end of the channel before the end frame is a cut stream, never a
// complete one.
const (
	MaxFrame  = 1 << 20
	frameHead = 4
	chunk     = 256 << 10 // what a sender puts in one frame
)

var errCut = errors.New("the stream was cut before its end")

// copyFramed copies src into dst as frames and writes the end frame when
// src ends. It reports the payload bytes copied; a failing read of src is
// returned as readErr, a failing write as writeErr.
func copyFramed(dst io.Writer, src io.Reader) (n int64, readErr, writeErr error) {
	buf := make([]byte, frameHead+chunk)
	for {
		m, err := src.Read(buf[frameHead:])
		if m > 0 {
			binary.BigEndian.PutUint32(buf, uint32(m))
			if _, werr := dst.Write(buf[:frameHead+m]); werr != nil {
				return n, nil, werr
			}
			n += int64(m)
		}
		if err == io.EOF {
			return n, nil, writeEnd(dst)
		}
		if err != nil {
			return n, err, nil
		}
	}
}

func writeEnd(dst io.Writer) error {
	_, err := dst.Write(make([]byte, frameHead))
	return err
}

// frameWriter writes each Write as frames.
type frameWriter struct {
	w   io.Writer
	buf []byte
	n   int64
}

func (fw *frameWriter) Write(p []byte) (int, error) {
	done := 0
	for len(p) > 0 {
		m := min(len(p), chunk)
		if cap(fw.buf) < frameHead+m {
			fw.buf = make([]byte, frameHead+chunk)
		}
		b := fw.buf[:frameHead+m]
		binary.BigEndian.PutUint32(b, uint32(m))
		copy(b[frameHead:], p[:m])
		if _, err := fw.w.Write(b); err != nil {
			return done, err
		}
		done += m
		fw.n += int64(m)
		p = p[m:]
	}
	return done, nil
}

// frameReader reads the payload of frames. After the end frame it returns
// io.EOF; an end of r before it returns an error wrapping errCut and
// io.ErrUnexpectedEOF.
type frameReader struct {
	r    io.Reader
	left int // payload bytes left in the current frame
	done bool
	err  error
	n    int64
}

func (fr *frameReader) Read(p []byte) (int, error) {
	if fr.err != nil {
		return 0, fr.err
	}
	if fr.done {
		return 0, io.EOF
	}
	if fr.left == 0 {
		var head [frameHead]byte
		if _, err := io.ReadFull(fr.r, head[:]); err != nil {
			return 0, fr.fail(err)
		}
		size := binary.BigEndian.Uint32(head[:])
		if size == 0 {
			fr.done = true
			return 0, io.EOF
		}
		if size > MaxFrame {
			fr.err = errorf(ErrBadRequest, "stream frame of %d bytes: at most %d are allowed", size, MaxFrame)
			return 0, fr.err
		}
		fr.left = int(size)
	}
	if len(p) > fr.left {
		p = p[:fr.left]
	}
	n, err := fr.r.Read(p)
	fr.left -= n
	fr.n += int64(n)
	if err != nil && (err != io.EOF || fr.left > 0) {
		return n, fr.fail(err)
	}
	return n, nil
}

func (fr *frameReader) fail(err error) error {
	if errors.Is(err, errIdle) { // says all there is to say
		fr.err = err
		return err
	}
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		err = io.ErrUnexpectedEOF
	}
	fr.err = connError(fmt.Errorf("%w: %w", errCut, err), "%v: %v", errCut, err)
	return fr.err
}
