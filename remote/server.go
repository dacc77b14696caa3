package remote

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/netdumper/netdumper/tracker"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Defaults of ServerOptions.
const (
	DefaultListen            = "127.0.0.1:7701"
	DefaultMaxStreams        = 256
	DefaultStreamBuffer      = 1024
	DefaultHeartbeat         = 15 * time.Second
	DefaultWriteTimeout      = 10 * time.Second
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = 30 * time.Second
	DefaultIdleTimeout       = 120 * time.Second
	// shutdownGrace is how long Serve waits for requests in progress
	// when its context ends.
	shutdownGrace = 5 * time.Second
)

// Source is what the server serves: a *tracker.Tracker.
type Source interface {
	Host() string
	Current() *tracker.View
	Subscribe(seq uint64, buffer int) (*tracker.Subscription, error)
	Export(ctx context.Context, w io.Writer, from, to time.Time) error
	Stats() tracker.Stats
}

var _ Source = (*tracker.Tracker)(nil)

// ServerOptions configure a Server.
type ServerOptions struct {
	// Source is the tracker served (required).
	Source Source
	// Token is the bearer token every request but /healthz must carry.
	// Empty: no authentication, which Serve allows only on a loopback
	// address unless AllowNoAuth is set.
	Token string
	// AllowNoAuth lets Serve listen on a non-loopback address without a
	// token (--insecure-no-auth).
	AllowNoAuth bool
	// TLS, when set, makes Serve speak HTTPS with it (see
	// ServerTLSConfig; client certificates are verified when it says so).
	TLS *tls.Config
	// MaxStreams bounds the concurrent /v1/events streams
	// (DefaultMaxStreams when 0); more are refused with 503.
	MaxStreams int
	// StreamBuffer bounds how far one stream may fall behind
	// (DefaultStreamBuffer when 0): a client with more events than that
	// unsent when a scan's events arrive is told to resync and
	// disconnected. One scan's events always go to a client that keeps
	// up, however many.
	StreamBuffer int
	// Heartbeat is the interval of heartbeat lines on idle streams
	// (DefaultHeartbeat when 0).
	Heartbeat time.Duration
	// WriteTimeout bounds each write to a client, and whole answers other
	// than streams (DefaultWriteTimeout when 0): a stream whose client
	// does not take a write within it is dropped.
	WriteTimeout time.Duration
	// ReadHeaderTimeout, ReadTimeout and IdleTimeout are those of
	// http.Server (defaults DefaultReadHeaderTimeout, DefaultReadTimeout,
	// DefaultIdleTimeout).
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	IdleTimeout       time.Duration
	// Collectors are extra Prometheus collectors for /metrics (the
	// socket event source's counters, for example).
	Collectors []prometheus.Collector
	// Logger receives the server's logs (nil: discard).
	Logger *slog.Logger
}

// Server serves a tracker's bindings, history and events over HTTP (see
// the package documentation). It is an http.Handler; Serve runs it on a
// listener with timeouts and TLS.
type Server struct {
	opts    ServerOptions
	log     *slog.Logger
	mux     *http.ServeMux
	metrics *serverMetrics
	check   func(token string) bool
	streams chan struct{} // semaphore of event streams

	snapMu   sync.Mutex // caches the encoded current view
	snapView *tracker.View
	snapBody []byte
}

// NewServer returns a server of opts.Source.
func NewServer(opts ServerOptions) (*Server, error) {
	if opts.Source == nil {
		return nil, errors.New("remote server: no source")
	}
	if opts.MaxStreams <= 0 {
		opts.MaxStreams = DefaultMaxStreams
	}
	if opts.StreamBuffer <= 0 {
		opts.StreamBuffer = DefaultStreamBuffer
	}
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = DefaultHeartbeat
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = DefaultWriteTimeout
	}
	if opts.ReadHeaderTimeout <= 0 {
		opts.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if opts.ReadTimeout <= 0 {
		opts.ReadTimeout = DefaultReadTimeout
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = DefaultIdleTimeout
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m, err := newServerMetrics(opts.Source, opts.Collectors)
	if err != nil {
		return nil, fmt.Errorf("remote server: metrics: %w", err)
	}
	s := &Server{opts: opts, log: logger, metrics: m, streams: make(chan struct{}, opts.MaxStreams)}
	s.check = tokenChecker(opts.Token)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/bindings", s.handleBindings)
	mux.HandleFunc("GET /v1/history", s.handleHistory)
	mux.HandleFunc("GET /v1/events", s.handleEvents)
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorLog: slogPrinter{logger}}))
	s.mux = mux
	return s, nil
}

