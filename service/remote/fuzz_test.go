package remote

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// FuzzParseCommand reads any exec command. A refusal is permanent (no
// retry can fix it); an accepted command names a known verb, carries only
// names that are one path element and a lower-case UUID or none, and is
// written back by command exactly as the canonical form of what was read.
func FuzzParseCommand(f *testing.F) {
	const uuid = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
	for _, s := range []string{
		`butterd-list {"volume":"v1"}`,
		`butterd-receive {"volume":"v1","name":"v1@2024-05-01T10:00:00.000000","parent_uuid":"` + uuid + `"}`,
		`butterd-send {"volume":"v1","name":"v1@x@hostb"}`,
		`butterd-list`, `butterd-list {}`, `butterd-list {"volume":"v1"}x`, `butterd-list ["v1"]`,
		`butterd-list {"volume":"v1","Volume":"v2"}`, `butterd-list {"VOLUME":"v1"}`,
		`butterd-receive {"volume":"v1","name":"v1@a/b"}`, `butterd-receive {"volume":"v1","name":"v1@.."}`,
		`butterd-send {"volume":"v1","name":"v1@x","parent_uuid":"` + strings.ToUpper(uuid) + `"}`,
		`sh -c "butterd-list {}"`, `butterd-list {"volume":"v\u0031"}`, `butterd-list {"volume":"v1"} `,
		"butterd-list\t{\"volume\":\"v1\"}", `butterd-list  {"volume":"v1"}`, `butterd-list {"volume":null}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, cmd string) {
		verb, req, err := parseCommand(cmd)
		if err != nil {
			if !IsPermanent(err) || req != nil {
				t.Fatalf("parseCommand(%q) = %v, %v: want a permanent refusal", cmd, req, err)
			}
			return
		}
		var volume, name, parent string
		switch r := req.(type) {
		case *ListRequest:
			volume = r.Volume
		case *ReceiveRequest:
			volume, name, parent = r.Volume, r.Name, r.ParentUUID
		case *SendRequest:
			volume, name, parent = r.Volume, r.Name, r.ParentUUID
		default:
			t.Fatalf("parseCommand(%q) gave %T", cmd, req)
		}
		for _, n := range []string{volume, name} {
			if strings.ContainsAny(n, "/\x00") || strings.Contains(n, "..") || len(n) > 255 {
				t.Fatalf("parseCommand(%q) accepted name %q", cmd, n)
			}
		}
		if validateName("volume", volume) != nil || name != "" && validateSnapshotName(volume, name) != nil || validateUUID("parent_uuid", parent) != nil {
			t.Fatalf("parseCommand(%q) accepted %+v", cmd, req)
		}
		canon, err := command(verb, req)
		if err != nil {
			t.Fatalf("command(%s, %+v): %v", verb, req, err)
		}
		v2, r2, err := parseCommand(canon)
		if err != nil || v2 != verb {
			t.Fatalf("canonical %q of %q reads as %q, %v", canon, cmd, v2, err)
		}
		if again, _ := command(v2, r2); again != canon {
			t.Fatalf("canonical %q of %q is written again as %q", canon, cmd, again)
		}
	})
}

// FuzzFrameReader reads any bytes as a framed stream, through reads of
// every size: it ends with io.EOF exactly after an end frame, giving back
// the frames' payload, or fails; a frame over MaxFrame is refused before
// its payload is read, and a stream cut short is a connectivity error,
// never a clean end. Framing any payload and reading it back gives it
// back.
func FuzzFrameReader(f *testing.F) {
	frame := func(parts ...string) []byte {
		var b bytes.Buffer
		for _, p := range parts {
			binary.Write(&b, binary.BigEndian, uint32(len(p)))
			b.WriteString(p)
		}
		return b.Bytes()
	}
	f.Add(append(frame("hello", " world"), 0, 0, 0, 0))
	f.Add(frame("cut"))
	f.Add([]byte{0, 0x10, 0, 1, 'x'})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0, 0})
	f.Add(append(frame("a"), 0, 0, 0, 0, 'z'))
	f.Fuzz(func(t *testing.T, data []byte) {
		// what a correct reader gives: the payload up to the end frame
		want, end, bad := []byte{}, false, false
		for rest := data; !end && !bad; {
			if len(rest) < frameHead {
				break
			}
			size := binary.BigEndian.Uint32(rest)
			rest = rest[frameHead:]
			switch {
			case size == 0:
				end = true
			case size > MaxFrame:
				bad = true
			case int(size) > len(rest):
				want = append(want, rest...)
				rest = nil
			default:
				want = append(want, rest[:size]...)
				rest = rest[size:]
			}
		}
		fr := &frameReader{r: iotest.OneByteReader(bytes.NewReader(data))}
		got, err := io.ReadAll(fr)
		switch {
		case end:
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("complete stream: %d bytes (want %d), %v", len(got), len(want), err)
			}
		case bad:
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("frame over MaxFrame: %v", err)
			}
		default:
			if !errors.Is(err, errCut) || !IsConnectivity(err) || !bytes.Equal(got, want) {
				t.Fatalf("cut stream: %d bytes (want %d), %v", len(got), len(want), err)
			}
		}

		var framed bytes.Buffer
		n, rerr, werr := copyFramed(&framed, iotest.HalfReader(bytes.NewReader(data)))
		if n != int64(len(data)) || rerr != nil || werr != nil {
			t.Fatal(n, rerr, werr)
		}
		back, err := io.ReadAll(&frameReader{r: &framed})
		if err != nil || !bytes.Equal(back, data) {
			t.Fatalf("framed and read back: %d of %d bytes, %v", len(back), len(data), err)
		}
	})
}

// FuzzDecodeResult reads any answer of a server as a Result and as a
// ListResult: no panic, and an error says the answer is not valid JSON.
func FuzzDecodeResult(f *testing.F) {
	for _, s := range []string{
		`{"snapshot":{"name":"v1@x","uuid":"0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"},"bytes":12}`,
		`{"snapshots":[{"name":"v1@x","uuid":"u"}]}`, `{"bytes":-1}`, `{"bytes":1e400}`, `[`, ``, `null`, `{"snapshots":{}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var r Result
		var l ListResult
		for _, v := range []any{&r, &l} {
			if err := decodeResult(data, v); err != nil && !strings.Contains(err.Error(), "not valid JSON") {
				t.Fatalf("decodeResult(%q): %v", data, err)
			}
		}
	})
}
