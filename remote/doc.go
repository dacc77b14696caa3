// Package remote serves a tracker's bindings over HTTP and reads them
// from other machines: the Server runs beside a tracker (`netdumper
// serve`), the Client, Mirror and Pool on the collector (`enrich`, the
// TUI, `bindings --tracker`).
//
// # Endpoints
//
// All answers are JSON; the API is read-only and versioned under /v1/.
//
//	GET /v1/bindings                        current bindings and addresses
//	GET /v1/history?from=RFC3339&to=RFC3339 binding intervals overlapping the window (streamed)
//	GET /v1/events?since=SEQ                live events after SEQ (NDJSON stream)
//	GET /healthz                            "ok" (no token needed)
//	GET /metrics                            Prometheus text format
//
// /v1/bindings answers a bindings file (see the tracker package: version
// 1, hosts, one host with its addresses and bindings, one object per
// line) with two more top-level keys: "seq", the sequence number of the
// last event the view includes, and "time", the scan it reflects; and
// "denied", the pids whose sockets the scan could not see, when there
// are any. Open bindings have "until": null. Bindings carry three more
// keys that bindings files leave out: "inode", "netns" (the socket's
// network namespace inode) and "inherited" (an inode-0 socket attributed
// to its listener), omitted when zero. Any bindings file reader accepts
// the document.
//
// /v1/history answers exactly what `netdumper bindings export` writes for
// the same window: every binding interval overlapping [from, to] and the
// host's address intervals. from and to are RFC 3339 times; either may be
// left out (an open side). The answer is streamed from the store; if the
// store fails midway the connection is cut, so a client sees a truncated
// document, never a short well-formed one.
//
// /v1/events is a stream of JSON lines (application/x-ndjson), each an
// object with a "type":
//
//	{"type":"hello","seq":41,"host":"web1","time":"..."}             first line: the stream starts after event 41
//	{"type":"event","seq":42,"time":"...","kind":"bound","binding":{...}}
//	{"type":"heartbeat","seq":42,"time":"..."}                       every 15 s when idle; seq is the tracker's last
//	{"type":"resync","seq":97,"error":"..."}                         last line: events were lost, start over
//
// kind is "bound", "unbound" or "owner-changed"; binding is a binding
// object as in /v1/bindings (for unbound, the binding as it was, with its
// "until"). Sequence numbers increase by one per event; a client that
// sees a gap must resync. since defaults to the current sequence number
// (only new events). A client resyncs by fetching /v1/bindings and
// streaming from its "seq". The server tells it to when:
//
//   - since has left the tracker's event ring, is ahead of it, or is from
//     before the tracker restarted: 410 Gone, with {"error": ...,
//     "resync": true};
//   - the client read too slowly and its bounded queue (StreamBuffer
//     events) overflowed: a resync line, then the stream ends. A client
//     that does not take a write within WriteTimeout is disconnected; it
//     reconnects with its last sequence number, and gets 410 if the
//     events it missed are gone.
//
// Streams beyond MaxStreams are refused with 503 and Retry-After.
//
// # Errors
//
// Errors are {"error": "message"} with a status: 400 for malformed or
// unknown query parameters (the message names the parameter), 401 for a
// missing or wrong token, 404/405 for other paths and methods, 410 as
// above, 500 when the store fails, 503 when streams are exhausted.
//
// # Security
//
// Every request but /healthz needs "Authorization: Bearer TOKEN" when the
// server has a token; the token's SHA-256 is compared in constant time.
// Serve refuses a non-loopback listener without a token unless
// AllowNoAuth. With TLS (ServerTLSConfig) the server can require client
// certificates signed by a given CA. Timeouts bound reading request
// headers and bodies, each write, and idle keep-alive connections.
//
// # Client side
//
// Client fetches a view (Bindings), history (History, HostHistory,
// Export) and event streams (Events). Mirror keeps a copy of a tracker's
// current bindings: it reconnects with exponential backoff and jitter
// and fetches the whole view again after a gap. Pool asks many trackers
// concurrently; a tracker that is down is reported once and never holds
// up the others; Pool.Index builds a tracker.Index from all of them, each
// host with its own addresses. On the command line a tracker with its own
// token is written "URL#token-file=PATH" (ParseTarget).
package remote
