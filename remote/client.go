package remote

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/netdumper/netdumper/tracker"
)

// Defaults of ClientOptions.
const (
	DefaultTimeout           = 30 * time.Second
	DefaultDialTimeout       = 5 * time.Second
	DefaultStreamIdleTimeout = 3 * DefaultHeartbeat
	// maxErrorBody bounds the error message read from an answer.
	maxErrorBody = 4 << 10
	// maxTokenFile bounds a token file.
	maxTokenFile = 4 << 10
)

// ClientOptions configure a Client.
type ClientOptions struct {
	// Token is the bearer token sent with every request ("" sends none).
	Token string
	// TokenSource says where Token came from (e.g. "--token-file
	// /etc/netdumper/token" or "$NETDUMPER_TOKEN"); the error of a
	// refused token names it. Informational.
	TokenSource string
	// TLS configures HTTPS (ClientTLSConfig): the CAs that sign the
	// tracker's certificate and a client certificate. Nil: the system's
	// roots, no client certificate.
	TLS *tls.Config
	// Timeout bounds the wait for an answer, and any pause within a
	// streamed answer (DefaultTimeout when 0).
	Timeout time.Duration
	// DialTimeout bounds connecting (DefaultDialTimeout when 0).
	DialTimeout time.Duration
	// StreamIdleTimeout: an event stream silent for longer (no event, no
	// heartbeat) is considered dead (DefaultStreamIdleTimeout when 0;
	// keep it above the server's heartbeat interval).
	StreamIdleTimeout time.Duration
	// Logger receives the client's logs (nil: discard).
	Logger *slog.Logger
	// Transport replaces the HTTP transport the options above build
	// (tests).
	Transport http.RoundTripper
}

// Client talks to one tracker's API. Its methods are safe for
// concurrent use.
type Client struct {
	base *url.URL
	opts ClientOptions
	log  *slog.Logger
	hc   *http.Client
}

// NewClient returns a client of the tracker at baseURL (http or https,
// e.g. "https://web1:7701"; a path is kept as a prefix).
func NewClient(baseURL string, opts ClientOptions) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("tracker URL %q: %w", baseURL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("tracker URL %q: scheme must be http or https", baseURL)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("tracker URL %q: no host", baseURL)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("tracker URL %q: no query, fragment or user info allowed", baseURL)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = DefaultDialTimeout
	}
	if opts.StreamIdleTimeout <= 0 {
		opts.StreamIdleTimeout = DefaultStreamIdleTimeout
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	rt := opts.Transport
	if rt == nil {
		d := &net.Dialer{Timeout: opts.DialTimeout, KeepAlive: 30 * time.Second}
		rt = &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           d.DialContext,
			TLSClientConfig:       opts.TLS,
			TLSHandshakeTimeout:   opts.DialTimeout,
			ResponseHeaderTimeout: opts.Timeout,
			MaxIdleConnsPerHost:   4,
			IdleConnTimeout:       90 * time.Second,
		}
	}
	return &Client{base: u, opts: opts, log: logger, hc: &http.Client{Transport: rt}}, nil
}

// URL is the tracker's base URL (any password in it masked).
func (c *Client) URL() string { return c.base.Redacted() }

// CloseIdleConnections closes the client's idle connections.
func (c *Client) CloseIdleConnections() { c.hc.CloseIdleConnections() }

