package remote

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestParseCommand(t *testing.T) {
	const uuid = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
	for _, tc := range []struct {
		cmd  string
		want request // nil: refused
	}{
		{`butterd-list {"volume":"v1"}`, &ListRequest{Volume: "v1"}},
		{`butterd-receive {"volume":"v1","name":"v1@2024-05-01T10:00:00.000000","parent_uuid":"` + uuid + `"}`, &ReceiveRequest{Volume: "v1", Name: "v1@2024-05-01T10:00:00.000000", ParentUUID: uuid}},
		{`butterd-receive {"volume":"v1","name":"v1@x","compression":"zstd"}`, &ReceiveRequest{Volume: "v1", Name: "v1@x", Compression: "zstd"}},
		{`butterd-receive {"volume":"v1","name":"v1@x","compression":"gzip"}`, nil},
		{`butterd-send {"volume":"v1","name":"v1@x@hostb"}`, &SendRequest{Volume: "v1", Name: "v1@x@hostb"}},
		{`butterd-sync {"volume":"v1"}`, &SyncRequest{Volume: "v1"}},
		{`butterd-sync {"volume":"v1","parent_uuid":"` + uuid + `"}`, &SyncRequest{"v1", uuid}},
		{`butterd-sync {"volume":"v1","name":"v1@x"}`, nil},
		{`butterd-sync {"volume":"../v1"}`, nil},
		{`butterd-sync {"volume":"v1","parent_uuid":"x"}`, nil},
		{`butterd-list`, nil},
		{`butterd-list `, nil},
		{`butterd-list {}`, nil},
		{`butterd-list {"volume":"v1"}x`, nil},
		{`butterd-list ["v1"]`, nil},
		{`butterd-list {"volume":"v1","volume2":"v"}`, nil},
		{`butterd-list {"volume":".hidden"}`, nil},
		{`butterd-receive {"volume":"v1","name":"v2@x"}`, nil},
		{`butterd-receive {"volume":"v1","name":"v1@"}`, nil},
		{`butterd-receive {"volume":"v1","name":"v1@a/b"}`, nil},
		{`butterd-receive {"volume":"v1","name":"v1@.."}`, nil},
		{`butterd-receive {"volume":"v1","name":"v1@x","parent_uuid":"` + strings.ToUpper(uuid) + `"}`, nil},
		{`butterd-shell {}`, nil},
		{`sh -c "butterd-list {}"`, nil},
		{`butterd-list {"volume":"` + strings.Repeat("v", 9000) + `"}`, nil},
	} {
		verb, req, err := parseCommand(tc.cmd)
		if tc.want == nil {
			if err == nil || !IsPermanent(err) {
				t.Errorf("parseCommand(%.60q) = %v, %v: want a permanent refusal", tc.cmd, req, err)
			}
			continue
		}
		if err != nil || verb != strings.Fields(tc.cmd)[0] {
			t.Errorf("parseCommand(%q): %q, %v", tc.cmd, verb, err)
			continue
		}
		if got, _ := command(verb, req); got != tc.cmd {
			t.Errorf("command(parseCommand(%q)) = %q", tc.cmd, got)
		}
	}
}

func TestFrames(t *testing.T) {
	data := make([]byte, 3*chunk+123)
	newPattern(2).Read(data)
	var framed bytes.Buffer
	n, rerr, werr := copyFramed(&framed, iotest.HalfReader(bytes.NewReader(data)))
	if n != int64(len(data)) || rerr != nil || werr != nil {
		t.Fatal(n, rerr, werr)
	}
	all := framed.Bytes()
	got, err := io.ReadAll(iotest.OneByteReader(&frameReader{r: bytes.NewReader(all)}))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("frames came back as %d bytes, %v", len(got), err)
	}

	// Data after the end frame is ignored; an end before it is a cut.
	if got, err := io.ReadAll(&frameReader{r: bytes.NewReader(append(all, 1, 2, 3))}); err != nil || len(got) != len(data) {
		t.Errorf("trailing data: %d bytes, %v", len(got), err)
	}
	for _, cut := range []int{0, 2, 4, 100, len(all) - 4, len(all) - 1} {
		_, err := io.ReadAll(&frameReader{r: bytes.NewReader(all[:cut])})
		if !IsConnectivity(err) || !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("stream cut at %d of %d: %v: want a connectivity error", cut, len(all), err)
		}
	}
	huge := []byte{0x7f, 0xff, 0xff, 0xff}
	if _, err := io.ReadAll(&frameReader{r: bytes.NewReader(huge)}); !errors.Is(err, ErrBadRequest) {
		t.Errorf("a huge frame: %v", err)
	}

	var w bytes.Buffer
	fw := &frameWriter{w: &w}
	fw.Write(data[:10])
	fw.Write(data[10:])
	writeEnd(&w)
	if got, err := io.ReadAll(&frameReader{r: &w}); err != nil || !bytes.Equal(got, data) {
		t.Errorf("frameWriter: %d bytes, %v", len(got), err)
	}
}
