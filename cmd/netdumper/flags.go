package main

import (
	"net"
	"time"

	"github.com/netdumper/netdumper/tracker"
)

// Checks of flag values shared by several commands. Each returns a usage
// error naming the flag and its value.

// checkInterval checks a scan interval (serve --interval, tui --interval):
// the tracker refuses anything shorter than tracker.MinInterval.
func checkInterval(flag string, d time.Duration) error {
	if d < tracker.MinInterval {
		return usagef("%s %v: at least %v", flag, d, tracker.MinInterval)
	}
	return nil
}

// checkNotNegative checks a duration that may be 0 but not negative.
func checkNotNegative(flag string, d time.Duration) error {
	if d < 0 {
		return usagef("%s %v: must not be negative", flag, d)
	}
	return nil
}

// checkPositive checks a duration that must be more than 0.
func checkPositive(flag string, d time.Duration) error {
	if d <= 0 {
		return usagef("%s %v: must be more than 0", flag, d)
	}
	return nil
}

// checkListen checks a listen address: HOST:PORT (HOST may be empty, for
// every address), PORT a number from 0 to 65535 or a service name.
func checkListen(flag, addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" {
		return usagef("%s %q: want HOST:PORT, like 127.0.0.1:7701 or [::]:7701", flag, addr)
	}
	if _, err := net.LookupPort("tcp", port); err != nil {
		return usagef("%s %q: port %q: want a number from 0 to 65535", flag, addr, port)
	}
	return nil
}