// get sends a GET of path?query and returns the answer's body when the
// status is 200, guarded so that a pause longer than idle cancels it.
func (c *Client) get(ctx context.Context, path string, query url.Values, idle time.Duration) (*http.Response, io.ReadCloser, error) {
	u := *c.base
	u.Path += path
	u.RawQuery = query.Encode()
	ctx, cancel := context.WithCancel(ctx)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		cancel()
		return nil, nil, err
	}
	req.Header.Set("Accept", "application/json, application/x-ndjson")
	if c.opts.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.opts.Token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		cancel()
		return nil, nil, fmt.Errorf("%s: %w", c.base.Redacted(), tlsHint(unwrapURLError(err)))
	}
	if resp.StatusCode != http.StatusOK {
		defer cancel()
		defer resp.Body.Close()
		// The header timeout is over once the status line is in: bound
		// the error body too, or a tracker that stalls in it would hold
		// up the caller (and a Pool waiting on every tracker) for good.
		stop := time.AfterFunc(c.opts.Timeout, cancel)
		defer stop.Stop()
		msg, resync := readErrorBody(resp.Body)
		se := &StatusError{URL: u.Redacted(), Code: resp.StatusCode, Message: msg}
		switch {
		case resp.StatusCode == http.StatusUnauthorized:
			return resp, nil, fmt.Errorf("%s: %w", c.base.Redacted(), c.unauthorized())
		case resp.StatusCode == http.StatusGone || resync:
			return resp, nil, fmt.Errorf("%w: %w", se, ErrResync)
		}
		return resp, nil, se
	}
	return resp, newWatchdog(resp.Body, idle, cancel), nil
}

// unauthorized is the error of a 401 answer: it says whether a token was
// sent, and where it came from.
func (c *Client) unauthorized() error {
	switch {
	case c.opts.Token == "":
		return fmt.Errorf("%w: no token was sent, and the tracker requires one", ErrUnauthorized)
	case c.opts.TokenSource != "":
		return fmt.Errorf("%w: the tracker refused the token of %s", ErrUnauthorized, c.opts.TokenSource)
	}
	return fmt.Errorf("%w: the tracker refused the token", ErrUnauthorized)
}

// tlsHint adds what to do to the TLS failures a user can fix: Go's texts
// ("remote error: tls: certificate required") do not say that the client
// lacks a certificate the tracker accepts, or that it does not trust the
// tracker's.
func tlsHint(err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "tls: certificate required"):
		return fmt.Errorf("%w: the tracker requires a client certificate signed by a CA it trusts, and none was sent (the client has no certificate, or none from such a CA)", err)
	case strings.Contains(msg, "tls: bad certificate"), strings.Contains(msg, "tls: unknown certificate authority"),
		strings.Contains(msg, "tls: expired certificate"):
		return fmt.Errorf("%w: the tracker refused the client certificate", err)
	}
	var ua x509.UnknownAuthorityError
	if errors.As(err, &ua) {
		return fmt.Errorf("%w: the tracker's certificate is not signed by a CA this client trusts (give that CA's certificate)", err)
	}
	return err
}

// unwrapURLError drops the *url.Error layer, whose text repeats the URL.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// readErrorBody returns the message of a JSON error answer.
func readErrorBody(r io.Reader) (string, bool) {
	data, _ := io.ReadAll(io.LimitReader(r, maxErrorBody))
	var eb errorBody
	if json.Unmarshal(data, &eb) == nil && eb.Error != "" {
		return eb.Error, eb.Resync
	}
	return strings.TrimSpace(string(bytes.ToValidUTF8(data, nil))), false
}

// watchdog cancels a request when its body makes no progress for idle.
type watchdog struct {
	body   io.ReadCloser
	idle   time.Duration
	timer  *time.Timer
	fired  atomic.Bool
	cancel context.CancelFunc
}

func newWatchdog(body io.ReadCloser, idle time.Duration, cancel context.CancelFunc) *watchdog {
	w := &watchdog{body: body, idle: idle, cancel: cancel}
	w.timer = time.AfterFunc(idle, func() {
		w.fired.Store(true)
		cancel()
	})
	return w
}

func (w *watchdog) Read(p []byte) (int, error) {
	n, err := w.body.Read(p)
	if n > 0 {
		w.timer.Reset(w.idle)
	}
	if err != nil && !errors.Is(err, io.EOF) && w.fired.Load() {
		err = fmt.Errorf("no data for %v: %w", w.idle, err)
	}
	return n, err
}

func (w *watchdog) Close() error {
	w.timer.Stop()
	err := w.body.Close()
	w.cancel()
	return err
}

// Bindings fetches the tracker's current bindings and addresses
// (GET /v1/bindings). The view's Seq is where an event stream continues.
func (c *Client) Bindings(ctx context.Context) (*tracker.View, error) {
	_, body, err := c.get(ctx, "/v1/bindings", nil, c.opts.Timeout)
	if err != nil {
		return nil, err
	}
	defer body.Close()
	v, err := DecodeSnapshot(body)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.URL(), err)
	}
	return v, nil
}

