package ebpf

import (
	"log/slog"
	"time"
)

// Defaults for Options.
const (
	DefaultRingBufferBytes = 512 << 10
	DefaultConversations   = 16384
	DefaultPollInterval    = 50 * time.Millisecond
	maxPollInterval        = time.Second
	// maxRingBufferBytes and maxConversations cap the options.
	maxRingBufferBytes = 256 << 20
	maxConversations   = 1 << 22
)

// Options configure Open. The zero value is ready to use.
type Options struct {
	// CgroupPath is the cgroup v2 directory the cgroup programs attach to;
	// they see the sockets of every process in it and its descendants.
	// Empty means the root of the cgroup v2 hierarchy: the first cgroup2
	// mount with root "/" in /proc/self/mountinfo or, when none is
	// mounted, a private cgroup2 mount made for the attachment and removed
	// right after it (the attachment holds the cgroup, not the mount).
	CgroupPath string
	// KernelBTF is a BTF file describing the running kernel, for kernels
	// built without /sys/kernel/btf/vmlinux. Empty means the kernel's own.
	// A path that cannot be read makes Open fail with ErrUnsupported,
	// which also lets tests simulate a host without BTF.
	KernelBTF string
	// RingBufferBytes is the size of the kernel-to-user ring buffer: a
	// power of two, at least a page. Zero means DefaultRingBufferBytes.
	// Each record takes 144 bytes.
	RingBufferBytes int
	// Conversations is how many UDP (socket, peer) pairs the kernel
	// remembers so that each is reported once (an LRU). Zero means
	// DefaultConversations.
	Conversations int
	// PollInterval is how long a record may wait in the ring buffer: the
	// kernel queues records without waking the reader (a wakeup per
	// record costs more than the rest of the work) unless a quarter of
	// the buffer is full, and Run collects them at this interval. Zero
	// means DefaultPollInterval; at most a second.
	PollInterval time.Duration
	// NoSendmsgHook leaves out cgroup/sendmsg4|6. The kernel locks the
	// socket around that hook for every sendto(2) on an unconnected UDP
	// socket: with it, a loopback flood of small datagrams costs about
	// 4% more CPU (70 ns a datagram on the test machine). Without it, such
	// a socket's owner is the process that created, bound or connected
	// it, even when another process (one it was passed to, a pre-forked
	// worker) sends.
	NoSendmsgHook bool
	// Logger receives load and attach details; nil discards them.
	Logger *slog.Logger
}

// Stats are the source's counters since Open.
type Stats struct {
	// Events is the number of events delivered to Run's callback.
	Events uint64
	// Submitted is the number of records the kernel wrote to the ring
	// buffer (Events lags it by what is still queued).
	Submitted uint64
	// RingbufDrops is the number of records lost because the ring buffer
	// was full (the consumer fell behind).
	RingbufDrops uint64
	// KernelDrops counts in-kernel failures that lose information: an
	// owner that could not be stored with its socket (sk_storage
	// allocation) or a conversation that could not be remembered (so it
	// may be reported again).
	KernelDrops uint64
	// Unowned is the number of records without an owner (sockets created
	// before Open, or a lost owner).
	Unowned uint64
	// Lost is the number of records discarded in user space because they
	// could not be decoded.
	Lost uint64
	// Missed is the number of times the kernel skipped the TCP state
	// program because it was already running on that CPU (a softirq
	// interrupting it mid-run); each may have lost a TCP event. It needs
	// Linux 5.12.
	Missed uint64
}
