package btrfs

import (
	"errors"
	"fmt"
	"testing"

	"golang.org/x/sys/unix"
)

func TestErrorMessage(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{&Error{"create", "/p/a b", unix.EEXIST}, `btrfs create "/p/a b": file exists`},
		{&Error{"delete", "/p", nestedError([]string{"a", "d/b"})}, `btrfs delete "/p": holds nested subvolumes: "a", "d/b"`},
		{&Error{"info", "/p", ErrNotSubvolume}, `btrfs info "/p": not a subvolume`},
		{&Error{"snapshot", "/s", fmt.Errorf("from %q: %w", "/v", unix.ENOENT)}, `btrfs snapshot "/s": from "/v": no such file or directory`},
	} {
		if got := c.err.Error(); got != c.want {
			t.Errorf("message %q, want %q", got, c.want)
		}
	}
}

func TestErrorIs(t *testing.T) {
	err := error(&Error{"delete", "/p", nestedError([]string{"a"})})
	if !errors.Is(err, ErrNested) {
		t.Error("errors.Is(err, ErrNested) = false")
	}
	err = &Error{"delete", "/p", fmt.Errorf("%w (%w)", ErrNested, unix.ENOTEMPTY)}
	if !errors.Is(err, ErrNested) || !errors.Is(err, unix.ENOTEMPTY) {
		t.Error("race error is not both ErrNested and ENOTEMPTY")
	}
	err = &Error{"rename", "/a", fmt.Errorf("to %q: %w", "/b", unix.EEXIST)}
	if !errors.Is(err, unix.EEXIST) {
		t.Error("errors.Is(err, EEXIST) = false")
	}
	var e *Error
	if !errors.As(err, &e) || e.Op != "rename" || e.Path != "/a" {
		t.Errorf("errors.As = %+v", e)
	}
}

func TestSplit(t *testing.T) {
	for _, c := range []struct {
		path, dir, name string
		err             error
	}{
		{"/m/v", "/m/", "v", nil},
		{"/m/v/", "/m/", "v", nil},
		{"v", ".", "v", nil},
		{"/", "", "", unix.EINVAL},
		{"/m/..", "", "", unix.EINVAL}, // cleans to "/"
		{"..", "", "", unix.EINVAL},
		{"/m/" + string(make([]byte, 256)), "", "", unix.ENAMETOOLONG},
	} {
		dir, name, err := split(c.path)
		if dir != c.dir || name != c.name || err != c.err {
			t.Errorf("split(%q) = %q, %q, %v; want %q, %q, %v", c.path, dir, name, err, c.dir, c.name, c.err)
		}
	}
}

func TestNotFoundIsError(t *testing.T) {
	_, err := IsSubvolume("/nonexistent/butterd-test")
	if !errors.Is(err, unix.ENOENT) {
		t.Errorf("IsSubvolume(missing) = %v, want ENOENT", err)
	}
	if err := Delete("/nonexistent/butterd-test"); !errors.Is(err, unix.ENOENT) {
		t.Errorf("Delete(missing) = %v, want ENOENT", err)
	}
}
