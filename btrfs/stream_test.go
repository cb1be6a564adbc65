package btrfs

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The fixtures in testdata/ are real streams made by `btrfs send` and their
// headers as the sending side saw them (tests/import_test.go,
// TestStreamFixtures, writes them with BUTTERD_UPDATE_STREAM_FIXTURES=1).

func fixtures(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob("testdata/*.stream")
	if err != nil || len(files) == 0 {
		t.Fatalf("no stream fixtures in testdata: %v", err)
	}
	return files
}

func readFixture(t testing.TB, path string) ([]byte, StreamHeader) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	golden, err := os.ReadFile(strings.TrimSuffix(path, ".stream") + ".json")
	if err != nil {
		t.Fatal(err)
	}
	var want StreamHeader
	if err := json.Unmarshal(golden, &want); err != nil {
		t.Fatal(err)
	}
	return data, want
}

// countReader counts what is read through it.
type countReader struct {
	r io.Reader
	n int
}

func (c *countReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += n
	return n, err
}

func TestReadStreamHeaderFixtures(t *testing.T) {
	kinds := map[string]bool{}
	for _, path := range fixtures(t) {
		t.Run(filepath.Base(path), func(t *testing.T) {
			data, want := readFixture(t, path)
			src := &countReader{r: bytes.NewReader(data)}
			got, rest, err := ReadStreamHeader(src)
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Fatalf("header\n got %+v\nwant %+v", got, want)
			}
			first := streamHeaderLen + cmdHeaderLen + int(binary.LittleEndian.Uint32(data[streamHeaderLen:]))
			if src.n != first {
				t.Fatalf("read %d bytes of the stream; the header and first command are %d", src.n, first)
			}
			all, err := io.ReadAll(rest)
			if err != nil || !bytes.Equal(all, data) {
				t.Fatalf("the reader does not give the stream back (%d of %d bytes, %v)", len(all), len(data), err)
			}
			kinds[map[bool]string{false: "full", true: "incremental"}[got.Incremental()]+" v"+string(rune('0'+got.Version))] = true
		})
	}
	for _, k := range []string{"full v1", "incremental v1", "full v2"} {
		if !kinds[k] {
			t.Errorf("no %s fixture", k)
		}
	}
}

// oneByteReader hands out one byte per Read.
type oneByteReader struct{ r io.Reader }

func (o oneByteReader) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	return o.r.Read(b[:1])
}

func TestReadStreamHeaderShortReads(t *testing.T) {
	data, want := readFixture(t, fixtures(t)[0])
	got, rest, err := ReadStreamHeader(oneByteReader{bytes.NewReader(data)})
	if err != nil || got != want {
		t.Fatalf("got %+v, %v", got, err)
	}
	if all, _ := io.ReadAll(rest); !bytes.Equal(all, data) {
		t.Fatal("stream not given back")
	}
}

type failingReader struct{ after []byte }

var errDisk = errors.New("disk on fire")

func (f *failingReader) Read(b []byte) (int, error) {
	if len(f.after) == 0 {
		return 0, errDisk
	}
	n := copy(b, f.after)
	f.after = f.after[n:]
	return n, nil
}

func TestReadStreamHeaderReaderError(t *testing.T) {
	data, _ := readFixture(t, fixtures(t)[0])
	_, _, err := ReadStreamHeader(&failingReader{after: data[:30]})
	if !errors.Is(err, errDisk) || errors.Is(err, ErrBadStream) {
		t.Fatalf("a reader's own error must come back as is, not as a bad stream: %v", err)
	}
}

// attr is one attribute of a hand-made command.
type attr struct {
	typ uint16
	val []byte
}

func u64(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }

var (
	uuidA = bytes.Repeat([]byte{0xaa}, 16)
	uuidB = bytes.Repeat([]byte{0xbb}, 16)
)

// makeStream makes a stream header and one command with a correct CRC.
func makeStream(version uint32, cmd uint16, attrs ...attr) []byte {
	var payload []byte
	for _, a := range attrs {
		payload = binary.LittleEndian.AppendUint16(payload, a.typ)
		payload = binary.LittleEndian.AppendUint16(payload, uint16(len(a.val)))
		payload = append(payload, a.val...)
	}
	b := append([]byte(streamMagic), binary.LittleEndian.AppendUint32(nil, version)...)
	c := binary.LittleEndian.AppendUint32(nil, uint32(len(payload)))
	c = binary.LittleEndian.AppendUint16(c, cmd)
	c = append(c, 0, 0, 0, 0)
	c = append(c, payload...)
	binary.LittleEndian.PutUint32(c[6:], commandCRC(c))
	return append(b, c...)
}

