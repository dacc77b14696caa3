// SPDX-License-Identifier: (BSD-3-Clause OR GPL-2.0-only)
/*
 * netdumper.bpf.c: learn which process owns each new TCP connection and
 * UDP conversation, at the moment it starts.
 *
 * The rule that keeps attribution honest: the current task is read ONLY in
 * hooks that run in the system-call context of the process operating on
 * the socket (record_owner callers, marked "process context" below). The
 * result is stored with the socket (sk_storage map "owners") and every
 * event, including those raised in softirq, takes its owner from there,
 * never from whatever task happens to be current.
 *
 * Hook                           context              does
 * cgroup/sock_create (UDP only)  socket(2)            record owner
 * cgroup/post_bind4|6            bind(2)              record owner, emit BIND
 * cgroup/connect4|6 (UDP only)   connect(2)           record owner
 * cgroup/sendmsg4|6              sendto(2), UDP       record owner if the sender changed
 * tp_btf inet_sock_set_state
 *   CLOSE->SYN_SENT              connect(2)/sendmsg   record owner (local port not chosen yet)
 *   CLOSE->LISTEN                listen(2)            record owner, emit LISTEN
 *   SYN_SENT->ESTABLISHED|CLOSE  softirq (any)        emit CONNECT from stored owner
 *   LISTEN->SYN_RECV             softirq (any)        child inherits the listener's storage (BPF_F_CLONE)
 *   SYN_RECV->ESTABLISHED|CLOSE  softirq (any)        emit ACCEPT from inherited owner
 *   *->CLOSE                     any                  emit CLOSE for reported sockets
 * cgroup_skb/egress (UDP only)   any                  emit DATAGRAM once per (socket, peer)
 * cgroup/sock_release (UDP only) close(2)             emit CLOSE for reported sockets
 */
#include "kernel.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define nd_ntohs(x) __builtin_bswap16(x)
#define nd_htons(x) __builtin_bswap16(x)
#else
#define nd_ntohs(x) (x)
#define nd_htons(x) (x)
#endif

/* Event kinds; keep in sync with Kind in event.go. */
enum {
	KIND_BIND = 1,
	KIND_LISTEN = 2,
	KIND_CONNECT = 3,
	KIND_ACCEPT = 4,
	KIND_DATAGRAM = 5,
	KIND_CLOSE = 6,
};

/* Which hook recorded the owner; keep in sync with Hook in event.go. */
enum {
	HOOK_BIND = 1,
	HOOK_LISTEN = 2,
	HOOK_CONNECT = 3,
	HOOK_SENDMSG = 4,
	HOOK_CREATE = 5,
};

/* Flags (event and owner). */
#define F_OWNER 1     /* owner fields are valid */
#define F_INHERITED 2 /* owner is the listener's (passive open) */
#define F_REPORTED 4  /* owner only: an event was emitted for this socket */

/* Counter indices; keep in sync with the stat* constants in source_linux.go. */
enum {
	STAT_EVENTS = 0,     /* records submitted to the ring buffer */
	STAT_RINGBUF_FULL,   /* records lost: ring buffer full */
	STAT_NO_STORAGE,     /* owner not stored: sk_storage allocation failed */
	STAT_UNOWNED,        /* records submitted without a recorded owner */
	STAT_DEDUP_FULL,     /* conversation not remembered: LRU update failed */
	STAT_MAX,
};

/* Owner of a socket, stored with the socket. */
struct owner {
	__u64 since;          /* CLOCK_BOOTTIME ns: recorded / conversation began */
	__u64 cgroup_id;      /* cgroup v2 id of the task */
	__u64 start_boottime; /* group leader's start, CLOCK_BOOTTIME ns */
	__u64 netns;          /* network namespace inode of the task */
	__u32 pid;            /* thread id */
	__u32 tgid;           /* process id */
	__u32 uid;
	__u32 gid;
	char comm[16];        /* group leader's comm (the process name) */
	char thread_comm[16]; /* comm of the thread that acted */
	__u8 laddr[16];       /* local address and port first reported */
	__u16 lport;
	__u16 lfamily;
	__u8 hook;
	__u8 flags;
	__u8 _pad[2];
};