// tokenChecker compares the SHA-256 of a presented token with the
// token's in constant time: neither the content nor the length of the
// token shows in the time taken.
func tokenChecker(token string) func(string) bool {
	if token == "" {
		return nil
	}
	want := sha256.Sum256([]byte(token))
	return func(got string) bool {
		sum := sha256.Sum256([]byte(got))
		return subtle.ConstantTimeCompare(sum[:], want[:]) == 1
	}
}

type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Println(v ...any) { p.log.Error(fmt.Sprint(v...)) }

// endpoints names the metrics label of a path.
var endpoints = map[string]string{
	"/v1/bindings": "bindings",
	"/v1/history":  "history",
	"/v1/events":   "events",
	"/healthz":     "healthz",
	"/metrics":     "metrics",
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	endpoint, ok := endpoints[r.URL.Path]
	if !ok {
		endpoint = "other"
	}
	rw := &statusWriter{ResponseWriter: w}
	defer func() {
		code := rw.code
		if code == 0 {
			code = http.StatusOK
		}
		s.metrics.requests.WithLabelValues(endpoint, strconv.Itoa(code)).Inc()
		if endpoint != "events" {
			s.metrics.duration.WithLabelValues(endpoint).Observe(time.Since(start).Seconds())
		}
	}()
	rw.Header().Set("Cache-Control", "no-store")
	rw.Header().Set("X-Content-Type-Options", "nosniff")
	if r.URL.Path == "/healthz" {
		s.handleHealth(rw, r)
		return
	}
	if s.check != nil && !s.check(bearerToken(r)) {
		s.metrics.authFailures.Inc()
		rw.Header().Set("WWW-Authenticate", `Bearer realm="netdumper"`)
		writeError(rw, http.StatusUnauthorized, "missing or wrong bearer token", false)
		return
	}
	if _, pattern := s.mux.Handler(r); pattern == "" {
		// What the mux would answer in text: JSON, as every error.
		if endpoint != "other" {
			allow := "GET, HEAD"
			if endpoint == "events" {
				allow = http.MethodGet // a stream has no HEAD (handleEvents)
			}
			rw.Header().Set("Allow", allow)
			writeError(rw, http.StatusMethodNotAllowed, fmt.Sprintf("method not allowed: %s takes GET, not %s", r.URL.Path, r.Method), false)
			return
		}
		writeError(rw, http.StatusNotFound, fmt.Sprintf("not found: %s (endpoints: /v1/bindings, /v1/history, /v1/events, /healthz, /metrics)", r.URL.Path), false)
		return
	}
	s.mux.ServeHTTP(rw, r)
}

// bearerToken returns the token of an "Authorization: Bearer" header.
func bearerToken(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) < 7 || !strings.EqualFold(h[:7], "bearer ") {
		return ""
	}
	return strings.TrimSpace(h[7:])
}

// statusWriter records the status code; Unwrap lets
// http.ResponseController reach the connection.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// writeError answers with a JSON error body.
func writeError(w http.ResponseWriter, code int, msg string, resync bool) {
	body, _ := json.Marshal(errorBody{Error: msg, Resync: resync})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(append(body, '\n'))
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		writeError(w, http.StatusMethodNotAllowed, "method not allowed", false)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, "ok\n")
}

// queryParams parses the request's query, refusing parameters other than
// allowed and repeated ones, and returns each parameter's value. Handlers
// read values from it, never from r.URL.Query: that parser drops pairs
// containing ';', so a value this check saw could otherwise be ignored.
func queryParams(r *http.Request, allowed ...string) (map[string]string, error) {
	q, err := parseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, err
	}
	params := make(map[string]string, len(q))
	for k, vs := range q {
		ok := false
		for _, a := range allowed {
			ok = ok || k == a
		}
		if !ok {
			if len(allowed) == 0 {
				return nil, fmt.Errorf("parameter %q: unknown (this endpoint takes none)", k)
			}
			return nil, fmt.Errorf("parameter %q: unknown (want %s)", k, strings.Join(allowed, ", "))
		}
		if len(vs) > 1 {
			return nil, fmt.Errorf("parameter %q: given %d times", k, len(vs))
		}
		params[k] = vs[0]
	}
	return params, nil
}

