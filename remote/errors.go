package remote

import (
	"errors"
	"fmt"

	"github.com/netdumper/netdumper/tracker"
)

// Errors of the client.
var (
	// ErrResync means the events the client asked for are gone from the
	// tracker's ring (or the tracker restarted, or dropped the client for
	// reading too slowly): fetch /v1/bindings again and continue from its
	// sequence number. It is tracker.ErrResync, so errors.Is works with
	// either.
	ErrResync = tracker.ErrResync
	// ErrUnauthorized means the tracker refused the bearer token (HTTP
	// 401): none was given, or the wrong one. The client's error wraps it
	// with which of the two, and where the token came from
	// (ClientOptions.TokenSource).
	ErrUnauthorized = errors.New("unauthorized (HTTP 401)")
	// ErrInsecureListen refuses a server on a non-loopback address
	// without a token (see ServerOptions.AllowNoAuth).
	ErrInsecureListen = errors.New("refusing to serve on a non-loopback address without a token (give a token, or allow it explicitly with --insecure-no-auth)")
)

// StatusError is an HTTP answer other than success.
type StatusError struct {
	URL     string // the request
	Code    int    // HTTP status
	Message string // the server's error message, if any
}

func (e *StatusError) Error() string {
	if e.Message != "" {
		return fmt.Sprintf("%s: HTTP %d: %s", e.URL, e.Code, e.Message)
	}
	return fmt.Sprintf("%s: HTTP %d", e.URL, e.Code)
}

// Temporary reports whether trying again later may succeed (server busy
// or failing, proxies).
func (e *StatusError) Temporary() bool {
	return e.Code == 429 || e.Code >= 500
}