/* Ring-buffer record; keep in sync with decode in event.go. */
struct event {
	__u64 ts; /* CLOCK_BOOTTIME ns */
	__u64 cookie;
	__u64 cgroup_id;
	__u64 start_boottime;
	__u64 netns;
	__u32 pid;
	__u32 tgid;
	__u32 uid;
	__u32 gid;
	__u8 laddr[16]; /* network byte order; IPv4 in the first 4 bytes */
	__u8 raddr[16];
	__u16 lport; /* host byte order */
	__u16 rport;
	__u16 family;
	__u8 proto;
	__u8 kind;
	__u8 state;
	__u8 flags;
	__u8 hook;
	__u8 _pad1;
	char comm[16];
	char thread_comm[16];
	__u8 _pad2[4];
};

/* One UDP conversation: a socket and a peer. */
struct conv_key {
	__u64 cookie;
	__u8 raddr[16];
	__u16 rport;
	__u16 family;
	__u32 _pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC | BPF_F_CLONE);
	__type(key, int);
	__type(value, struct owner);
} owners SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct conv_key);
	__type(value, __u64);
} convs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 512 * 1024);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

/* Referenced so that the record type is in BTF (bpf2go -type event). */
const struct event *unused_event __attribute__((unused));

/*
 * Records are submitted without waking the reader, which collects them
 * every Options.PollInterval, unless at least wake_bytes are waiting: a
 * wakeup (irq_work) per record would cost more than the rest of the
 * program. Set by Open before loading.
 */
const volatile __u64 wake_bytes = 128 * 1024;

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &idx);
	if (v)
		(*v)++;
}

/* fill_owner reads the CURRENT task. Call it only from process context. */
static __always_inline void fill_owner(struct owner *o, __u8 hook, __u64 now)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u64 uid_gid = bpf_get_current_uid_gid();
	struct task_struct *task = bpf_get_current_task_btf();
	struct task_struct *leader = task->group_leader;

	o->since = now;
	o->pid = (__u32)pid_tgid;
	o->tgid = pid_tgid >> 32;
	o->uid = (__u32)uid_gid;
	o->gid = uid_gid >> 32;
	o->cgroup_id = bpf_get_current_cgroup_id();
	o->start_boottime = leader->start_boottime;
	o->netns = task->nsproxy->net_ns->ns.inum;
	bpf_get_current_comm(o->thread_comm, sizeof(o->thread_comm));
#pragma unroll
	for (int i = 0; i < 16; i++)
		o->comm[i] = leader->comm[i];
	o->hook = hook;
	o->flags |= F_OWNER;
}

/*
 * record_owner stores the current task as the socket's owner. Process
 * context only. cur receives the owner even when storage fails.
 */
static __always_inline struct owner *record_owner(void *sk, struct owner *cur, __u8 hook, __u64 now)
{
	struct owner *o = bpf_sk_storage_get(&owners, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);

	fill_owner(cur, hook, now);
	if (!o) {
		count(STAT_NO_STORAGE);
		return 0;
	}
	/* Keep what was reported about the socket; replace who owns it. */
	cur->flags |= o->flags & F_REPORTED;
	__builtin_memcpy(cur->laddr, o->laddr, 16);
	cur->lport = o->lport;
	cur->lfamily = o->lfamily;
	*o = *cur;
	return o;
}

