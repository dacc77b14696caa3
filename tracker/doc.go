// Package tracker knows which process owns which TCP or UDP socket of the
// host, and which owned it at any moment of the retention period.
//
// A Scanner takes snapshots of the host's sockets and their owners. The
// tracker diffs successive snapshots into events (bound, unbound, owner
// changed) and keeps binding intervals [From, Until) per owner, persisted
// in a state directory, so that a flow is attributed to the process that
// owned the port when the flow happened.
package tracker