func subvolAttrs(path string) []attr {
	return []attr{{sendAttrPath, []byte(path)}, {sendAttrUUID, uuidA}, {sendAttrCTransID, u64(7)}}
}

func snapshotAttrs(path string) []attr {
	return append(subvolAttrs(path), attr{sendAttrCloneUUID, uuidB}, attr{sendAttrCloneCTransID, u64(5)})
}

func without(attrs []attr, typ uint16) []attr {
	var out []attr
	for _, a := range attrs {
		if a.typ != typ {
			out = append(out, a)
		}
	}
	return out
}

func TestReadStreamHeaderHandMade(t *testing.T) {
	h, _, err := ReadStreamHeader(bytes.NewReader(makeStream(2, sendCmdSnapshot, append(snapshotAttrs("v@x"), attr{3, u64(1)})...)))
	want := StreamHeader{Version: 2, Name: "v@x", UUID: "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa", CTransID: 7,
		ParentUUID: "bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb", ParentCTransID: 5}
	if err != nil || h != want || !h.Incremental() {
		t.Fatalf("got %+v, %v; want %+v", h, err, want)
	}
	// A full stream has no parent, whatever else it carries.
	h, _, err = ReadStreamHeader(bytes.NewReader(makeStream(1, sendCmdSubvol, snapshotAttrs("v@x")...)))
	if err != nil || h.Incremental() || h.ParentCTransID != 0 {
		t.Fatalf("full stream: %+v, %v", h, err)
	}
}

// corruptStreams are broken streams, each with a part of the error it must
// give.
func corruptStreams(t testing.TB) map[string]struct {
	data []byte
	msg  string
} {
	real, _ := readFixture(t, "testdata/full-v1.stream")
	mut := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(real)) }
	big := makeStream(1, sendCmdSubvol, append(subvolAttrs("v@x"), attr{99, make([]byte, 60000)}, attr{99, make([]byte, 6000)})...)
	return map[string]struct {
		data []byte
		msg  string
	}{
		"empty":               {nil, "empty"},
		"magic only":          {[]byte("btrfs-str"), "truncated in its stream header"},
		"bad magic":           {mut(func(b []byte) []byte { b[0] = 'B'; return b }), "magic"},
		"version 0":           {mut(func(b []byte) []byte { b[13] = 0; return b }), "version 0"},
		"version 3":           {mut(func(b []byte) []byte { b[13] = 3; return b }), "version 3"},
		"truncated in cmd":    {real[:40], "truncated in its first command"},
		"bad crc":             {mut(func(b []byte) []byte { b[len(b)-len(real)+40] ^= 1; return b }), "CRC32C"},
		"crc field":           {mut(func(b []byte) []byte { b[streamHeaderLen+7] ^= 1; return b }), "CRC32C"},
		"first cmd write":     {makeStream(1, 15, subvolAttrs("v@x")...), "first command is 15"},
		"first cmd end":       {makeStream(1, 21), "first command is 21"},
		"first cmd too big":   {big, "at most 65536"},
		"huge len":            {mut(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[streamHeaderLen:], 1<<31); return b }), "at most 65536"},
		"no path":             {makeStream(1, sendCmdSubvol, without(subvolAttrs("v@x"), sendAttrPath)...), "no PATH"},
		"empty path":          {makeStream(1, sendCmdSubvol, subvolAttrs("")...), "PATH is empty"},
		"no uuid":             {makeStream(1, sendCmdSubvol, without(subvolAttrs("v@x"), sendAttrUUID)...), "no UUID"},
		"zero uuid":           {makeStream(1, sendCmdSubvol, attr{sendAttrPath, []byte("v@x")}, attr{sendAttrUUID, make([]byte, 16)}, attr{sendAttrCTransID, u64(1)}), "all zero"},
		"short uuid":          {makeStream(1, sendCmdSubvol, attr{sendAttrPath, []byte("v@x")}, attr{sendAttrUUID, uuidA[:15]}, attr{sendAttrCTransID, u64(1)}), "UUID is 15 bytes"},
		"no ctransid":         {makeStream(1, sendCmdSubvol, without(subvolAttrs("v@x"), sendAttrCTransID)...), "no CTRANSID"},
		"long ctransid":       {makeStream(1, sendCmdSubvol, attr{sendAttrPath, []byte("v@x")}, attr{sendAttrUUID, uuidA}, attr{sendAttrCTransID, make([]byte, 9)}), "CTRANSID is 9 bytes"},
		"snapshot no parent":  {makeStream(1, sendCmdSnapshot, subvolAttrs("v@x")...), "no CLONE_UUID"},
		"snapshot no ctrans":  {makeStream(1, sendCmdSnapshot, without(snapshotAttrs("v@x"), sendAttrCloneCTransID)...), "no CLONE_CTRANSID"},
		"snapshot zero clone": {makeStream(1, sendCmdSnapshot, append(subvolAttrs("v@x"), attr{sendAttrCloneUUID, make([]byte, 16)}, attr{sendAttrCloneCTransID, u64(1)})...), "CLONE_UUID (the parent) is all zero"},
		"two paths":           {makeStream(1, sendCmdSubvol, append(subvolAttrs("v@x"), attr{sendAttrPath, []byte("w@y")})...), "PATH appears twice"},
		"attr overrun": {mut(func(b []byte) []byte {
			binary.LittleEndian.PutUint16(b[streamHeaderLen+cmdHeaderLen+2:], 4000)
			return fixCRC(b)
		}), "bytes long: only"},
		"attr header cut": {makeStreamRaw(1, sendCmdSubvol, append(rawAttrs(subvolAttrs("v@x")), 1, 0)), "inside an attribute header"},
	}
}