static __always_inline struct event *new_event(__u8 kind, __u8 proto, __u64 ts)
{
	struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

	if (!e) {
		count(STAT_RINGBUF_FULL);
		return 0;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->kind = kind;
	e->proto = proto;
	e->ts = ts;
	return e;
}

static __always_inline void set_owner(struct event *e, const struct owner *o)
{
	if (!o || !(o->flags & F_OWNER)) {
		count(STAT_UNOWNED);
		return;
	}
	e->cgroup_id = o->cgroup_id;
	e->start_boottime = o->start_boottime;
	e->netns = o->netns;
	e->pid = o->pid;
	e->tgid = o->tgid;
	e->uid = o->uid;
	e->gid = o->gid;
	__builtin_memcpy(e->comm, o->comm, sizeof(e->comm));
	__builtin_memcpy(e->thread_comm, o->thread_comm, sizeof(e->thread_comm));
	e->hook = o->hook;
	e->flags = F_OWNER | (o->flags & F_INHERITED);
}

static __always_inline void submit(struct event *e)
{
	__u64 flags = BPF_RB_NO_WAKEUP;

	if (bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= wake_bytes)
		flags = BPF_RB_FORCE_WAKEUP;
	bpf_ringbuf_submit(e, flags);
	count(STAT_EVENTS);
}

/* remember_local keeps the first reported local address with the owner:
 * cgroup/sock_release may not read a socket's source address. */
static __always_inline void remember_local(struct owner *o, const struct event *e)
{
	if (!o || o->lport)
		return;
	__builtin_memcpy(o->laddr, e->laddr, 16);
	o->lport = e->lport;
	o->lfamily = e->family;
}

/* ---- bind ---- */

/* on_bind: post_bind runs at the end of bind(2), in the caller's context,
 * with the port chosen. v6 selects which source fields may be read (the
 * verifier allows src_ip4 only in post_bind4, src_ip6 only in post_bind6). */
static __always_inline void on_bind(struct bpf_sock *sk, int v6)
{
	struct owner cur = {};
	struct owner *o;
	struct event *e;
	__u32 proto = sk->protocol;
	__u64 now;

	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return;
	now = bpf_ktime_get_boot_ns();
	o = record_owner(sk, &cur, HOOK_BIND, now);
	if (sk->src_port == 0) /* IP_BIND_ADDRESS_NO_PORT: port chosen at connect */
		return;
	e = new_event(KIND_BIND, proto, now);
	if (!e)
		return;
	if (v6) {
		__u32 *l = (__u32 *)e->laddr;

		e->family = AF_INET6;
		l[0] = sk->src_ip6[0];
		l[1] = sk->src_ip6[1];
		l[2] = sk->src_ip6[2];
		l[3] = sk->src_ip6[3];
	} else {
		e->family = AF_INET;
		*(__u32 *)e->laddr = sk->src_ip4;
	}
	e->lport = sk->src_port;
	e->state = sk->state;
	e->cookie = bpf_get_socket_cookie(sk);
	set_owner(e, &cur);
	remember_local(o, e);
	submit(e);
	if (o)
		o->flags |= F_REPORTED;
}

SEC("cgroup/post_bind4")
int nd_post_bind4(struct bpf_sock *sk)
{
	on_bind(sk, 0);
	return 1;
}

SEC("cgroup/post_bind6")
int nd_post_bind6(struct bpf_sock *sk)
{
	on_bind(sk, 1);
	return 1;
}

/* ---- UDP socket(2): remember the creator ---- */

/* cgroup/sock_create runs in socket(2), in the caller's context; the kernel
 * does not run it for its own sockets. It gives every UDP socket an owner
 * before it sends, even when no later hook records one (an unbound socket
 * whose sendto is not hooked, Options.NoSendmsgHook). */
SEC("cgroup/sock_create")
int nd_sock_create(struct bpf_sock *sk)
{
	struct owner cur = {};

	if (sk->protocol == IPPROTO_UDP)
		record_owner(sk, &cur, HOOK_CREATE, bpf_ktime_get_boot_ns());
	return 1;
}

/* ---- UDP connect and sendto: remember who is talking ---- */

static __always_inline void on_udp_addr(struct bpf_sock_addr *ctx, __u8 hook)
{
	struct owner cur = {};
	struct bpf_sock *sk;
	struct owner *o;

	if (ctx->protocol != IPPROTO_UDP)
		return;
	sk = ctx->sk;
	if (!sk)
		return;
	if (hook == HOOK_SENDMSG) {
		/* Per datagram: refresh only when another process sends. */
		o = bpf_sk_storage_get(&owners, sk, 0, 0);
		if (o && (o->flags & F_OWNER) && o->tgid == (__u32)(bpf_get_current_pid_tgid() >> 32))
			return;
	}
	record_owner(sk, &cur, hook, bpf_ktime_get_boot_ns());
}

SEC("cgroup/connect4")
int nd_connect4(struct bpf_sock_addr *ctx)
{
	on_udp_addr(ctx, HOOK_CONNECT);
	return 1;
}

SEC("cgroup/connect6")
int nd_connect6(struct bpf_sock_addr *ctx)
{
	on_udp_addr(ctx, HOOK_CONNECT);
	return 1;
}

SEC("cgroup/sendmsg4")
int nd_sendmsg4(struct bpf_sock_addr *ctx)
{
	on_udp_addr(ctx, HOOK_SENDMSG);
	return 1;
}

SEC("cgroup/sendmsg6")
int nd_sendmsg6(struct bpf_sock_addr *ctx)
{
	on_udp_addr(ctx, HOOK_SENDMSG);
	return 1;
}

/* ---- UDP egress: first datagram of a socket to a peer ---- */

struct iphdr4 {
	__u8 ver_ihl;
	__u8 tos;
	__be16 tot_len;
	__be16 id;
	__be16 frag_off;
	__u8 ttl;
	__u8 protocol;
	__be16 check;
	__be32 saddr;
	__be32 daddr;
};

struct iphdr6 {
	__be32 ver_tc_flow;
	__be16 payload_len;
	__u8 nexthdr;
	__u8 hop_limit;
	__u8 saddr[16];
	__u8 daddr[16];
};

SEC("cgroup_skb/egress")
int nd_egress(struct __sk_buff *skb)
{
	struct conv_key key = {};
	__u8 laddr[16] = {};
	__be16 ports[2];
	struct bpf_sock *sk;
	struct owner *o;
	struct event *e;
	__u64 now;

	sk = skb->sk;
	if (!sk)
		return 1;
	sk = bpf_sk_fullsock(sk);
	if (!sk || sk->protocol != IPPROTO_UDP)
		return 1;

	if (skb->protocol == nd_htons(ETH_P_IP)) {
		struct iphdr4 ip;

		if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)))
			return 1;
		if (ip.protocol != IPPROTO_UDP || (ip.frag_off & nd_htons(0x1fff)))
			return 1;
		if (bpf_skb_load_bytes(skb, (ip.ver_ihl & 0xf) * 4, ports, sizeof(ports)))
			return 1;
		key.family = AF_INET;
		*(__u32 *)key.raddr = ip.daddr;
		*(__u32 *)laddr = ip.saddr;
	} else if (skb->protocol == nd_htons(ETH_P_IPV6)) {
		struct iphdr6 ip;

		if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)))
			return 1;
		if (ip.nexthdr != IPPROTO_UDP) /* extension headers: not followed */
			return 1;
		if (bpf_skb_load_bytes(skb, sizeof(ip), ports, sizeof(ports)))
			return 1;
		key.family = AF_INET6;
		__builtin_memcpy(key.raddr, ip.daddr, 16);
		__builtin_memcpy(laddr, ip.saddr, 16);
	} else {
		return 1;
	}
	key.rport = nd_ntohs(ports[1]);
	key.cookie = bpf_get_socket_cookie(skb);
	if (bpf_map_lookup_elem(&convs, &key))
		return 1;
	now = bpf_ktime_get_boot_ns();
	if (bpf_map_update_elem(&convs, &key, &now, BPF_NOEXIST)) {
		if (bpf_map_lookup_elem(&convs, &key))
			return 1; /* another CPU reported it first */
		count(STAT_DEDUP_FULL);
	}

	e = new_event(KIND_DATAGRAM, IPPROTO_UDP, now);
	if (!e)
		return 1;
	/* Created (ownerless) when missing, to remember F_REPORTED. */
	o = bpf_sk_storage_get(&owners, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	e->family = key.family;
	__builtin_memcpy(e->laddr, laddr, 16);
	__builtin_memcpy(e->raddr, key.raddr, 16);
	e->lport = nd_ntohs(ports[0]);
	e->rport = key.rport;
	e->state = sk->state;
	e->cookie = key.cookie;
	set_owner(e, o);
	remember_local(o, e);
	submit(e);
	if (o)
		o->flags |= F_REPORTED;
	return 1;
}

