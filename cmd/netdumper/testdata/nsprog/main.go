// Command nsprog is a tiny TCP server or client for netdumper's network
// namespace test: "nsprog listen ADDR" accepts and holds connections,
// "nsprog dial ADDR" connects and holds the connection. Each prints
// "ready LOCAL-ADDRESS" once set up, then runs until killed.
package main

import (
	"fmt"
	"io"
	"net"
	"os"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: nsprog listen|dial ADDR")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "listen":
		ln, err := net.Listen("tcp", os.Args[2])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println("ready", ln.Addr())
		for {
			c, err := ln.Accept()
			if err != nil {
				os.Exit(1)
			}
			go io.Copy(io.Discard, c)
		}
	case "dial":
		c, err := net.Dial("tcp", os.Args[2])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println("ready", c.LocalAddr())
		io.Copy(io.Discard, c)
	}
}
