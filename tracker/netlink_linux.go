package tracker

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// nlRecvBuf is the receive buffer size. The kernel fills dump datagrams up
// to 32 KiB when the reader's buffer allows it.
const nlRecvBuf = 64 << 10

// nlTimeout bounds one receive, so that a kernel that never answers
// cannot hang a scan.
const nlTimeout = 5 * time.Second

// nlConn is a blocking netlink socket with reusable buffers. It is not
// safe for concurrent use.
type nlConn struct {
	fd  int
	seq uint32
	req []byte
	buf []byte
	// unfinished is the sequence number of a dump abandoned before its
	// end (cancelled, or a parse error): the kernel refuses a new dump on
	// the socket (EBUSY) until the old one has been read to its end.
	unfinished uint32
}

// dialNetlink opens a netlink socket of the given protocol in the calling
// thread's network namespace.
func dialNetlink(proto int) (*nlConn, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
	if err != nil {
		return nil, fmt.Errorf("netlink socket (protocol %d): %w", proto, err)
	}
	tv := unix.NsecToTimeval(nlTimeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("netlink socket timeout: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bind netlink socket: %w", err)
	}
	return &nlConn{fd: fd, seq: uint32(time.Now().UnixNano()), buf: make([]byte, nlRecvBuf)}, nil
}

func (c *nlConn) close() error {
	if c.fd < 0 {
		return nil
	}
	err := unix.Close(c.fd)
	c.fd = -1
	return err
}

// dump sends the request built by build (given a fresh sequence number)
// and feeds every answer datagram to parse until it reports done.
func (c *nlConn) dump(ctx context.Context, build func(b []byte, seq uint32) []byte, parse func(b []byte, seq uint32) (bool, error)) error {
	if c.unfinished != 0 {
		if err := c.finish(ctx); err != nil {
			return err
		}
	}
	c.seq++
	seq := c.seq
	c.req = build(c.req[:0], seq)
	if err := unix.Sendto(c.fd, c.req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("netlink send: %w", err)
	}
	c.unfinished = seq
	if err := c.receive(ctx, seq, parse); err != nil {
		return err
	}
	c.unfinished = 0
	return nil
}

// receive feeds the answer datagrams of request seq to parse until it
// reports done.
func (c *nlConn) receive(ctx context.Context, seq uint32, parse func(b []byte, seq uint32) (bool, error)) error {
	// A dump of N sockets arrives in about N/200 datagrams; the bound only
	// protects against a kernel that never sends NLMSG_DONE.
	for range 1 << 20 {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := unix.Read(c.fd, c.buf)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return fmt.Errorf("netlink receive: %w", err)
		}
		done, err := parse(c.buf[:n], seq)
		if err != nil {
			return err
		}
		if done {
			return nil
		}
	}
	return errors.New("netlink dump: no end after 1M datagrams")
}

// finish reads an abandoned dump to its end, ignoring its content. It
// does not block: the kernel queues the next part of a dump as the
// previous one is read, so an empty queue means the dump is over (its
// NLMSG_DONE may have come with the last data read).
func (c *nlConn) finish(ctx context.Context) error {
	seq := c.unfinished
	for range 1 << 20 {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, _, err := unix.Recvfrom(c.fd, c.buf, unix.MSG_DONTWAIT)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if errors.Is(err, unix.EAGAIN) {
			break
		}
		if err != nil {
			return fmt.Errorf("netlink: finish an abandoned dump: %w", err)
		}
		done := false
		_ = nlMessages(c.buf[:n], func(h nlHeader, _ []byte, _ int) error {
			done = done || (h.Seq == seq && (h.Type == nlmsgDone || h.Type == nlmsgError))
			return nil
		})
		if done {
			break
		}
	}
	c.unfinished = 0
	return nil
}

// netlinkSource lists sockets with NETLINK_SOCK_DIAG inet_diag dumps, the
// way ss(8) does. Every TCP dump walks the kernel's whole established
// hash table, which costs the same whatever it holds (about 0.2 ms for
// the 256 Ki buckets of a host with 24 GB), so TCP is dumped for both
// families at once with the older TCPDIAG_GETSOCK request when the kernel
// takes it, and per family otherwise. With two sockets the UDP dumps run
// beside the TCP one.
type netlinkSource struct {
	c, cUDP *nlConn // cUDP nil: dump sequentially on c
	compat  bool    // TCPDIAG_GETSOCK works
	bufUDP  []Socket
}