/* ---- UDP close ---- */

SEC("cgroup/sock_release")
int nd_sock_release(struct bpf_sock *sk)
{
	struct owner *o;
	struct event *e;

	if (sk->protocol != IPPROTO_UDP)
		return 1;
	o = bpf_sk_storage_get(&owners, sk, 0, 0);
	if (!o || !(o->flags & F_REPORTED))
		return 1;
	e = new_event(KIND_CLOSE, IPPROTO_UDP, bpf_ktime_get_boot_ns());
	if (!e)
		return 1;
	/* sock_release may read the peer but not the source address. */
	e->family = o->lport ? o->lfamily : sk->family;
	if (e->family == AF_INET6) {
		__u32 *r = (__u32 *)e->raddr;

		r[0] = sk->dst_ip6[0];
		r[1] = sk->dst_ip6[1];
		r[2] = sk->dst_ip6[2];
		r[3] = sk->dst_ip6[3];
	} else {
		*(__u32 *)e->raddr = sk->dst_ip4;
	}
	e->rport = nd_ntohs(sk->dst_port);
	__builtin_memcpy(e->laddr, o->laddr, 16);
	e->lport = o->lport;
	e->state = sk->state;
	e->cookie = bpf_get_socket_cookie(sk);
	set_owner(e, o);
	submit(e);
	return 1;
}

