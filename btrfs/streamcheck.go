package btrfs

import (
	"encoding/binary"
	"io"
)

const (
	sendCmdClone = 16 // BTRFS_SEND_C_CLONE
	sendCmdEnd   = 21 // BTRFS_SEND_C_END
	sendAttrData = 19 // BTRFS_SEND_A_DATA: in version 2, the rest of its command
)

// streamCheck passes the commands after a stream's first one, and fails at
// the first that would reach another subvolume: btrfs receive finds a
// CLONE's source by UUID anywhere on the filesystem, chroot or not, and a
// second SUBVOL or SNAPSHOT would start another subvolume. A CLONE may take
// data only from the received subvolume itself or from the stream's
// parent. Such a command is read whole and checked before any byte of it
// passes; the others pass as they come. After END the rest passes as it
// is (btrfs receive -e stops there).
type streamCheck struct {
	r             io.Reader
	version       uint32
	self, parent  string // UUIDs a CLONE may name; parent "" for a full stream
	pending       []byte // checked bytes not yet read
	left          int64  // bytes of the current command's attributes still to pass
	passRest, bad bool
	err           error
}

func (c *streamCheck) Read(p []byte) (int, error) {
	if len(c.pending) == 0 && c.left == 0 && !c.passRest {
		if c.err == nil {
			c.err = c.next()
		}
		if c.err != nil {
			return 0, c.err
		}
	}
	n, err := c.pass(p)
	// With a buffered reader, go on with the commands already buffered
	// (each checked as above), so that one Read passes many: never
	// waiting for more input once some is passed.
	buf, ok := c.r.(bufferedReader)
	for ok && err == nil && n < len(p) && !c.passRest && buf.Buffered() > 0 {
		if len(c.pending) == 0 && c.left == 0 {
			if !c.nextBuffered(buf) {
				break
			}
			if c.err = c.next(); c.err != nil {
				break
			}
		}
		var m int
		m, err = c.pass(p[n:])
		n += m
	}
	return n, err
}

// bufferedReader is a reader that says how much it holds (a bufio.Reader).
type bufferedReader interface {
	io.Reader
	Buffered() int
	Peek(n int) ([]byte, error)
}

// nextBuffered says whether next can read the next command's header (and
// a CLONE whole) from what buf holds, without waiting for input.
func (c *streamCheck) nextBuffered(buf bufferedReader) bool {
	if buf.Buffered() < cmdHeaderLen {
		return false
	}
	hdr, err := buf.Peek(cmdHeaderLen)
	if err != nil {
		return false
	}
	if binary.LittleEndian.Uint16(hdr[4:6]) != sendCmdClone {
		return true
	}
	size := int64(binary.LittleEndian.Uint32(hdr[0:4]))
	return int64(buf.Buffered()) >= cmdHeaderLen+size
}

// pass passes checked bytes, or bytes of the current command, into p.
func (c *streamCheck) pass(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	if !c.passRest && int64(len(p)) > c.left {
		p = p[:c.left]
	}
	if buf, ok := c.r.(bufferedReader); ok && !c.passRest {
		// Not more than is buffered: a Read of more might wait.
		if b := buf.Buffered(); b > 0 && len(p) > b {
			p = p[:b]
		}
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}

// next reads the next command's header, and a CLONE whole.
func (c *streamCheck) next() error {
	hdr := make([]byte, cmdHeaderLen)
	if n, err := io.ReadFull(c.r, hdr); err != nil {
		// The end, or a truncated stream: btrfs receive judges it.
		c.pending, c.passRest = hdr[:n], true
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil
		}
		return err
	}
	size := binary.LittleEndian.Uint32(hdr[0:4])
	switch kind := binary.LittleEndian.Uint16(hdr[4:6]); kind {
	case sendCmdSubvol, sendCmdSnapshot:
		return streamErr("a second %s command: a stream may carry one subvolume only", cmdName(kind))
	case sendCmdEnd:
		c.pending, c.passRest = hdr, true
		return nil
	case sendCmdClone:
		if size > MaxFirstCommand {
			return streamErr("a CLONE command is %d bytes long: at most %d are allowed", size, MaxFirstCommand)
		}
		cmd := make([]byte, cmdHeaderLen+int(size))
		copy(cmd, hdr)
		if err := readFull(c.r, cmd[cmdHeaderLen:], "CLONE command"); err != nil {
			return err
		}
		if err := c.checkClone(cmd[cmdHeaderLen:]); err != nil {
			return err
		}
		c.pending = cmd
		return nil
	}
	c.pending, c.left = hdr, int64(size)
	return nil
}

// checkClone refuses a CLONE whose source (every CLONE_UUID attribute, as
// btrfs receive keeps the last) is neither the received subvolume nor the
// parent.
func (c *streamCheck) checkClone(attrs []byte) error {
	for len(attrs) >= tlvHeaderLen {
		typ := binary.LittleEndian.Uint16(attrs[0:2])
		if c.version >= 2 && typ == sendAttrData {
			return nil
		}
		n := int(binary.LittleEndian.Uint16(attrs[2:4]))
		if n > len(attrs)-tlvHeaderLen {
			return streamErr("attribute %d of a CLONE command is %d bytes long: only %d are left", typ, n, len(attrs)-tlvHeaderLen)
		}
		val := attrs[tlvHeaderLen : tlvHeaderLen+n]
		attrs = attrs[tlvHeaderLen+n:]
		if typ != sendAttrCloneUUID {
			continue
		}
		if len(val) != 16 {
			return streamErr("a CLONE command's CLONE_UUID is %d bytes long, not 16", len(val))
		}
		var u [16]byte
		copy(u[:], val)
		if src := formatUUID(u); src == "" || src != c.self && src != c.parent {
			return streamErr("a CLONE command takes data from subvolume %q, which is neither the received subvolume nor its parent: streams may only clone from those", src)
		}
	}
	return nil
}