// newNetlinkSource opens sock_diag sockets in the calling thread's network
// namespace. With check, it makes sure that a (small) dump works.
func newNetlinkSource(ctx context.Context, check bool) (*netlinkSource, error) {
	c, err := dialNetlink(unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return nil, err
	}
	s := &netlinkSource{c: c, compat: true}
	if check {
		if _, err := s.dumpOne(ctx, c, nil, afInet, ProtoUDP); err != nil {
			c.close()
			return nil, err
		}
	}
	if runtime.GOMAXPROCS(0) > 1 {
		if c2, err := dialNetlink(unix.NETLINK_SOCK_DIAG); err == nil {
			s.cUDP = c2
		}
	}
	return s, nil
}

// Name implements SocketSource.
func (s *netlinkSource) Name() string { return SourceNetlink }

// Close implements SocketSource.
func (s *netlinkSource) Close() error {
	err := s.c.close()
	if s.cUDP != nil {
		err = errors.Join(err, s.cUDP.close())
	}
	return err
}

// AppendSockets implements SocketSource.
func (s *netlinkSource) AppendSockets(ctx context.Context, dst []Socket) ([]Socket, error) {
	if s.cUDP == nil {
		dst, err := s.dumpTCP(ctx, s.c, dst)
		if err != nil {
			return dst, err
		}
		return s.dumpUDP(ctx, s.c, dst)
	}
	var errUDP error
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.bufUDP, errUDP = s.dumpUDP(ctx, s.cUDP, s.bufUDP[:0])
	}()
	dst, err := s.dumpTCP(ctx, s.c, dst)
	<-done
	if err == nil {
		err = errUDP
	}
	return append(dst, s.bufUDP...), err
}

// dumpTCP appends the TCP sockets of both families.
func (s *netlinkSource) dumpTCP(ctx context.Context, c *nlConn, dst []Socket) ([]Socket, error) {
	if !s.compat {
		dst, err := s.dumpOne(ctx, c, dst, afInet, ProtoTCP)
		if err != nil {
			return dst, err
		}
		return s.dumpOne(ctx, c, dst, afInet6, ProtoTCP)
	}
	n := len(dst)
	err := c.dump(ctx, appendCompatTCPRequest, func(b []byte, seq uint32) (bool, error) {
		var done bool
		var err error
		dst, done, err = parseDiagDump(b, seq, ProtoTCP, dst)
		return done, err
	})
	var ne *netlinkErrno
	if errors.As(err, &ne) && n == len(dst) {
		// The kernel refuses the old request (EINVAL, EOPNOTSUPP): dump
		// per family from now on.
		s.compat = false
		return s.dumpTCP(ctx, c, dst)
	}
	if err != nil {
		return dst[:n], fmt.Errorf("sock_diag TCP dump (TCPDIAG_GETSOCK): %w", err)
	}
	return dst, nil
}

// dumpUDP appends the UDP sockets of both families.
func (s *netlinkSource) dumpUDP(ctx context.Context, c *nlConn, dst []Socket) ([]Socket, error) {
	dst, err := s.dumpOne(ctx, c, dst, afInet, ProtoUDP)
	if err != nil {
		return dst, err
	}
	return s.dumpOne(ctx, c, dst, afInet6, ProtoUDP)
}

func (s *netlinkSource) dumpOne(ctx context.Context, c *nlConn, dst []Socket, family uint8, proto Proto) ([]Socket, error) {
	err := c.dump(ctx,
		func(b []byte, seq uint32) []byte { return appendDiagRequest(b, seq, family, proto) },
		func(b []byte, seq uint32) (bool, error) {
			var done bool
			var err error
			dst, done, err = parseDiagDump(b, seq, proto, dst)
			return done, err
		})
	if err != nil {
		return dst, fmt.Errorf("sock_diag dump of %s family %d: %w", proto, family, err)
	}
	return dst, nil
}

// addrLister lists the host's addresses with RTM_GETADDR.
type addrLister struct {
	c *nlConn
}

func newAddrLister() (*addrLister, error) {
	c, err := dialNetlink(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, err
	}
	return &addrLister{c: c}, nil
}

// appendAddrs appends every address of every interface to dst.
func (a *addrLister) appendAddrs(ctx context.Context, dst []netip.Addr) ([]netip.Addr, error) {
	err := a.c.dump(ctx, appendAddrRequest, func(b []byte, seq uint32) (bool, error) {
		var done bool
		var err error
		dst, done, err = parseAddrDump(b, seq, dst)
		return done, err
	})
	if err != nil {
		return dst, fmt.Errorf("rtnetlink address dump: %w", err)
	}
	return dst, nil
}

func (a *addrLister) close() error { return a.c.close() }
