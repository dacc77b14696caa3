// Command helper is the child process of the eBPF source tests. The tests
// build it once and link it under distinctive names; it picks its job from
// the name it was started under, so that the kernel's comm of each child
// says what it is:
//
//	nd-bpf-tcpcli ADDR [wait]          connect, send a byte, close
//	nd-bpf-udpcli ADDR sendto|connect|inherited [wait]
//	                                   send one datagram from an unbound socket
//	                                   (inherited: sendto from fd 3, a socket
//	                                   the parent made)
//	nd-bpf-tcpsrv NETWORK              listen on loopback, accept until stdin closes
//	nd-bpf-open                        Open the source, check it sees itself, Close
//
// Clients print "local=ADDR:PORT" (their end of the conversation). With
// "wait" they then block until stdin is closed, so the test can read their
// /proc entries while they are alive.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/netdumper/netdumper/tracker/ebpf"
)

func main() {
	if err := run(filepath.Base(os.Args[0]), os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(1)
	}
}

func run(name string, args []string) error {
	switch name {
	case "nd-bpf-tcpcli":
		if len(args) < 1 {
			return errors.New("usage: nd-bpf-tcpcli ADDR [wait]")
		}
		c, err := net.Dial("tcp", args[0])
		if err != nil {
			return err
		}
		local := c.LocalAddr().String()
		if _, err := c.Write([]byte("x")); err != nil {
			return err
		}
		if err := c.Close(); err != nil {
			return err
		}
		fmt.Printf("local=%s\n", local)
		return maybeWait(args[1:])
	case "nd-bpf-udpcli":
		if len(args) < 2 {
			return errors.New("usage: nd-bpf-udpcli ADDR sendto|connect [wait]")
		}
		local, err := udpOnce(args[0], args[1])
		if err != nil {
			return err
		}
		fmt.Printf("local=%s\n", local)
		return maybeWait(args[2:])
	case "nd-bpf-tcpsrv":
		if len(args) < 1 {
			return errors.New("usage: nd-bpf-tcpsrv tcp4|tcp6")
		}
		return serve(args[0])
	case "nd-bpf-open":
		return openSelf()
	}
	return fmt.Errorf("unknown helper name %q", name)
}

func maybeWait(args []string) error {
	if len(args) > 0 && args[0] == "wait" {
		_, err := io.Copy(io.Discard, os.Stdin)
		return err
	}
	return nil
}

// udpOnce sends one datagram to addr from a fresh socket that is never
// bound explicitly (mode sendto: the kernel binds it on the fly; connect:
// at connect time), or with sendto(2) from the inherited fd 3 (inherited).
func udpOnce(addr, mode string) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return netip.AddrPort{}, err
	}
	family := unix.AF_INET6
	var sa unix.Sockaddr = &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
	if ap.Addr().Is4() {
		family = unix.AF_INET
		sa = &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	}
	fd := 3
	if mode != "inherited" {
		fd, err = unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return netip.AddrPort{}, err
		}
	}
	defer unix.Close(fd)
	if mode == "connect" {
		if err := unix.Connect(fd, sa); err != nil {
			return netip.AddrPort{}, err
		}
		if err := unix.Send(fd, []byte("x"), 0); err != nil {
			return netip.AddrPort{}, err
		}
	} else if err := unix.Sendto(fd, []byte("x"), 0, sa); err != nil {
		return netip.AddrPort{}, err
	}
	local, err := unix.Getsockname(fd)
	if err != nil {
		return netip.AddrPort{}, err
	}
	switch l := local.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(l.Addr), uint16(l.Port)), nil
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(l.Addr), uint16(l.Port)), nil
	}
	return netip.AddrPort{}, fmt.Errorf("unexpected local address %T", local)
}

// serve listens on loopback, prints "addr=ADDR:PORT", then accepts and
// drains connections until stdin is closed.
func serve(network string) error {
	host := "127.0.0.1:0"
	if network == "tcp6" {
		host = "[::1]:0"
	}
	ln, err := net.Listen(network, host)
	if err != nil {
		return err
	}
	fmt.Printf("addr=%s\n", ln.Addr())
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		ln.Close()
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		go func() {
			_, _ = io.Copy(io.Discard, c)
			c.Close()
		}()
	}
}

// openSelf opens the source, makes one TCP connection to itself and
// prints what it saw: "open=ok event=ok", or "open=error unsupported=BOOL
// err=...".
func openSelf() error {
	src, err := ebpf.Open(ebpf.Options{})
	if err != nil {
		fmt.Printf("open=error unsupported=%t err=%v\n", errors.Is(err, ebpf.ErrUnsupported), err)
		return nil
	}
	defer src.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	seen := make(chan struct{})
	go func() {
		_ = src.Run(ctx, func(ev ebpf.ConnEvent) {
			if ev.Kind == ebpf.KindConnect && ev.Remote.String() == ln.Addr().String() &&
				ev.Owner != nil && int(ev.Owner.TGID) == os.Getpid() {
				select {
				case <-seen:
				default:
					close(seen)
				}
			}
		})
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return err
	}
	c.Close()
	select {
	case <-seen:
		fmt.Println("open=ok event=ok")
	case <-ctx.Done():
		fmt.Println("open=ok event=missing")
	}
	return nil
}
