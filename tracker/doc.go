// Package tracker knows which process owns which TCP or UDP socket of the
// host, and which owned it at any moment of the retention period.
//
// A Scanner takes snapshots of the host's sockets and their owners. The
// tracker diffs successive snapshots into events (bound, unbound, owner
// changed) and keeps binding intervals [From, Until) per owner, persisted
// in a state directory, so that a flow is attributed to the process that
// owned the port when the flow happened.
//
// # Events
//
// A socket is identified between scans by (network namespace, protocol,
// local address and port, remote address and port, inode); its owner by
// (pid, process start time), so a reused pid is another owner. Addresses
// are normalised (IPv4-mapped IPv6 is IPv4, no zones). Each scan yields:
//
//   - bound: a socket with an inode appeared (with its owner, or none when
//     the scan could not see it);
//   - unbound: it disappeared;
//   - owner-changed: the same socket has another owner (fd passing, the
//     parent exited, exec changed the name), or its owner was found after
//     the socket itself (the interval then keeps its start).
//
// An owner the scan does not see once (a process exiting, permission
// flakes) is not a change. Inode-0 sockets (accept queue, TIME-WAIT,
// orphans) make no events of their own: an owned connection that loses its
// inode continues as the same binding under its owner until it goes, and
// other inode-0 sockets belong to their listener, whose binding already
// attributes them. Events carry a sequence number, kept in a ring
// (Options.RingSize) for EventsSince and Subscribe; numbers grow across
// restarts, and after a restart they jump so that a client positioned
// before it gets ErrResync and starts over from Current (a View with the
// Seq to continue from).
//
// # History
//
// Intervals run from the first scan that saw a binding to the first scan
// that did not ([From, Until), scan times; with an event source, from the
// socket's start to its close, see Event sources): a flow's time is
// matched with a
// tolerance (DefaultTolerance) that covers the scan interval and clock
// skew. History holds what attribution needs, compactly: intervals with an
// owner, except connections of a process on a port where the same process
// listens (on that address, or on a wildcard while the host owns the
// address): the listener's interval answers for them. Should the listener
// go or change hands while such a connection lives, the connection is
// written from its start. A TIME-WAIT socket adds nothing: it is part of
// its connection's interval, or belongs to the listener.
//
// # Event sources
//
// Scans miss sockets that live shorter than the interval and see the
// others up to an interval late. Options.Events adds an EventSource that
// reports sockets as they start and end: the eBPF source of package
// tracker/ebpf, opened by OpenEventSource. Its mode (serve --source) is
// EventsAuto (eBPF where the host can run it; elsewhere, no BTF, no
// privilege, an old kernel, it logs why, once, and the tracker polls),
// EventsEBPF (fail without it) or EventsPoll.
//
// The eBPF programs attach to cgroup socket hooks and a BTF tracepoint,
// which load on stock kernels with BTF and here, where kprobes and
// fentry cannot. The process is read from the current task only in hooks
// that run in the system call of the process acting on the socket:
// cgroup/sock_create (socket), post_bind4|6 (bind), connect4|6
// (connect), sendmsg4|6 (sendto on an unconnected UDP socket), and the
// inet_sock_set_state transitions CLOSE->SYN_SENT (connect) and
// CLOSE->LISTEN (listen). It is kept in socket-local storage that the
// kernel clones into each connection a listener accepts. The hooks that
// can run in softirq, where the current task is whatever the CPU was
// running (the handshake's completion, SYN_RECV->ESTABLISHED, the UDP
// egress hook, the TCP close), take the owner from that storage and
// never from the current task: on loopback the client is current when
// the server's handshake completes, and would otherwise be named as the
// server. A socket no process-context hook saw (older than the source)
// has no owner.
//
// Events become bindings as follows: a UDP bind is an unconn binding, a
// listen a listen binding, a connect or accept the connection from the
// event's time (a connect's is its SYN's); a UDP datagram is the
// conversation with its peer (a connected binding) unless the socket's own
// unconn binding, of the same process, attributes it already; a failed
// connect is an interval from its SYN to when the tracker learned of the
// failure; a close ends the bindings of the socket (the kernel's socket
// cookie ties them). TCP binds, and events without an owner, record
// nothing; a close without a known cookie ends a scanned TCP connection
// with its 5-tuple.
//
// Owners are resolved as soon as the event arrives, while the process may
// still be there, through the Scanner (an OwnerResolver): the scanner's
// Process when pid, start time and comm match (start times have /proc's
// 10 ms resolution), else /proc/<pid>, else, for a process already gone,
// one built from the event: its comm (15 bytes at most) as the name, its
// uid and user, no exe or command line. An accepted connection belongs to
// whoever the scans see holding its listener (the event names the process
// that called listen: socket activation, pre-forked workers).
//
// Sockets the scans have not seen are kept out of the live view and
// events (Current, Subscribe), which stay what the scans see; they go to
// the history only. When a scan sees one, it adopts the event's binding:
// one interval, from the event's time, with the inode and, if the event
// knew only the comm, the scan's details; if another process holds the
// socket by then, the event's interval ends at that scan. An event about
// a socket a scan saw first moves its start back to the event's time, and
// its close ends the interval when it happened.
//
// Events come up to the source's poll interval late (50 ms). They are
// applied in batches as they come and, at each scan, those up to the
// snapshot's time before it and later ones after it, so that a close just
// after the snapshot does not make the socket it still lists a new one.
// No interval ends before it starts. A socket that a scan finds gone
// before its close event arrived ends at that scan. A socket learned from
// events that two scans of its network namespace no longer show, and
// whose close does not come within two seconds of the first (lost: the
// ring buffer was full), ends at the first (EventSourceStats.MissedCloses). At most
// Options.MaxEventSockets sockets are followed until their close, the
// oldest forgotten beyond that (Evictions); the queue from the source is
// bounded too (EventQueueSize, QueueDrops). Events of network namespaces
// the Scanner does not cover (NetNSScope) are ignored. The store changes
// of events are committed with the next scan, so a crash still loses at
// most an interval; a socket that opened and closed between two commits
// is written as one closed interval. Stats.EventSource has the counters.
//
// # Store
//
// The history lives in HistoryFile, a bbolt database in the state
// directory (DefaultStateDir: SystemStateDir for root, else the XDG state
// directory). Buckets: "meta" (magic "netdumper history", format version
// 1, host, last sequence number, next record id, last scan time), "open"
// (bindings still open, by id), "closed" and "closed-long" (ended
// intervals keyed by end time and id; those over an hour go to
// closed-long so a window query scans only what can overlap it), "procs"
// (owners, shared by their intervals) and "addrs" (the host's address
// intervals). Records are versioned binary (see store_codec.go).
//
// Each scan's changes, sequence number and scan time are committed in one
// synced transaction, so a crash (kill -9, power loss) loses at most the
// scan in progress. A commit that fails (disk full) is retried with the
// next scan; the live view and events go on meanwhile.
//
// On restart the open intervals are re-matched against the first scan: a
// socket still there with the same owner continues its interval (it
// existed throughout); one gone or re-owned is closed at the previous
// run's last scan, the last moment it was known to exist. Addresses are
// treated alike.
//
// Retention (Options.Retention, 24 h by default) deletes intervals that
// ended before now minus the retention, at start-up and every ten
// minutes, with the owner records no interval uses any more. bbolt reuses
// the freed pages but never shrinks its file, so the file stays at the
// size of the busiest retention window; when the tracker starts and more
// than half of a file of 32 MiB or more is free, it rewrites the file
// compactly.
//
// A state file that is not a netdumper store (garbage, damage, another
// application's bbolt database, a newer format) gives ErrNotStateFile
// naming the file, which is left untouched. bbolt's file lock admits one
// writer: a second tracker on the same state directory fails with
// ErrStateLocked after Options.LockTimeout. Readers on the same host
// (enrich) open the store read-only with OpenStore when no tracker runs;
// while one runs they get ErrStateLocked and ask the running tracker
// over its HTTP API instead, which `serve` advertises in DaemonFile
// (WriteDaemonInfo, ReadDaemonInfo).
//
// # Attribution
//
// An Index is built from the binding and address intervals of any number
// of hosts (a tracker's History and AddrHistory, a bindings file, remote
// trackers). Lookup tries the flow's source as the local end, then its
// destination; on each side a connected socket with the exact 5-tuple,
// then a listener (or unconnected UDP socket) on the exact local address
// and port, then a wildcard listener (0.0.0.0 serves IPv4, :: serves both)
// of a host that owned the flow's local address then. Among matching
// intervals, the one overlapping the flow most (or closest to it) wins.
// Lookups take about a hundred nanoseconds and do not allocate.
//
// # Bindings file
//
// `netdumper bindings export`, GET /v1/bindings and /v1/history, and
// `enrich --bindings` share one JSON format, version 1 (FileWriter,
// WriteFile, ReadFile, DecodeFile):
//
//	{"version": 1,
//	 "hosts": [
//	  {"host": "web1",
//	   "addresses": [
//	    {"ip": "192.0.2.10", "from": "2023-11-14T22:00:00Z", "until": null}
//	   ],
//	   "bindings": [
//	    {"proto": "tcp", "local_ip": "0.0.0.0", "local_port": 22, "remote_ip": "", "remote_port": 0,
//	     "state": "listen", "pid": 812, "start_time": "2023-11-14T21:00:00Z", "process": "sshd",
//	     "exe": "/usr/sbin/sshd", "cmdline": "sshd -D", "uid": 0, "user": "root", "container": "",
//	     "from": "2023-11-14T22:00:00Z", "until": null}
//	   ]}
//	 ]}
//
// (the writer puts each address and binding on one line). Fields:
//
//   - version: 1. hosts: array; host: non-empty name.
//   - addresses: ip (IPv4 or IPv6, no zone; IPv4-mapped read as IPv4),
//     from (required), until (null: still owned).
//   - bindings: proto "tcp" or "udp"; local_ip (an address, 0.0.0.0 or ::
//     for a wildcard) and local_port 0-65535, required; remote_ip ("" or
//     absent for listeners and unconnected UDP) and remote_port; state, as
//     ss(8) names it: listen, unconn, established, syn-sent, syn-recv,
//     fin-wait-1, fin-wait-2, time-wait, close-wait, last-ack, closing,
//     close; pid, start_time (null: unknown), process (the full name), exe,
//     cmdline, uid, user, container (optional; a binding with pid 0 and no
//     process, exe, cmdline or start time has no owner); from (required)
//     and until (null: still bound or end unknown; not before from).
//   - Times are RFC 3339 (written in UTC with nanoseconds when needed),
//     years 1900 to 2200. Unknown keys are ignored, keys may come in any
//     order.
//
// A binding without a remote address is matched like a listener; one with
// a remote address by its 5-tuple. A malformed file gives a *FileError
// naming the file, line and field, e.g.
// "bindings.json:12: hosts[0].bindings[3].local_port: 70000 out of range".
package tracker
