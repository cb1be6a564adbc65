package btrfs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// The send stream format, as in the kernel's fs/btrfs/send.h and
// btrfs-progs' common/send-stream.h: a stream header (magic, version), then
// commands, each a command header (len, cmd, crc) and len bytes of
// attributes (type, len, value). All integers are little-endian.
const (
	streamMagic     = "btrfs-stream\x00"
	streamHeaderLen = len(streamMagic) + 4 // magic, u32 version
	cmdHeaderLen    = 4 + 2 + 4            // u32 len, u16 cmd, u32 crc
	tlvHeaderLen    = 2 + 2                // u16 type, u16 len

	// MaxFirstCommand bounds the first command (SUBVOL or SNAPSHOT): the
	// kernel's own send buffer of protocol version 1 is 64 KiB.
	MaxFirstCommand = 64 << 10

	sendCmdSubvol   = 1 // BTRFS_SEND_C_SUBVOL: a full stream
	sendCmdSnapshot = 2 // BTRFS_SEND_C_SNAPSHOT: an incremental stream

	sendAttrUUID          = 1  // BTRFS_SEND_A_UUID
	sendAttrCTransID      = 2  // BTRFS_SEND_A_CTRANSID
	sendAttrPath          = 15 // BTRFS_SEND_A_PATH
	sendAttrCloneUUID     = 20 // BTRFS_SEND_A_CLONE_UUID
	sendAttrCloneCTransID = 21 // BTRFS_SEND_A_CLONE_CTRANSID
)

// ErrBadStream: the data is not a BTRFS send stream this package accepts
// (bad magic or version, a first command that is not SUBVOL or SNAPSHOT, a
// bad checksum, missing or malformed attributes, or truncated).
var ErrBadStream = errors.New("not a valid btrfs send stream")

// StreamHeader is what the start of a send stream says about the subvolume
// it carries.
type StreamHeader struct {
	Version uint32 // stream protocol version: 1 or 2
	// Name is the subvolume's name (the PATH attribute of the first
	// command): btrfs receive creates it under its destination directory.
	// It is not checked here beyond being present: callers validate it.
	Name string
	// UUID is the sent subvolume's UUID (its received UUID when it was
	// itself received): the received copy gets it as its received UUID.
	UUID     string
	CTransID uint64
	// ParentUUID and ParentCTransID name the parent of an incremental
	// stream (the UUID, or received UUID, of the snapshot it was sent
	// against). ParentUUID is "" for a full stream.
	ParentUUID     string
	ParentCTransID uint64
}

// Incremental reports whether the stream needs a parent on the receiving side.
func (h StreamHeader) Incremental() bool { return h.ParentUUID != "" }

// ReadStreamHeader reads the stream header and the first command of a send
// stream from r, checks them (magic, version 1 or 2, a SUBVOL or SNAPSHOT
// command of at most MaxFirstCommand bytes with a valid CRC32C, its PATH,
// UUID and CTRANSID, and for SNAPSHOT its CLONE_UUID and CLONE_CTRANSID),
// and returns what they say with a reader that yields the whole stream
// again: the bytes consumed, then the rest of r. It reads no more of r than
// the header and the first command. The reader fails (ErrBadStream) before
// passing a command that would reach another subvolume: a CLONE from other
// than the subvolume itself or the parent, or a second SUBVOL or SNAPSHOT.
//
// Errors about the data wrap ErrBadStream (a truncated header too, with
// io.ErrUnexpectedEOF); an error of r itself is returned wrapped as it is.
func ReadStreamHeader(r io.Reader) (StreamHeader, io.Reader, error) {
	var h StreamHeader
	head := make([]byte, streamHeaderLen+cmdHeaderLen)
	if err := readFull(r, head, "stream header"); err != nil {
		return h, nil, err
	}
	if string(head[:len(streamMagic)]) != streamMagic {
		return h, nil, streamErr("no %q magic at its start (found %q)", "btrfs-stream", printable(head[:len(streamMagic)]))
	}
	h.Version = binary.LittleEndian.Uint32(head[len(streamMagic):])
	if h.Version != 1 && h.Version != 2 {
		return h, nil, streamErr("protocol version %d is not supported (1 and 2 are)", h.Version)
	}
	cmd := head[streamHeaderLen:]
	size := binary.LittleEndian.Uint32(cmd[0:4])
	kind := binary.LittleEndian.Uint16(cmd[4:6])
	if kind != sendCmdSubvol && kind != sendCmdSnapshot {
		return h, nil, streamErr("first command is %d, not SUBVOL (%d) or SNAPSHOT (%d)", kind, sendCmdSubvol, sendCmdSnapshot)
	}
	if size > MaxFirstCommand {
		return h, nil, streamErr("first command is %d bytes long: at most %d are allowed", size, MaxFirstCommand)
	}
	buf := make([]byte, len(head)+int(size))
	copy(buf, head)
	if err := readFull(r, buf[len(head):], "first command"); err != nil {
		return h, nil, err
	}
	if want, got := binary.LittleEndian.Uint32(cmd[6:10]), commandCRC(buf[streamHeaderLen:]); want != got {
		return h, nil, streamErr("first command's CRC32C is %#08x, its data gives %#08x", want, got)
	}
	if err := parseFirstCommand(&h, kind, buf[len(head):]); err != nil {
		return h, nil, err
	}
	check := &streamCheck{r: r, version: h.Version, self: h.UUID, parent: h.ParentUUID}
	return h, io.MultiReader(bytes.NewReader(buf), check), nil
}