func parseQuery(raw string) (map[string][]string, error) {
	q := make(map[string][]string)
	for raw != "" {
		var kv string
		kv, raw, _ = strings.Cut(raw, "&")
		if kv == "" {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		key, err := url.QueryUnescape(k)
		if err != nil {
			return nil, fmt.Errorf("query: %w", err)
		}
		val, err := url.QueryUnescape(v)
		if err != nil {
			return nil, fmt.Errorf("parameter %q: %w", key, err)
		}
		q[key] = append(q[key], val)
	}
	return q, nil
}

func (s *Server) handleBindings(w http.ResponseWriter, r *http.Request) {
	if _, err := queryParams(r); err != nil {
		writeError(w, http.StatusBadRequest, err.Error(), false)
		return
	}
	body, err := s.snapshot()
	if err != nil {
		s.log.Error("encode bindings", "err", err)
		writeError(w, http.StatusInternalServerError, "encode bindings: "+err.Error(), false)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	dw := &deadlineWriter{w: w, rc: http.NewResponseController(w), timeout: s.opts.WriteTimeout}
	dw.Write(body)
}

// snapshot returns the encoded current view, encoding it once per view.
func (s *Server) snapshot() ([]byte, error) {
	s.snapMu.Lock()
	defer s.snapMu.Unlock()
	v := s.opts.Source.Current()
	if v == s.snapView && s.snapBody != nil {
		return s.snapBody, nil
	}
	var buf bytes.Buffer
	if err := writeSnapshot(&buf, FromView(v)); err != nil {
		return nil, err
	}
	s.snapView, s.snapBody = v, buf.Bytes()
	return s.snapBody, nil
}

// timeParam parses an optional RFC 3339 parameter.
func timeParam(params map[string]string, name string) (time.Time, error) {
	v := params[name]
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("parameter %q: %q is not an RFC 3339 time (like 2023-11-14T22:00:00Z)", name, v)
	}
	return t, nil
}

func (s *Server) handleHistory(w http.ResponseWriter, r *http.Request) {
	params, err := queryParams(r, "from", "to")
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error(), false)
		return
	}
	from, err := timeParam(params, "from")
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error(), false)
		return
	}
	to, err := timeParam(params, "to")
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error(), false)
		return
	}
	if !from.IsZero() && !to.IsZero() && to.Before(from) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("parameter \"to\": %s is before from %s", to.Format(time.RFC3339Nano), from.Format(time.RFC3339Nano)), false)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	dw := &deadlineWriter{w: w, rc: http.NewResponseController(w), timeout: s.opts.WriteTimeout}
	if err := s.opts.Source.Export(r.Context(), dw, from, to); err != nil {
		if dw.n == 0 {
			s.log.Error("history", "err", err)
			writeError(w, http.StatusInternalServerError, "history: "+err.Error(), false)
			return
		}
		if r.Context().Err() == nil {
			s.log.Error("history stream broken", "err", err, "bytes", dw.n)
		}
		// Cut the response short so the client sees a truncated body,
		// never a well-formed partial one.
		panic(http.ErrAbortHandler)
	}
}

// deadlineWriter sets a write deadline before each write.
type deadlineWriter struct {
	w       io.Writer
	rc      *http.ResponseController
	timeout time.Duration
	n       int64
}

func (d *deadlineWriter) Write(p []byte) (int, error) {
	d.rc.SetWriteDeadline(time.Now().Add(d.timeout))
	n, err := d.w.Write(p)
	d.n += int64(n)
	return n, err
}

func (d *deadlineWriter) flush() error {
	d.rc.SetWriteDeadline(time.Now().Add(d.timeout))
	return d.rc.Flush()
}

