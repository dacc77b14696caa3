package tracker

import (
	"context"
	"fmt"
	"net"
	"net/netip"

	"github.com/prometheus/procfs"
)

// procNetSource lists sockets by parsing /proc/net/{tcp,tcp6,udp,udp6}
// (of a procfs tree, or of one process's /proc/<pid>/net for another
// network namespace) with github.com/prometheus/procfs. It is the
// fallback when netlink sock_diag is unavailable: reading these files
// costs the kernel several milliseconds even when they are nearly empty.
type procNetSource struct {
	fs procfs.FS
}

// NewProcNetSource returns a SocketSource that reads the /proc/net files
// of fs, for example procfs.NewFS("/proc") or a fixture tree.
func NewProcNetSource(fs procfs.FS) SocketSource { return &procNetSource{fs: fs} }

// Name implements SocketSource.
func (s *procNetSource) Name() string { return SourceProcfs }

// Close implements SocketSource.
func (s *procNetSource) Close() error { return nil }

// AppendSockets implements SocketSource.
func (s *procNetSource) AppendSockets(ctx context.Context, dst []Socket) ([]Socket, error) {
	for _, f := range [...]struct {
		name  string
		proto Proto
	}{{"tcp", ProtoTCP}, {"tcp6", ProtoTCP}, {"udp", ProtoUDP}, {"udp6", ProtoUDP}} {
		if err := ctx.Err(); err != nil {
			return dst, err
		}
		var err error
		dst, err = s.appendFile(dst, f.name, f.proto)
		if err != nil {
			return dst, err
		}
	}
	return dst, nil
}

// procNetLine holds the fields of a procfs socket line the tracker uses;
// procfs returns them as pointers to an unexported type.
type procNetLine struct {
	local, remote         net.IP
	localPort, remotePort uint64
	st, uid, inode        uint64
}

// appendFile parses one /proc/net file. procfs indexes a UDP line's
// thirteenth column after checking for ten, so a malformed fixture would
// panic inside it: the panic is turned into an error naming the file.
func (s *procNetSource) appendFile(dst []Socket, name string, proto Proto) (out []Socket, err error) {
	defer func() {
		if r := recover(); r != nil {
			out, err = dst, fmt.Errorf("parse /proc/net/%s: malformed line (%v)", name, r)
		}
	}()
	var lines []procNetLine
	switch name {
	case "tcp", "tcp6":
		var t procfs.NetTCP
		// procfs deprecates these for netlink, which the scanner prefers;
		// this source is the fallback when netlink is not available.
		if name == "tcp" {
			t, err = s.fs.NetTCP() //lint:ignore SA1019 the /proc/net fallback
		} else {
			t, err = s.fs.NetTCP6() //lint:ignore SA1019 the /proc/net fallback
		}
		for _, l := range t {
			lines = append(lines, procNetLine{l.LocalAddr, l.RemAddr, l.LocalPort, l.RemPort, l.St, l.UID, l.Inode})
		}
	default:
		var u procfs.NetUDP
		if name == "udp" {
			u, err = s.fs.NetUDP()
		} else {
			u, err = s.fs.NetUDP6()
		}
		for _, l := range u {
			lines = append(lines, procNetLine{l.LocalAddr, l.RemAddr, l.LocalPort, l.RemPort, l.St, l.UID, l.Inode})
		}
	}
	if err != nil {
		return dst, fmt.Errorf("read /proc/net/%s: %w", name, err)
	}
	for i, l := range lines {
		sock, err := procNetSocket(l, proto)
		if err != nil {
			return dst, fmt.Errorf("/proc/net/%s entry %d: %w", name, i, err)
		}
		dst = append(dst, sock)
	}
	return dst, nil
}

func procNetSocket(l procNetLine, proto Proto) (Socket, error) {
	local, ok := netip.AddrFromSlice(l.local)
	if !ok {
		return Socket{}, fmt.Errorf("local address %v", l.local)
	}
	remote, ok := netip.AddrFromSlice(l.remote)
	if !ok {
		return Socket{}, fmt.Errorf("remote address %v", l.remote)
	}
	if l.localPort > 0xffff || l.remotePort > 0xffff {
		return Socket{}, fmt.Errorf("port %d or %d out of range", l.localPort, l.remotePort)
	}
	if l.st > 0xff || l.uid > 0xffffffff {
		return Socket{}, fmt.Errorf("state %d or uid %d out of range", l.st, l.uid)
	}
	return Socket{
		Proto:  proto,
		Local:  netip.AddrPortFrom(NormalizeAddr(local), uint16(l.localPort)),
		Remote: remoteAddrPort(remote, uint16(l.remotePort)),
		State:  socketState(proto, uint8(l.st)),
		Inode:  l.inode,
		UID:    uint32(l.uid),
	}, nil
}
