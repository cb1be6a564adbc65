package btrfs

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

// command is one hand-made command, without the stream header.
func command(cmd uint16, attrs ...attr) []byte {
	return makeStream(1, cmd, attrs...)[streamHeaderLen:]
}

func cloneFrom(uuid []byte) []byte {
	return command(sendCmdClone, attr{sendAttrPath, []byte("f")}, attr{18, u64(0)}, attr{24, u64(4096)},
		attr{sendAttrCloneUUID, uuid}, attr{sendAttrCloneCTransID, u64(5)}, attr{22, []byte("g")}, attr{23, u64(0)})
}

// A CLONE may take data from the received subvolume or its parent only: the
// reader fails before any byte of another CLONE passes.
func TestStreamCheckClones(t *testing.T) {
	uuidC := bytes.Repeat([]byte{0xcc}, 16)
	incremental := makeStream(1, sendCmdSnapshot, snapshotAttrs("v@x")...)
	full := makeStream(1, sendCmdSubvol, subvolAttrs("v@x")...)
	write := command(15, attr{sendAttrPath, []byte("f")}, attr{18, u64(0)}, attr{sendAttrData, []byte("data")})
	end := command(sendCmdEnd)
	for _, c := range []struct {
		name       string
		head, cmd  []byte
		refused    string
		afterClone []byte
	}{
		{"clone from itself", incremental, cloneFrom(uuidA), "", end},
		{"clone from the parent", incremental, cloneFrom(uuidB), "", end},
		{"clone from another subvolume", incremental, cloneFrom(uuidC), `takes data from subvolume "cccccccc-`, end},
		{"full stream, clone from elsewhere", full, cloneFrom(uuidB), "neither the received subvolume nor its parent", end},
		{"zero clone uuid", full, cloneFrom(make([]byte, 16)), "neither", end},
		{"second subvolume", incremental, command(sendCmdSnapshot, snapshotAttrs("w@y")...), "a second SNAPSHOT command", end},
		{"after the end", full, end, "", cloneFrom(uuidC)},
	} {
		// Buffered, the reader passes many commands per Read; each is
		// checked all the same.
		for _, buffered := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s buffered=%v", c.name, buffered), func(t *testing.T) {
				before := append(bytes.Clone(c.head), write...)
				data := append(append(bytes.Clone(before), c.cmd...), c.afterClone...)
				var in io.Reader = bytes.NewReader(data)
				if buffered {
					in = bufio.NewReader(in)
				}
				_, r, err := ReadStreamHeader(in)
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(r)
				if c.refused == "" {
					if err != nil || !bytes.Equal(got, data) {
						t.Fatalf("read %d of %d bytes: %v", len(got), len(data), err)
					}
					return
				}
				if !errors.Is(err, ErrBadStream) || !strings.Contains(err.Error(), c.refused) {
					t.Fatalf("error %v; want a bad stream saying %q", err, c.refused)
				}
				if !bytes.Equal(got, before) {
					t.Fatalf("passed %d bytes; want the %d before the refused command", len(got), len(before))
				}
			})
		}
	}
}

// Real streams pass whole through one-byte reads, and through buffered
// readers of any size, which pass many commands per Read.
func TestStreamCheckShortReads(t *testing.T) {
	for _, path := range fixtures(t) {
		data, _ := readFixture(t, path)
		_, r, err := ReadStreamHeader(oneByteReader{bytes.NewReader(data)})
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(oneByteReader{r})
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%s: read %d of %d bytes: %v", path, len(got), len(data), err)
		}
		for _, size := range []int{16, 100, 4096, 1 << 20} {
			_, r, err := ReadStreamHeader(bufio.NewReaderSize(oneByteReader{bytes.NewReader(data)}, size))
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(r)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("%s, buffer of %d: read %d of %d bytes: %v", path, size, len(got), len(data), err)
			}
		}
	}
}
