// Package ebpf is an event source for the tracker: eBPF programs that
// learn which process owns each new TCP connection and UDP conversation
// at the moment it starts, however short it is. Polling socket tables
// misses what lives less than a scan interval; this does not.
//
// It imports only the standard library, golang.org/x/sys and
// github.com/cilium/ebpf, not package tracker, so tracker can import it.
//
// # Use
//
//	src, err := ebpf.Open(ebpf.Options{Logger: log})
//	if errors.Is(err, ebpf.ErrUnsupported) {
//		log.Warn("eBPF source unavailable, polling only", "err", err) // once
//	}
//	go src.Run(ctx, func(ev ebpf.ConnEvent) { ... })   // until ctx is done
//	...
//	st := src.Stats()                                  // for /metrics
//	src.Close()                                        // detaches everything
//
// Each ConnEvent has a Kind (bind, listen, connect, accept, datagram,
// close), the protocol, family, local and remote address and port, the
// kernel socket cookie, the network namespace inode, a wall-clock Time
// and the Owner: thread id, process id (TGID), uid, gid, the process
// name (the thread-group leader's comm), the cgroup v2 id and the
// process start time (StartBoottime, the kernel value behind
// /proc/<pid>/stat field 22, and as wall-clock StartTime), so that pid
// reuse can be told apart. Owner.StartTicks gives field 22 exactly.
//
// # Hooks, and why
//
// The kernel here (and stock distribution kernels since about 5.15, with
// BTF) loads cgroup socket programs and BTF tracepoints; it refuses
// kprobes and fentry/fexit. So the programs use:
//
//   - cgroup/sock_create (UDP only): socket(2). Records the creator, so
//     every UDP socket has an owner before it sends.
//   - cgroup/post_bind4|6: bind(2), after the port is chosen. Records the
//     owner and reports KindBind.
//   - tp_btf/inet_sock_set_state, TCP only: CLOSE->SYN_SENT (connect(2),
//     or sendmsg with MSG_FASTOPEN) records the owner; CLOSE->LISTEN
//     (listen(2)) records it and reports KindListen; SYN_SENT->ESTABLISHED
//     or ->CLOSE reports KindConnect, with the local port, which is chosen
//     only after SYN_SENT is entered (and after cgroup/connect4 runs, which
//     is why connect4 is not used for TCP); LISTEN->SYN_RECV marks a new
//     child; SYN_RECV->ESTABLISHED reports KindAccept; a later ->CLOSE of a
//     reported socket reports KindClose (a failed connect is a KindConnect
//     with State close, not followed by a KindClose).
//   - cgroup/connect4|6 (UDP only): records the owner of a connected UDP
//     socket. The local port is chosen after this hook, so nothing is
//     reported here.
//   - cgroup/sendmsg4|6: runs for every sendto(2) on an unconnected UDP
//     socket; records the owner when the sending process differs from the
//     recorded one (a cheap tgid compare otherwise), so a socket passed to
//     or inherited by another process is attributed to the sender. The
//     kernel locks the socket around this hook; Options.NoSendmsgHook
//     leaves it out (see there for the trade).
//   - cgroup_skb/egress (UDP only): the first datagram of a socket to each
//     peer reports KindDatagram with the packet's real source address and
//     port (the socket may be bound to the wildcard). An LRU hash of
//     (socket cookie, peer) conversations, Options.Conversations entries,
//     keeps the report to one per conversation. TCP packets leave after
//     one socket-type check.
//   - cgroup/sock_release (UDP only): close(2) of the last descriptor of a
//     reported UDP socket reports KindClose.
//
// The cgroup programs attach to the root of the cgroup v2 hierarchy, so
// they see every process of the host (of the cgroup namespace, in a
// container). The root is the first cgroup2 mount with root "/" in
// /proc/self/mountinfo (/sys/fs/cgroup on unified hosts,
// /sys/fs/cgroup/unified on hybrid ones like this one). When cgroup2 is
// not mounted at all, Open mounts it on a private temporary directory,
// attaches, and unmounts it at once: an attachment holds the cgroup, not
// the mount. Options.CgroupPath attaches to a subtree instead. All links
// are bpf_links owned by the Source: Close, or the death of the process,
// detaches them; nothing is pinned.
//
// # Whose process: context
//
// Some of these hooks run in softirq, where the current task is whatever
// the CPU happened to be running: on loopback, the last ACK of a
// handshake is processed while the CLIENT is current, so taking the
// current task at SYN_RECV->ESTABLISHED would name the client as the
// server (TestTCPServerPassive fails exactly that way if the code does).
// The rule is therefore:
//
//   - The current task is read only in hooks that run in the system call
//     of the process operating on the socket: sock_create (socket; the
//     kernel skips it for its own sockets), post_bind (bind), connect4|6
//     (connect), sendmsg4|6 (sendto), and the CLOSE->SYN_SENT and
//     CLOSE->LISTEN transitions, which the kernel makes only from
//     connect(2)/sendmsg(2) and listen(2).
//   - What they read is stored with the socket, in a BPF_MAP_TYPE_SK_STORAGE
//     map created with BPF_F_CLONE. It is freed with the socket, so it
//     needs no bounding, and the kernel copies it to every child a
//     listener spawns: a passive connection inherits the listener's owner
//     at creation, in softirq, without reading the current task. With
//     SO_REUSEPORT each child inherits from the very listener that took
//     it.
//   - Every event, including those raised in softirq (connect completion,
//     accept, UDP egress, TCP close), takes its owner from that storage,
//     never from the current task. A socket that no process-context hook
//     saw (it predates Open) gets events with a nil Owner.
//
// Owner.Hook says which hook recorded the owner. For KindAccept the owner
// is the process that called listen(2) (Inherited is set). Where another
// process accepts (socket activation by systemd, inetd, pre-forked
// workers accepting on a listener their parent opened) that is the
// listener's creator, not the acceptor; a tracker that also polls sees
// the listener's current holder and can prefer it.
//
// # Timestamps
//
// The kernel stamps events with CLOCK_BOOTTIME (bpf_ktime_get_boot_ns,
// which counts suspend, like a task's start_boottime). Run converts to
// wall-clock time with an offset measured from paired clock reads, and
// re-measures it every 10 s to follow clock steps. KindConnect carries
// the time the SYN was sent, KindAccept the time the child was created.
//
// # Cost and its bounds
//
// Records go to user space through a BPF ring buffer
// (Options.RingBufferBytes, 512 KiB by default, 144 bytes a record). When
// it is full the kernel drops the record and counts it; nothing blocks
// the network path. Per-CPU counters, read by Stats, give records
// submitted, ring-buffer drops, in-kernel failures (owner storage or LRU
// insert failed) and records without owner; user space adds events
// delivered and records it could not decode.
//
// # Fallback
//
// Every reason Open can fail for on a host that cannot run it matches
// ErrUnsupported (with an *UnsupportedError carrying a one-line reason
// and the cause): not Linux, no BTF (/sys/kernel/btf/vmlinux; see
// Options.KernelBTF), bpf(2) not permitted (probed with a one-entry map
// first, so the error says "permission denied" rather than cilium/ebpf's
// feature-probe guess), a program the verifier rejects, an attach type
// the kernel lacks, no cgroup v2. Tests simulate failures with
// Options.KernelBTF pointing at a missing or corrupt file, a CgroupPath
// that is not cgroup2, and by running Open as an unprivileged user.
//
// # Why C and bpf2go rather than cilium/ebpf/asm
//
// The programs walk kernel structures (struct sock, inet_sock,
// task_struct) whose layout differs between kernels, so they need CO-RE
// relocations. clang emits them from plain C field accesses
// (preserve_access_index) and cilium/ebpf resolves them against the
// running kernel's BTF at load; hand-written asm would have to hard-code
// offsets or build the relocations by hand. C is also far easier to
// review than the ~2,600 instructions it compiles to. The cost is a build step:
// bpf2go compiles bpf/netdumper.bpf.c with clang into
// netdumper_bpf{el,eb}.o and Go loaders, all committed, so `go build`
// needs no clang. `make generate` rebuilds them and records their hashes
// in testdata/generated.sum; TestGeneratedCurrent (run by `make test`,
// hence by CI) fails when the C changed without regenerating or a
// generated file was edited, and, when the same clang version is
// installed, rebuilds and compares the bytes. bpf/kernel.h declares by
// hand the few kernel types, constants and helpers used (CO-RE makes field
// order irrelevant), instead of a 3 MB generated vmlinux.h, so no kernel
// or libbpf headers are needed either. The BPF code is dual BSD-3-Clause
// / GPL-2.0 because some helpers it calls are GPL-only.
package ebpf