/* ---- TCP state changes ---- */

static __always_inline void tcp_addrs(struct event *e, struct sock *sk)
{
	struct tcp_sock *tp;
	__u16 family = sk->__sk_common.skc_family;
	__u16 lport = sk->__sk_common.skc_num;

	e->family = family;
	if (family == AF_INET6) {
		__builtin_memcpy(e->laddr, &sk->__sk_common.skc_v6_rcv_saddr, 16);
		__builtin_memcpy(e->raddr, &sk->__sk_common.skc_v6_daddr, 16);
	} else {
		*(__u32 *)e->laddr = sk->__sk_common.skc_rcv_saddr;
		*(__u32 *)e->raddr = sk->__sk_common.skc_daddr;
	}
	if (lport == 0) {
		/* inet_num is cleared when the port is released (->CLOSE). */
		tp = bpf_skc_to_tcp_sock(sk);
		if (tp)
			lport = nd_ntohs(tp->inet_conn.icsk_inet.inet_sport);
	}
	e->lport = lport;
	e->rport = nd_ntohs(sk->__sk_common.skc_dport);
	e->netns = sk->__sk_common.skc_net.net->ns.inum;
}

static __always_inline void emit_tcp(struct sock *sk, struct owner *o, __u8 kind, __u8 state, __u64 ts)
{
	struct event *e = new_event(kind, IPPROTO_TCP, ts);

	if (!e)
		return;
	set_owner(e, o);
	tcp_addrs(e, sk);
	e->state = state;
	e->cookie = bpf_get_socket_cookie(sk);
	submit(e);
	if (o)
		o->flags |= F_REPORTED;
}

SEC("tp_btf/inet_sock_set_state")
int nd_state(__u64 *ctx)
{
	struct sock *sk = (struct sock *)ctx[0];
	int oldstate = (int)ctx[1];
	int newstate = (int)ctx[2];
	struct owner cur = {};
	struct owner *o;
	__u64 now;

	if (sk->sk_protocol != IPPROTO_TCP)
		return 0;
	now = bpf_ktime_get_boot_ns();

	switch (newstate) {
	case TCP_SYN_SENT:
		/* tcp_v4_connect/tcp_v6_connect: connect(2) or a fast-open
		 * sendmsg, in the caller's context. */
		record_owner(sk, &cur, HOOK_CONNECT, now);
		return 0;
	case TCP_LISTEN:
		/* inet_csk_listen_start: listen(2), in the caller's context. */
		o = record_owner(sk, &cur, HOOK_LISTEN, now);
		if (sk->__sk_common.skc_num == 0) /* listen without bind: port not chosen yet */
			return 0;
		emit_tcp(sk, o ? o : &cur, KIND_LISTEN, TCP_LISTEN, now);
		return 0;
	}

	switch (oldstate) {
	case TCP_SYN_SENT:
		/* SYN-ACK or RST processed, usually in softirq: owner from
		 * storage (created ownerless when missing, to remember
		 * F_REPORTED). */
		o = bpf_sk_storage_get(&owners, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
		emit_tcp(sk, o, KIND_CONNECT, newstate, o && o->since ? o->since : now);
		return 0;
	case TCP_LISTEN:
		if (newstate != TCP_SYN_RECV)
			break;
		/* New child of a listener (softirq): its storage is a clone of
		 * the listener's. Mark it inherited and restart the clock. */
		o = bpf_sk_storage_get(&owners, sk, 0, 0);
		if (o) {
			o->since = now;
			o->flags = (o->flags & F_OWNER) | F_INHERITED;
		}
		return 0;
	case TCP_SYN_RECV:
		o = bpf_sk_storage_get(&owners, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
		emit_tcp(sk, o, KIND_ACCEPT, newstate, o && o->since ? o->since : now);
		return 0;
	}

	if (newstate == TCP_CLOSE) {
		o = bpf_sk_storage_get(&owners, sk, 0, 0);
		if (o && (o->flags & F_REPORTED))
			emit_tcp(sk, o, KIND_CLOSE, TCP_CLOSE, now);
	}
	return 0;
}
