// Package remote is butterd's replication transport: an SSH endpoint that
// speaks only butterd's replication operations, and its client
// (DESIGN.md "Replication"). Both ends use golang.org/x/crypto/ssh. The
// storage work is a Handler's; this package authenticates, authorizes,
// frames the streams, keeps the link alive and classifies errors.
//
// # Keys and files
//
// butterd keeps, under its state directory, its host key and its client
// key (LoadOrCreateKey: ed25519, OpenSSH format, mode 0600), the peers it
// accepts with their rights and, for sending to them, their addresses
// (Peers: one JSON file) and the hosts it trusts
// (an OpenSSH known_hosts file, lines "[host]:port key"). Every file is
// written atomically (temp file, fsync, rename, fsync of the directory).
//
// # Protocol
//
// A client authenticates with its public key only, within the server's
// HandshakeTimeout (10 s); the server maps the key to a Peer. Connections
// that have not authenticated yet are bounded (32 at once, 8 per source
// address): Serve closes the excess at once, so a flood of connections
// that never speak cannot tie up butterd.
//
// On the connection the client opens "session" channels, one per
// operation, each with exactly one "exec" request whose command is a
// verb, one space and a JSON object (unknown fields are refused):
//
//	butterd-list    {"volume":"v1"}
//	butterd-receive {"volume":"v1","name":"v1@2024-05-01T10:00:00.000000","parent_uuid":"...","compression":"zstd"}
//	butterd-send    {"volume":"v1","name":"v1@2024-05-01T10:00:00.000000","parent_uuid":"..."}
//	butterd-sync    {"volume":"v1","parent_uuid":"..."}
//
// butterd-list needs the push or pull right on the volume and writes
// {"snapshots":[{"name","uuid","received_uuid","parent_uuid"},...]} on
// stdout. butterd-receive (a push: needs the push right) reads a send
// stream from stdin and writes the Result {"snapshot":{...},"bytes":N} on
// stdout. butterd-send (a pull: needs the pull right) writes the stream of
// snapshot name, incremental against the snapshot whose UUID or received
// UUID is parent_uuid when that is set, on stdout. butterd-sync (needs
// the pull right) takes a temporary read-only snapshot of the volume as it
// is now, under a reserved name starting with ".", writes its stream
// (incremental against parent_uuid as for butterd-send) on stdout and
// deletes the snapshot, also when the link is cut (and at the next start
// after a crash): a sync pulls the files from it.
//
// A push with "compression":"zstd" carries the send stream compressed with
// zstd inside the frames; the server decompresses it (bounding the
// decoder's memory) before its Handler reads and checks the stream, and
// refuses a corrupt one as a bad request. A client may cap the bytes per
// second it pushes (Options.BandwidthLimit).
//
// A stream that the other end leaves waiting for the idle timeout
// (DefaultIdleTimeout, 5 minutes; Server.IdleTimeout, Options.IdleTimeout)
// is abandoned: the operation fails with "no data from ... for 5m0s:
// transfer abandoned" (or "... took no data ..." when it stops reading).
// Only time spent waiting on the other end counts.
//
// Streams travel framed, so that a cut link is never mistaken for the end
// of a stream: frames of a 4-byte big-endian length and that many bytes (1
// to MaxFrame), closed by a frame of length 0. Data after the end frame is
// ignored; an end of the channel before it is an error.
//
// The server answers with exit-status 0 on success. Otherwise it writes one
// line "butterd: ..." on stderr and exits with a status that classifies the
// failure: 1 the operation failed (worth retrying), 2 a bad or forbidden
// request, 3 access denied, 4 not found, 5 already exists (2 to 5 are
// permanent), 6 busy: the server already runs as many operations of peers
// as it takes (worth trying later). Everything but these exec commands is
// refused: a shell or subsystem gets the message and exit status 2;
// pty-req, env, x11-req, agent forwarding and unknown channel requests get
// a failure reply and a note on stderr; other channel types (direct-tcpip,
// x11, ...) and global requests (tcpip-forward, ...) are rejected. Both
// ends send keepalive@openssh.com global requests and close a connection
// that leaves several unanswered.
//
// # Errors
//
// IsPermanent reports errors that a retry cannot fix (unknown or changed
// host key, client key refused, rights, a bad request, not found, exists);
// IsConnectivity those of the link (dial, handshake cut, keepalive
// timeout, a stream cut before its end). Neither is retried here: the
// job fails with the error, and the operator or the schedule's next run
// tries again (an incremental send then resumes from the last snapshot
// both hold).
package remote
