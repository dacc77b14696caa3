//go:build linux

// Command sockload opens a given number of TCP and UDP sockets, IPv4 and
// IPv6, spread over a given number of child processes, for benchmarking
// socket scanners. It prints "READY <n> sockets in <p> processes" once
// every child holds its sockets, then waits until stdin closes or it gets
// SIGINT/SIGTERM, and stops its children by pid.
//
// Each child holds two TCP listeners (127.0.0.1 and ::1), connected
// loopback TCP pairs (both ends, accepted) for about half of its sockets,
// and bound UDP sockets (a quarter of them IPv6) for the rest.
//
//	sockload -sockets 10000 -procs 100
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
)

func main() {
	sockets := flag.Int("sockets", 1000, "total number of sockets")
	procs := flag.Int("procs", 100, "number of child processes")
	child := flag.Int("child", -1, "internal: run as a child holding this many sockets")
	flag.Parse()
	if *child >= 0 {
		if err := runChild(*child); err != nil {
			fmt.Fprintln(os.Stderr, "sockload child:", err)
			os.Exit(1)
		}
		return
	}
	if err := runParent(*sockets, *procs); err != nil {
		fmt.Fprintln(os.Stderr, "sockload:", err)
		os.Exit(1)
	}
}

func runParent(total, procs int) error {
	if procs < 1 || total < 0 {
		return fmt.Errorf("need -procs >= 1 and -sockets >= 0")
	}
	// Handle SIGINT and SIGTERM for the whole life of the parent, so that
	// a signal during shutdown cannot kill it before it has stopped every
	// child.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	self, err := os.Executable()
	if err != nil {
		return err
	}
	var cmds []*exec.Cmd
	defer func() {
		for _, c := range cmds {
			_ = c.Process.Kill()
			_ = c.Wait()
		}
	}()
	for i := range procs {
		n := total / procs
		if i < total%procs {
			n++
		}
		c := exec.Command(self, "-child", strconv.Itoa(n))
		c.Stderr = os.Stderr
		// Children die with the parent even if it is killed outright.
		c.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		out, err := c.StdoutPipe()
		if err != nil {
			return err
		}
		if err := c.Start(); err != nil {
			return err
		}
		cmds = append(cmds, c)
		line, err := bufio.NewReader(out).ReadString('\n')
		if err != nil || line != "ready\n" {
			return fmt.Errorf("child %d (pid %d) did not get ready: %q %v", i, c.Process.Pid, line, err)
		}
	}
	fmt.Printf("READY %d sockets in %d processes (parent pid %d)\n", total, procs, os.Getpid())
	eof := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		close(eof)
	}()
	select {
	case <-sig:
	case <-eof:
	}
	return nil
}

// runChild opens n sockets and holds them until killed.
func runChild(n int) error {
	var hold []io.Closer
	l4, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return err
	}
	l6, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		return err
	}
	hold = append(hold, l4, l6)
	left := n - 2
	pairs := left / 4 // half of the remaining sockets as connected pairs
	for i := range pairs {
		l, network := l4, "tcp4"
		if i%4 == 3 {
			l, network = l6, "tcp6"
		}
		c, err := net.Dial(network, l.Addr().String())
		if err != nil {
			return err
		}
		a, err := l.Accept()
		if err != nil {
			return err
		}
		hold = append(hold, c, a)
	}
	for i := range left - 2*pairs {
		network, addr := "udp4", "127.0.0.1:0"
		if i%4 == 3 {
			network, addr = "udp6", "[::1]:0"
		}
		u, err := net.ListenPacket(network, addr)
		if err != nil {
			return err
		}
		hold = append(hold, u)
	}
	fmt.Println("ready")
	// Hold the sockets until the parent stops this child.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	for _, c := range hold {
		c.Close()
	}
	return nil
}
