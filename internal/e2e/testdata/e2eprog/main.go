// Command e2eprog makes the loopback traffic of the end-to-end test. The
// test copies it under distinctive names (nd-e2e-web, nd-e2e-udp,
// nd-e2e-cli), so the process names in the enriched flows tell who is who.
//
//	e2eprog web   print {"tcp4":..., "tcp6":...}, then echo TCP until stdin closes
//	e2eprog udp   print {"udp4":..., "udp6":...}, then echo UDP until stdin closes
//	e2eprog cli -tcp4 A -tcp6 A -udp4 A -udp6 A [-scale N]
//	              run the connection plan; print one JSON line per connection
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: e2eprog web|udp|cli ...")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "web":
		err = web()
	case "udp":
		err = udp()
	case "cli":
		err = cli(os.Args[2:])
	default:
		err = fmt.Errorf("unknown mode %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2eprog:", err)
		os.Exit(1)
	}
}

func web() error {
	l4, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return err
	}
	l6, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		return err
	}
	for _, l := range []net.Listener{l4, l6} {
		go func(l net.Listener) {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					io.Copy(c, c)
				}()
			}
		}(l)
	}
	json.NewEncoder(os.Stdout).Encode(map[string]string{"tcp4": l4.Addr().String(), "tcp6": l6.Addr().String()})
	io.Copy(io.Discard, os.Stdin)
	return nil
}

func udp() error {
	u4, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		return err
	}
	u6, err := net.ListenPacket("udp6", "[::1]:0")
	if err != nil {
		return err
	}
	for _, u := range []net.PacketConn{u4, u6} {
		go func(u net.PacketConn) {
			buf := make([]byte, 2048)
			for {
				n, a, err := u.ReadFrom(buf)
				if err != nil {
					return
				}
				u.WriteTo(buf[:n], a)
			}
		}(u)
	}
	json.NewEncoder(os.Stdout).Encode(map[string]string{"udp4": u4.LocalAddr().String(), "udp6": u6.LocalAddr().String()})
	io.Copy(io.Discard, os.Stdin)
	return nil
}

// Conn is one connection the client made, as the test needs it.
type Conn struct {
	Class  string    `json:"class"`
	Proto  string    `json:"proto"`
	Local  string    `json:"local"`
	Remote string    `json:"remote"`
	Start  time.Time `json:"start"`
	End    time.Time `json:"end"`
	Error  string    `json:"error,omitempty"`
}

// class is a kind of connection: how long it stays open.
type class struct {
	name     string
	count    int
	min, max time.Duration
	udp      bool
	tiny     bool
}

func cli(args []string) error {
	fs := flag.NewFlagSet("cli", flag.ContinueOnError)
	tcp4 := fs.String("tcp4", "", "TCP server, IPv4")
	tcp6 := fs.String("tcp6", "", "TCP server, IPv6")
	udp4 := fs.String("udp4", "", "UDP server, IPv4")
	udp6 := fs.String("udp6", "", "UDP server, IPv6")
	scale := fs.Int("scale", 1, "multiply every class's count")
	window := fs.Duration("window", 4*time.Second, "spread the connections over this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	classes := []class{
		{name: "long", count: 4, min: 1500 * time.Millisecond, max: 2500 * time.Millisecond},
		{name: "mid", count: 20, min: 100 * time.Millisecond, max: 500 * time.Millisecond},
		{name: "midlong", count: 10, min: 500 * time.Millisecond, max: time.Second},
		{name: "short", count: 20, min: 10 * time.Millisecond, max: 50 * time.Millisecond},
		{name: "tiny", count: 20, tiny: true},
		{name: "udp", count: 20, udp: true},
	}
	out := json.NewEncoder(os.Stdout)
	var mu sync.Mutex
	emit := func(c Conn) {
		mu.Lock()
		defer mu.Unlock()
		out.Encode(c)
	}
	var wg sync.WaitGroup
	for _, cl := range classes {
		n := cl.count * *scale
		for i := 0; i < n; i++ {
			wg.Add(1)
			v6 := i%2 == 1
			delay := time.Duration(rand.Int64N(int64(*window)))
			hold := cl.min
			if cl.max > cl.min {
				hold += time.Duration(rand.Int64N(int64(cl.max - cl.min)))
			}
			go func() {
				defer wg.Done()
				time.Sleep(delay)
				switch {
				case cl.udp:
					addr := *udp4
					if v6 {
						addr = *udp6
					}
					emit(udpOnce(addr))
				default:
					addr := *tcp4
					if v6 {
						addr = *tcp6
					}
					emit(tcpConn(cl, addr, hold))
				}
			}()
		}
	}
	wg.Wait()
	return nil
}

func tcpConn(cl class, addr string, hold time.Duration) Conn {
	c := Conn{Class: cl.name, Proto: "tcp", Start: time.Now()}
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		c.Error = err.Error()
		return c
	}
	c.Local, c.Remote = conn.LocalAddr().String(), conn.RemoteAddr().String()
	r := bufio.NewReader(conn)
	ping := func() error {
		if _, err := conn.Write([]byte("ping\n")); err != nil {
			return err
		}
		_, err := r.ReadString('\n')
		return err
	}
	if cl.tiny {
		// connect, send, close: no waiting for the echo.
		conn.Write([]byte("ping\n"))
		conn.Close()
		c.End = time.Now()
		return c
	}
	if err := ping(); err != nil {
		c.Error = err.Error()
	}
	deadline := c.Start.Add(hold)
	for time.Until(deadline) > 0 {
		time.Sleep(min(100*time.Millisecond, time.Until(deadline)))
		if err := ping(); err != nil {
			c.Error = err.Error()
			break
		}
	}
	conn.Close()
	c.End = time.Now()
	return c
}

func udpOnce(addr string) Conn {
	c := Conn{Class: "udp", Proto: "udp", Start: time.Now()}
	conn, err := net.Dial("udp", addr)
	if err != nil {
		c.Error = err.Error()
		return c
	}
	c.Local, c.Remote = conn.LocalAddr().String(), conn.RemoteAddr().String()
	conn.Write([]byte("ping"))
	conn.SetReadDeadline(time.Now().Add(time.Second))
	buf := make([]byte, 64)
	if _, err := conn.Read(buf); err != nil {
		c.Error = err.Error()
	}
	conn.Close()
	c.End = time.Now()
	return c
}