// parseFirstCommand reads the attributes of a SUBVOL or SNAPSHOT command.
func parseFirstCommand(h *StreamHeader, kind uint16, attrs []byte) error {
	seen := map[uint16]bool{}
	var uuid, cloneUUID [16]byte
	for len(attrs) > 0 {
		if len(attrs) < tlvHeaderLen {
			return streamErr("first command ends inside an attribute header")
		}
		typ := binary.LittleEndian.Uint16(attrs[0:2])
		n := int(binary.LittleEndian.Uint16(attrs[2:4]))
		if n > len(attrs)-tlvHeaderLen {
			return streamErr("attribute %d of the first command is %d bytes long: only %d are left", typ, n, len(attrs)-tlvHeaderLen)
		}
		val := attrs[tlvHeaderLen : tlvHeaderLen+n]
		attrs = attrs[tlvHeaderLen+n:]
		switch typ {
		case sendAttrPath, sendAttrUUID, sendAttrCTransID, sendAttrCloneUUID, sendAttrCloneCTransID:
		default:
			continue // not needed here; btrfs receive judges it
		}
		if seen[typ] {
			return streamErr("attribute %s appears twice in the first command", attrName(typ))
		}
		seen[typ] = true
		var err error
		switch typ {
		case sendAttrPath:
			if n == 0 {
				return streamErr("the first command's PATH is empty")
			}
			h.Name = string(val)
		case sendAttrUUID:
			err = fixedLen(typ, val, 16)
			copy(uuid[:], val)
		case sendAttrCloneUUID:
			err = fixedLen(typ, val, 16)
			copy(cloneUUID[:], val)
		case sendAttrCTransID:
			if err = fixedLen(typ, val, 8); err == nil {
				h.CTransID = binary.LittleEndian.Uint64(val)
			}
		case sendAttrCloneCTransID:
			if err = fixedLen(typ, val, 8); err == nil {
				h.ParentCTransID = binary.LittleEndian.Uint64(val)
			}
		}
		if err != nil {
			return err
		}
	}
	need := []uint16{sendAttrPath, sendAttrUUID, sendAttrCTransID}
	if kind == sendCmdSnapshot {
		need = append(need, sendAttrCloneUUID, sendAttrCloneCTransID)
	}
	for _, typ := range need {
		if !seen[typ] {
			return streamErr("the first command (%s) has no %s attribute", cmdName(kind), attrName(typ))
		}
	}
	if h.UUID = formatUUID(uuid); h.UUID == "" {
		return streamErr("the first command's UUID is all zero")
	}
	if kind == sendCmdSnapshot {
		if h.ParentUUID = formatUUID(cloneUUID); h.ParentUUID == "" {
			return streamErr("the first command's CLONE_UUID (the parent) is all zero")
		}
	} else {
		h.ParentCTransID = 0 // a full stream has no parent, whatever it says
	}
	return nil
}

// commandCRC is the CRC32C of a command (header and attributes) with its
// crc field taken as zero, as the kernel computes it: crc32c with seed 0
// and no final inversion.
func commandCRC(cmd []byte) uint32 {
	var zero [4]byte
	crc := ^uint32(0) // undo crc32.Update's own inversion of the seed 0
	crc = crc32.Update(crc, castagnoli, cmd[:6])
	crc = crc32.Update(crc, castagnoli, zero[:])
	crc = crc32.Update(crc, castagnoli, cmd[cmdHeaderLen:])
	return ^crc
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func readFull(r io.Reader, b []byte, what string) error {
	n, err := io.ReadFull(r, b)
	switch {
	case err == io.EOF && n == 0 && what == "stream header":
		return streamErr("the stream is empty")
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		return fmt.Errorf("%w: truncated in its %s (%d of %d bytes): %w", ErrBadStream, what, n, len(b), io.ErrUnexpectedEOF)
	case err != nil:
		return fmt.Errorf("read send stream: %w", err)
	}
	return nil
}

func fixedLen(typ uint16, val []byte, n int) error {
	if len(val) != n {
		return streamErr("the first command's %s is %d bytes long, not %d", attrName(typ), len(val), n)
	}
	return nil
}

func streamErr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrBadStream}, args...)...)
}

func cmdName(kind uint16) string {
	if kind == sendCmdSnapshot {
		return "SNAPSHOT"
	}
	return "SUBVOL"
}

func attrName(typ uint16) string {
	switch typ {
	case sendAttrPath:
		return "PATH"
	case sendAttrUUID:
		return "UUID"
	case sendAttrCTransID:
		return "CTRANSID"
	case sendAttrCloneUUID:
		return "CLONE_UUID"
	case sendAttrCloneCTransID:
		return "CLONE_CTRANSID"
	}
	return fmt.Sprint(typ)
}

// printable shows bytes for an error message, non-printable ones as '.'.
func printable(b []byte) string {
	out := make([]byte, len(b))
	for i, c := range b {
		if c < 0x20 || c > 0x7e {
			c = '.'
		}
		out[i] = c
	}
	return string(out)
}