// makeStreamRaw is makeStream with a payload given as bytes.
func makeStreamRaw(version uint32, cmd uint16, payload []byte) []byte {
	b := makeStream(version, cmd)
	binary.LittleEndian.PutUint32(b[streamHeaderLen:], uint32(len(payload)))
	return fixCRC(append(b, payload...))
}

func rawAttrs(attrs []attr) []byte {
	return makeStream(1, 1, attrs...)[streamHeaderLen+cmdHeaderLen:]
}

// fixCRC recomputes the first command's CRC of a stream.
func fixCRC(b []byte) []byte {
	n := int(binary.LittleEndian.Uint32(b[streamHeaderLen:]))
	cmd := b[streamHeaderLen : streamHeaderLen+cmdHeaderLen+n]
	binary.LittleEndian.PutUint32(cmd[6:], commandCRC(cmd))
	return b
}

func TestReadStreamHeaderCorrupt(t *testing.T) {
	for name, c := range corruptStreams(t) {
		t.Run(name, func(t *testing.T) {
			h, rest, err := ReadStreamHeader(bytes.NewReader(c.data))
			if err == nil {
				t.Fatalf("accepted: %+v", h)
			}
			if !errors.Is(err, ErrBadStream) || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("error %q: want ErrBadStream saying %q", err, c.msg)
			}
			if rest != nil {
				t.Fatal("a reader came with the error")
			}
		})
	}
}

func TestReadStreamHeaderTruncatedIsUnexpectedEOF(t *testing.T) {
	real, _ := readFixture(t, "testdata/full-v1.stream")
	for _, n := range []int{1, streamHeaderLen, streamHeaderLen + cmdHeaderLen, 60} {
		_, _, err := ReadStreamHeader(bytes.NewReader(real[:n]))
		if !errors.Is(err, ErrBadStream) || !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("%d bytes: %v", n, err)
		}
	}
}

func FuzzReadStreamHeader(f *testing.F) {
	for _, path := range fixtures(f) {
		data, _ := readFixture(f, path)
		f.Add(data)
	}
	for _, c := range corruptStreams(f) {
		f.Add(c.data)
	}
	f.Add(makeStream(2, sendCmdSnapshot, snapshotAttrs("v@2024-01-01T00:00:00.000000")...))
	f.Fuzz(func(t *testing.T, data []byte) {
		src := &countReader{r: bytes.NewReader(data)}
		h, rest, err := ReadStreamHeader(src)
		if src.n > streamHeaderLen+cmdHeaderLen+MaxFirstCommand {
			t.Fatalf("read %d bytes", src.n)
		}
		if err != nil {
			if !errors.Is(err, ErrBadStream) || rest != nil {
				t.Fatalf("error %v (reader %v)", err, rest)
			}
			return
		}
		if h.Version != 1 && h.Version != 2 || h.Name == "" || len(h.UUID) != 36 ||
			h.Incremental() != (len(h.ParentUUID) == 36) || !h.Incremental() && h.ParentCTransID != 0 {
			t.Fatalf("accepted a bad header %+v", h)
		}
		all, err := io.ReadAll(rest)
		if err != nil || !bytes.Equal(all, data) {
			t.Fatalf("stream not given back: %d of %d bytes, %v", len(all), len(data), err)
		}
	})
}

func TestReceiveErrors(t *testing.T) {
	for _, c := range []struct{ out, want string }{
		{"Chroot to /r/1\nAt subvol a@b\nERROR: short read from stream: expected 10 read 6\n", "ERROR: short read from stream: expected 10 read 6"},
		{"Chroot to /r/1\nsomething odd\n", "Chroot to /r/1; something odd"},
		{"", "no output"},
	} {
		if got := receiveErrors(c.out); got != c.want {
			t.Errorf("receiveErrors(%q) = %q, want %q", c.out, got, c.want)
		}
	}
}
