package remote

import (
	"errors"
	"fmt"
)

// Error kinds, for errors.Is. A Handler wraps its errors with ErrBadRequest,
// ErrDenied, ErrNotFound or ErrExists (fmt.Errorf("%w: ...")) to tell the
// client, through the exit status, that retrying cannot help; the client's
// errors match the same kinds.
var (
	ErrInvalidName = errors.New("invalid name")
	ErrBadRequest  = errors.New("bad request")
	ErrDenied      = errors.New("access denied")
	ErrNotFound    = errors.New("not found")
	ErrExists      = errors.New("already exists")
	// ErrBusy: the server runs as many operations of peers as it takes;
	// a retry later may succeed.
	ErrBusy = errors.New("peer busy")
	// ErrHostKey: the server's host key is unknown, changed or revoked.
	ErrHostKey = errors.New("host key not trusted")
	// ErrAuth: the server refused our client key.
	ErrAuth = errors.New("client key refused")
	// ErrConnectivity: the link failed (dial, handshake, keepalive
	// timeout, a stream cut before its end). A retry may succeed.
	ErrConnectivity = errors.New("connection failed")
)

// permanentKinds are the kinds a retry cannot fix.
var permanentKinds = []error{ErrInvalidName, ErrBadRequest, ErrDenied, ErrNotFound, ErrExists, ErrHostKey, ErrAuth}

// IsPermanent reports whether err is one that retrying cannot fix: an
// untrusted host key, a refused client key, missing rights, a bad request,
// or a snapshot that is missing or already there.
func IsPermanent(err error) bool {
	for _, k := range permanentKinds {
		if errors.Is(err, k) {
			return true
		}
	}
	return false
}

// IsConnectivity reports whether err is a failure of the link (dial,
// handshake cut, keepalive timeout, a stream cut before its end): a retry
// once the link is back may succeed.
func IsConnectivity(err error) bool {
	return errors.Is(err, ErrConnectivity) && !IsPermanent(err)
}

// Exit statuses of the replication operations.
const (
	exitOK         = 0
	exitFailed     = 1 // the operation failed: worth retrying
	exitBadRequest = 2 // a bad or forbidden request
	exitDenied     = 3 // the peer lacks the right
	exitNotFound   = 4
	exitExists     = 5
	exitBusy       = 6 // the server runs as many operations of peers as it takes: retry later
)

// exitStatus classifies a Handler's error as an exit status.
func exitStatus(err error) int {
	switch {
	case errors.Is(err, ErrBadRequest), errors.Is(err, ErrInvalidName):
		return exitBadRequest
	case errors.Is(err, ErrDenied):
		return exitDenied
	case errors.Is(err, ErrNotFound):
		return exitNotFound
	case errors.Is(err, ErrExists):
		return exitExists
	case errors.Is(err, ErrBusy):
		return exitBusy
	}
	return exitFailed
}

// RemoteError is an operation that the server ran and that failed: its
// exit status and the message it wrote on stderr.
type RemoteError struct {
	Host    string // the address dialed
	Verb    string // butterd-list, butterd-receive, butterd-send
	Status  int    // the exit status
	Message string // what the server wrote on stderr
}

func (e *RemoteError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = "no message"
	}
	if e.Status == exitBusy {
		return fmt.Sprintf("%s on %s: peer busy, retry later (%s)", e.Verb, e.Host, msg)
	}
	return fmt.Sprintf("%s on %s: %s (exit status %d)", e.Verb, e.Host, msg, e.Status)
}

// Is matches the kind of the exit status.
func (e *RemoteError) Is(target error) bool {
	switch e.Status {
	case exitBadRequest:
		return target == ErrBadRequest
	case exitDenied:
		return target == ErrDenied
	case exitNotFound:
		return target == ErrNotFound
	case exitExists:
		return target == ErrExists
	case exitBusy:
		return target == ErrBusy
	}
	return false
}

// kindError is an error of one kind with its own message, wrapping its cause.
type kindError struct {
	kind error
	msg  string
	err  error
}

func (e *kindError) Error() string        { return e.msg }
func (e *kindError) Is(target error) bool { return target == e.kind }
func (e *kindError) Unwrap() error        { return e.err }

func errorf(kind error, format string, args ...any) error {
	return &kindError{kind: kind, msg: fmt.Sprintf(format, args...)}
}

// connError is a connectivity error caused by err.
func connError(err error, format string, args ...any) error {
	return &kindError{kind: ErrConnectivity, msg: fmt.Sprintf(format, args...), err: err}
}