func historyQuery(from, to time.Time) url.Values {
	q := url.Values{}
	if !from.IsZero() {
		q.Set("from", from.UTC().Format(time.RFC3339Nano))
	}
	if !to.IsZero() {
		q.Set("to", to.UTC().Format(time.RFC3339Nano))
	}
	return q
}

// History streams the binding and address intervals overlapping [from,
// to] (GET /v1/history; a zero time leaves that side open). fn is called
// as by tracker.DecodeFile: once per host with a and b nil, then with each
// address interval (a) or binding (b); an error of fn stops the transfer
// and is returned as is.
func (c *Client) History(ctx context.Context, from, to time.Time, fn func(host string, a *tracker.AddrInterval, b *tracker.Binding) error) error {
	_, body, err := c.get(ctx, "/v1/history", historyQuery(from, to), c.opts.Timeout)
	if err != nil {
		return err
	}
	defer body.Close()
	return tracker.DecodeFile(body, c.URL()+"/v1/history", fn)
}

// HostHistory collects the history overlapping [from, to] of each host
// the tracker reports (one, normally).
func (c *Client) HostHistory(ctx context.Context, from, to time.Time) ([]tracker.HostHistory, error) {
	_, body, err := c.get(ctx, "/v1/history", historyQuery(from, to), c.opts.Timeout)
	if err != nil {
		return nil, err
	}
	defer body.Close()
	f, err := tracker.ReadFile(body, c.URL()+"/v1/history")
	if err != nil {
		return nil, err
	}
	return f.Hosts, nil
}

// Name is the tracker's URL (for messages; Client is a bindings source
// of internal/enrich).
func (c *Client) Name() string { return c.URL() }

// Add adds to ib the history overlapping [from, to]: the tracker's
// addresses and bindings, all or nothing.
func (c *Client) Add(ctx context.Context, ib *tracker.IndexBuilder, from, to time.Time) error {
	hosts, err := c.HostHistory(ctx, from, to)
	if err != nil {
		return err
	}
	for _, h := range hosts {
		ib.AddHost(h)
	}
	return nil
}

// Export copies the history overlapping [from, to] to w as a bindings
// file, exactly as the tracker wrote it, checking it on the way: a
// malformed or truncated answer is an error.
func (c *Client) Export(ctx context.Context, w io.Writer, from, to time.Time) error {
	_, body, err := c.get(ctx, "/v1/history", historyQuery(from, to), c.opts.Timeout)
	if err != nil {
		return err
	}
	defer body.Close()
	var werr error
	tee := io.TeeReader(body, writerFunc(func(p []byte) (int, error) {
		if werr == nil {
			_, werr = w.Write(p)
		}
		return len(p), nil
	}))
	err = tracker.DecodeFile(tee, c.URL()+"/v1/history", func(string, *tracker.AddrInterval, *tracker.Binding) error { return werr })
	if werr != nil {
		return fmt.Errorf("write bindings: %w", werr)
	}
	if err != nil {
		return err
	}
	// The decoder may stop before reading the trailing newline.
	_, err = io.Copy(writerFunc(w.Write), body)
	return err
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// Health asks /healthz; nil when the tracker answers "ok".
func (c *Client) Health(ctx context.Context) error {
	_, body, err := c.get(ctx, "/healthz", nil, c.opts.Timeout)
	if err != nil {
		return err
	}
	return body.Close()
}

// Stream is one open GET /v1/events stream. Its methods are for one
// goroutine.
type Stream struct {
	// Host is the tracker's host name, from the stream's first line.
	Host string
	// Since is the sequence number the stream started after.
	Since uint64

	url  string
	body io.ReadCloser
	br   *bufio.Reader
	last uint64
	err  error
}

// Events opens an event stream from sequence number since (the Seq of a
// view from Bindings). It returns an error wrapping ErrResync when those
// events are gone: fetch Bindings again and start from its Seq.
func (c *Client) Events(ctx context.Context, since uint64) (*Stream, error) {
	q := url.Values{"since": {strconv.FormatUint(since, 10)}}
	_, body, err := c.get(ctx, "/v1/events", q, c.opts.StreamIdleTimeout)
	if err != nil {
		return nil, err
	}
	s := &Stream{url: c.URL() + "/v1/events", body: body, br: bufio.NewReaderSize(body, 64<<10), last: since, Since: since}
	m, err := s.read()
	if err == nil && m.Type != MsgHello {
		err = fmt.Errorf("%s: stream starts with %q, want hello", s.url, m.Type)
	}
	if err == nil && m.Seq != since {
		err = fmt.Errorf("%s: stream starts after %d, asked for %d", s.url, m.Seq, since)
	}
	if err != nil {
		body.Close()
		return nil, err
	}
	s.Host = m.Host
	if s.Host == "" {
		body.Close()
		return nil, fmt.Errorf("%s: hello without a host name", s.url)
	}
	return s, nil
}

// read returns the next message.
func (s *Stream) read() (Message, error) {
	line, err := readLine(s.br, maxEventLine)
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF // streams do not end on their own
		}
		return Message{}, fmt.Errorf("%s: %w", s.url, err)
	}
	m, err := decodeMessage(line)
	if err != nil {
		return m, fmt.Errorf("%s: %w", s.url, err)
	}
	return m, nil
}

