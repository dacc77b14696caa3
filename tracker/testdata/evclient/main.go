// Command evclient is the short-lived client of the tracker's event
// source tests. The tests build it and link it under distinctive names,
// so that the kernel's comm of each run says which it is:
//
//	NAME tcp ADDR   connect, send a byte, close, exit
//	NAME udp ADDR   send one datagram from a socket never bound (the
//	                kernel binds it on the fly), close, exit
//
// It prints "local=ADDR:PORT", its end of the conversation, after the
// socket is closed.
package main

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"

	"golang.org/x/sys/unix"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "evclient:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) != 2 {
		return errors.New("usage: evclient tcp|udp ADDR")
	}
	var local string
	var err error
	switch args[0] {
	case "tcp":
		local, err = tcpOnce(args[1])
	case "udp":
		local, err = udpOnce(args[1])
	default:
		err = fmt.Errorf("unknown mode %q", args[0])
	}
	if err != nil {
		return err
	}
	fmt.Printf("local=%s\n", local)
	return nil
}

func tcpOnce(addr string) (string, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return "", err
	}
	local := c.LocalAddr().String()
	if _, err := c.Write([]byte("x")); err != nil {
		return "", err
	}
	return local, c.Close()
}

func udpOnce(addr string) (string, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return "", err
	}
	family := unix.AF_INET6
	var sa unix.Sockaddr = &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
	if ap.Addr().Is4() {
		family = unix.AF_INET
		sa = &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return "", err
	}
	defer unix.Close(fd)
	if err := unix.Sendto(fd, []byte("x"), 0, sa); err != nil {
		return "", err
	}
	sn, err := unix.Getsockname(fd)
	if err != nil {
		return "", err
	}
	// The datagram's source is the destination's loopback address even
	// though the socket is bound to the wildcard.
	switch l := sn.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(ap.Addr(), uint16(l.Port)).String(), nil
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(ap.Addr(), uint16(l.Port)).String(), nil
	}
	return "", fmt.Errorf("unexpected local address %T", sn)
}