func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		// The GET pattern also routes HEAD here. net/http discards what a
		// HEAD handler writes without an error, so a stream would never
		// notice its client had gone and would hold a stream slot.
		w.Header().Set("Allow", http.MethodGet)
		writeError(w, http.StatusMethodNotAllowed, "method not allowed: the event stream takes GET", false)
		return
	}
	params, err := queryParams(r, "since")
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error(), false)
		return
	}
	src := s.opts.Source
	var since uint64
	if v := params["since"]; v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("parameter \"since\": %q is not a sequence number (an unsigned integer)", v), false)
			return
		}
		since = n
	} else {
		since = src.Current().Seq
	}
	select {
	case s.streams <- struct{}{}:
		defer func() { <-s.streams }()
	default:
		s.metrics.streamsRejected.Inc()
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("too many event streams (at most %d)", s.opts.MaxStreams), false)
		return
	}
	sub, err := src.Subscribe(since, s.opts.StreamBuffer)
	if errors.Is(err, tracker.ErrResync) {
		writeError(w, http.StatusGone, err.Error(), true)
		return
	}
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "subscribe: "+err.Error(), false)
		return
	}
	defer sub.Close()
	s.metrics.streams.Inc()
	defer s.metrics.streams.Dec()

	rc := http.NewResponseController(w)
	// The request was read: a read deadline (ReadTimeout) must not end
	// the stream.
	rc.SetReadDeadline(time.Time{})
	dw := &deadlineWriter{w: w, rc: rc, timeout: s.opts.WriteTimeout}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)

	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	send := func() bool {
		_, werr := dw.Write(buf.Bytes())
		if werr == nil {
			werr = dw.flush()
		}
		buf.Reset()
		if werr != nil {
			var ne net.Error
			if errors.As(werr, &ne) && ne.Timeout() {
				s.metrics.streamsDropped.WithLabelValues("write-timeout").Inc()
				s.log.Info("event stream dropped: client not reading", "client", r.RemoteAddr, "err", werr)
			}
			return false
		}
		return true
	}
	enc.Encode(Message{Type: MsgHello, Seq: since, Host: src.Host(), Time: tracker.FileTime(time.Now())})
	if !send() {
		return
	}
	batch := make([]tracker.Event, 0, 64)
	for {
		ctx, cancel := context.WithTimeout(r.Context(), s.opts.Heartbeat)
		batch, err = sub.NextBatch(ctx, batch[:0])
		cancel()
		switch {
		case err == nil:
			for i := range batch {
				enc.Encode(EventMessage(&batch[i]))
			}
			clear(batch)
		case r.Context().Err() != nil:
			return // client gone or server shutting down
		case errors.Is(err, context.DeadlineExceeded):
			enc.Encode(Message{Type: MsgHeartbeat, Seq: src.Stats().Seq, Time: tracker.FileTime(time.Now())})
		case errors.Is(err, tracker.ErrResync):
			s.metrics.streamsDropped.WithLabelValues("slow").Inc()
			s.log.Info("event stream dropped: client too slow, told to resync", "client", r.RemoteAddr)
			enc.Encode(Message{Type: MsgResync, Seq: src.Stats().Seq, Error: err.Error(), Time: tracker.FileTime(time.Now())})
			send()
			return
		default: // the tracker closed
			enc.Encode(Message{Type: MsgResync, Seq: src.Stats().Seq, Error: err.Error(), Time: tracker.FileTime(time.Now())})
			send()
			return
		}
		if !send() {
			return
		}
	}
}

// IsLoopback reports whether a listen address (host:port) is on a
// loopback address only: 127.0.0.0/8, ::1 or "localhost". An empty host
// listens on every address.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// CheckListen refuses a non-loopback listen address without a token
// unless allowNoAuth.
func CheckListen(addr string, hasToken, allowNoAuth bool) error {
	if hasToken || allowNoAuth || IsLoopback(addr) {
		return nil
	}
	return fmt.Errorf("listen on %s: %w", addr, ErrInsecureListen)
}

// Serve answers requests on ln until ctx ends, then stops taking
// requests, ends the event streams and waits a few seconds for the
// requests in progress. It refuses a non-loopback listener without a
// token (ErrInsecureListen) unless AllowNoAuth, and speaks TLS when
// ServerOptions.TLS is set. It returns nil after a shutdown through ctx.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if err := CheckListen(ln.Addr().String(), s.opts.Token != "", s.opts.AllowNoAuth); err != nil {
		ln.Close()
		return err
	}
	baseCtx, cancelBase := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelBase()
	hs := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: s.opts.ReadHeaderTimeout,
		ReadTimeout:       s.opts.ReadTimeout,
		WriteTimeout:      s.opts.WriteTimeout,
		IdleTimeout:       s.opts.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		BaseContext:       func(net.Listener) context.Context { return baseCtx },
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	if s.opts.TLS != nil {
		hs.TLSConfig = s.opts.TLS.Clone()
		if len(hs.TLSConfig.NextProtos) == 0 {
			hs.TLSConfig.NextProtos = []string{"h2", "http/1.1"}
		}
		ln = tls.NewListener(ln, hs.TLSConfig)
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	cancelBase() // ends the event streams
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		hs.Close()
	}
	<-errc
	return nil
}
