//go:build !linux

package main

import (
	"os"
	"testing"
)

// openPTY skips the test: pseudo-terminals are opened on Linux only.
func openPTY(t *testing.T) (ctl, tty *os.File) {
	t.Skip("pseudo-terminal tests run on Linux only")
	return nil, nil
}
