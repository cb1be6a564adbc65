package docker

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"butterd/service"
)

func TestNewRefusesBadHosts(t *testing.T) {
	for _, host := range []string{"", "/var/run/docker.sock", "ssh://host", "npipe:////./pipe/docker_engine"} {
		if _, err := New(host, "btrfs"); err == nil || !strings.Contains(err.Error(), "unix:///PATH or tcp://HOST:PORT") {
			t.Errorf("New(%q): %v", host, err)
		}
	}
}

// New never connects; a call to an engine that is not there is
// service.ErrNoEngine, one to something else answering is another error.
func TestEngineNotRunning(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "docker.sock")
	e, err := New("unix://"+sock, "btrfs")
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if _, err := e.Using(context.Background(), []string{"v1"}); !errors.Is(err, service.ErrNoEngine) {
		t.Errorf("Using with no socket: %v, want ErrNoEngine", err)
	}

	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("not http\r\n\r\n"))
			c.Close()
		}
	}()
	defer l.Close()
	if _, err := e.Using(context.Background(), []string{"v1"}); err == nil || errors.Is(err, service.ErrNoEngine) {
		t.Errorf("Using with something else on the socket: %v, want an error that is not ErrNoEngine", err)
	}
}

// An engine that accepts connections but never answers: the call ends
// at its deadline, and the error names DOCKER_HOST.
func TestEngineSilent(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "docker.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		var conns []net.Conn
		for {
			c, err := l.Accept()
			if err != nil {
				for _, c := range conns {
					c.Close()
				}
				return
			}
			conns = append(conns, c) // read nothing, answer nothing
		}
	}()
	defer func() { l.Close(); <-done }()
	e, err := New("unix://"+sock, "btrfs")
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err = e.Using(ctx, []string{"v1"})
	if err == nil || !strings.Contains(err.Error(), sock) || !strings.Contains(err.Error(), "DOCKER_HOST") {
		t.Errorf("Using with a silent engine: %v, want the host named", err)
	}
}

// The kept end of a command's output starts between characters, whatever
// the sizes of the writes.
func TestTailCutsBetweenCharacters(t *testing.T) {
	for _, chunk := range []int{1, 3, 1000, 1 << 20} {
		out := []byte(strings.Repeat("€", outputLimit)) // 3 bytes each
		var tl tail
		for p := out; len(p) > 0; p = p[min(chunk, len(p)):] {
			tl.Write(p[:min(chunk, len(p))])
		}
		got := tl.String()
		if !utf8.ValidString(got) || len(got) > outputLimit || len(got) < outputLimit-utf8.UTFMax || !strings.HasSuffix(string(out), got) {
			t.Errorf("writes of %d bytes: kept %d bytes, valid UTF-8 %v, want the end of the output cut between characters",
				chunk, len(got), utf8.ValidString(got))
		}
	}
}