// readLine reads one line without its newline, of at most max bytes.
func readLine(br *bufio.Reader, max int) ([]byte, error) {
	var long []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if err == nil {
			if long != nil {
				return append(long, chunk[:len(chunk)-1]...), nil
			}
			return chunk[:len(chunk)-1], nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return nil, err
		}
		if len(long)+len(chunk) > max {
			return nil, fmt.Errorf("line longer than %d bytes", max)
		}
		long = append(long, chunk...)
	}
}

// next returns the next event, or heartbeat true for a heartbeat.
func (s *Stream) next() (e tracker.Event, heartbeat bool, err error) {
	if s.err != nil {
		return e, false, s.err
	}
	defer func() {
		if err != nil {
			s.err = err
		}
	}()
	m, err := s.read()
	if err != nil {
		return e, false, err
	}
	switch m.Type {
	case MsgHeartbeat:
		return e, true, nil
	case MsgResync:
		return e, false, fmt.Errorf("%s: %s: %w", s.url, m.Error, ErrResync)
	case MsgHello:
		return e, false, fmt.Errorf("%s: hello in the middle of the stream", s.url)
	}
	e, err = m.Event(s.Host)
	if err != nil {
		return e, false, fmt.Errorf("%s: %w", s.url, err)
	}
	if e.Seq != s.last+1 {
		return e, false, fmt.Errorf("%s: event %d after %d, events missing: %w", s.url, e.Seq, s.last, ErrResync)
	}
	s.last = e.Seq
	return e, false, nil
}

// Next returns the next event, waiting for it. Errors: one wrapping
// ErrResync when the tracker says the client must resync (it dropped a
// slow client, or restarted) or a gap shows in the sequence numbers;
// others when the connection breaks or goes silent. After an error the
// stream is done: Close it.
func (s *Stream) Next() (tracker.Event, error) {
	for {
		e, hb, err := s.next()
		if !hb {
			return e, err
		}
	}
}

// Last is the sequence number of the last event returned.
func (s *Stream) Last() uint64 { return s.last }

// Close ends the stream.
func (s *Stream) Close() error { return s.body.Close() }

// ReadTokenFile reads a bearer token from a file: its content without
// surrounding white space, which must not be empty.
func ReadTokenFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxTokenFile+1))
	if err != nil {
		return "", fmt.Errorf("token file %s: %w", path, err)
	}
	if len(data) > maxTokenFile {
		return "", fmt.Errorf("token file %s: longer than %d bytes", path, maxTokenFile)
	}
	tok := strings.TrimSpace(string(data))
	if tok == "" {
		return "", fmt.Errorf("token file %s is empty", path)
	}
	if strings.ContainsAny(tok, "\r\n") {
		return "", fmt.Errorf("token file %s: the token must be one line", path)
	}
	return tok, nil
}
