package remote

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// The exec commands of the replication operations: verb, a space, a JSON
// object (see the package documentation). A new version of an operation
// gets a new verb.
const (
	VerbList    = "butterd-list"
	VerbReceive = "butterd-receive" // a push: the client's stream goes into the server's snapshots
	VerbSend    = "butterd-send"    // a pull: the server's stream comes out to the client
	VerbSync    = "butterd-sync"    // a pull of the volume as it is now, for a sync
)

// maxCommand bounds an exec command.
const maxCommand = 8 << 10

// SnapshotRef is a read-only snapshot as replication matches it: by UUID
// and received UUID (DESIGN.md "Replication").
type SnapshotRef struct {
	Name         string `json:"name"`
	UUID         string `json:"uuid"`
	ReceivedUUID string `json:"received_uuid,omitempty"`
	ParentUUID   string `json:"parent_uuid,omitempty"`
}

// ListRequest asks for the read-only snapshots of a volume.
type ListRequest struct {
	Volume string `json:"volume"`
}

// ListResult is butterd-list's answer.
type ListResult struct {
	Snapshots []SnapshotRef `json:"snapshots"`
}

// ReceiveRequest announces a pushed stream: the snapshot it carries and,
// for an incremental stream, the UUID of its parent as the stream names it
// (the receiver checks the stream's header against both). Compression,
// when set, says how the stream is compressed on the wire (CompressZstd);
// the server decompresses it before its Handler reads it. A server that
// does not know the field refuses the request, so a client asks for
// compression only when told to.
type ReceiveRequest struct {
	Volume      string `json:"volume"`
	Name        string `json:"name"`
	ParentUUID  string `json:"parent_uuid,omitempty"`
	Compression string `json:"compression,omitempty"`
}

// CompressZstd is a stream compressed with zstd on the wire.
const CompressZstd = "zstd"

// SendRequest asks for the stream of snapshot Name, incremental against the
// sender's read-only snapshot whose UUID or received UUID is ParentUUID
// when that is set.
type SendRequest struct {
	Volume     string `json:"volume"`
	Name       string `json:"name"`
	ParentUUID string `json:"parent_uuid,omitempty"`
}

// SyncRequest asks for the stream of a temporary read-only snapshot of the
// server's volume as it is now (a sync pulls the files from it),
// incremental against the server's read-only snapshot whose UUID or
// received UUID is ParentUUID when that is set. The stream's subvolume has
// a reserved name starting with ".".
type SyncRequest struct {
	Volume     string `json:"volume"`
	ParentUUID string `json:"parent_uuid,omitempty"`
}

// Result is what a receive made.
type Result struct {
	Snapshot SnapshotRef `json:"snapshot"`
	Bytes    int64       `json:"bytes"` // the stream's size
}

func (r ListRequest) validate() error { return validateName("volume", r.Volume) }

func (r ReceiveRequest) validate() error {
	if r.Compression != "" && r.Compression != CompressZstd {
		return errorf(ErrBadRequest, "compression %.20q is not known: only %q is", r.Compression, CompressZstd)
	}
	return validateStream(r.Volume, r.Name, r.ParentUUID)
}

func (r SendRequest) validate() error {
	return validateStream(r.Volume, r.Name, r.ParentUUID)
}

func (r SyncRequest) validate() error {
	if err := validateName("volume", r.Volume); err != nil {
		return err
	}
	return validateUUID("parent_uuid", r.ParentUUID)
}

func validateStream(volume, name, parent string) error {
	if err := validateName("volume", volume); err != nil {
		return err
	}
	if err := validateSnapshotName(volume, name); err != nil {
		return err
	}
	return validateUUID("parent_uuid", parent)
}

// request is one of the request types.
type request interface{ validate() error }

// command is the exec command for req.
func command(verb string, req request) (string, error) {
	if err := req.validate(); err != nil {
		return "", err
	}
	args, err := json.Marshal(req)
	if err != nil {
		return "", err
	}
	return verb + " " + string(args), nil
}

// parseCommand reads an exec command: a known verb, one space, one JSON
// object with only the request's fields, valid. Its errors are
// ErrBadRequest or ErrInvalidName.
func parseCommand(cmd string) (string, request, error) {
	if len(cmd) > maxCommand {
		return "", nil, errorf(ErrBadRequest, "command of %d bytes: at most %d are allowed", len(cmd), maxCommand)
	}
	verb, args, _ := strings.Cut(cmd, " ")
	var req request
	switch verb {
	case VerbList:
		req = &ListRequest{}
	case VerbReceive:
		req = &ReceiveRequest{}
	case VerbSend:
		req = &SendRequest{}
	case VerbSync:
		req = &SyncRequest{}
	default:
		return "", nil, errorf(ErrBadRequest, "%.40q is not a butterd operation: this endpoint runs only %s, %s, %s and %s, for butterd replication", verb, VerbList, VerbReceive, VerbSend, VerbSync)
	}
	dec := json.NewDecoder(strings.NewReader(args))
	dec.DisallowUnknownFields()
	if err := dec.Decode(req); err != nil {
		return "", nil, errorf(ErrBadRequest, "%s: arguments are not a JSON object of its fields: %v", verb, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return "", nil, errorf(ErrBadRequest, "%s: arguments must be one JSON object, with nothing after it", verb)
	}
	if err := req.validate(); err != nil {
		return "", nil, fmt.Errorf("%s: %w", verb, err)
	}
	return verb, req, nil
}

// decodeResult reads a JSON result written by the server.
func decodeResult(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("the server's answer is not valid JSON: %v", err)
	}
	return nil
}
