package remote

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// serverMetrics are the server's own collectors, in its registry.
type serverMetrics struct {
	reg             *prometheus.Registry
	requests        *prometheus.CounterVec
	duration        *prometheus.HistogramVec
	streams         prometheus.Gauge
	streamsRejected prometheus.Counter
	streamsDropped  *prometheus.CounterVec
	authFailures    prometheus.Counter
}

func newServerMetrics(src Source, extra []prometheus.Collector) (*serverMetrics, error) {
	m := &serverMetrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "netdumper_http_requests_total",
			Help: "HTTP requests answered, by endpoint and status code.",
		}, []string{"endpoint", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "netdumper_http_request_duration_seconds",
			Help:    "Time to answer HTTP requests (event streams excluded), by endpoint.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10},
		}, []string{"endpoint"}),
		streams: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "netdumper_event_streams",
			Help: "Clients connected to /v1/events.",
		}),
		streamsRejected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "netdumper_event_streams_rejected_total",
			Help: "Event streams refused because the maximum number of streams was reached.",
		}),
		streamsDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "netdumper_event_streams_dropped_total",
			Help: "Event streams ended by the server because the client read too slowly (slow: its queue overflowed and it was told to resync; write-timeout: a write blocked too long).",
		}, []string{"reason"}),
		authFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "netdumper_http_auth_failures_total",
			Help: "Requests refused for a missing or wrong bearer token.",
		}),
	}
	cs := []prometheus.Collector{
		m.requests, m.duration, m.streams, m.streamsRejected, m.streamsDropped, m.authFailures,
		newTrackerCollector(src),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	}
	for _, c := range append(cs, extra...) {
		if err := m.reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// trackerCollector reads the tracker's counters at each scrape.
type trackerCollector struct {
	src                                          Source
	scans, scanErrors, commitErrors              *prometheus.Desc
	scanDuration, lastScan                       *prometheus.Desc
	bindings, addrs, pending, unsaved            *prometheus.Desc
	events, seq, subscribers, droppedSubscribers *prometheus.Desc
}

func newTrackerCollector(src Source) *trackerCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &trackerCollector{
		src:                src,
		scans:              d("netdumper_scans_total", "Scans of the host's sockets."),
		scanErrors:         d("netdumper_scan_errors_total", "Scans that failed."),
		commitErrors:       d("netdumper_commit_errors_total", "History commits that failed (retried with the next scan)."),
		scanDuration:       d("netdumper_scan_duration_seconds", "Duration of the last scan, by phase (scan: the scanner; diff: events and view; commit: the history store).", "phase"),
		lastScan:           d("netdumper_last_scan_timestamp_seconds", "Time of the last scan (Unix seconds)."),
		bindings:           d("netdumper_bindings", "Bindings (sockets with their owners) in the current view."),
		addrs:              d("netdumper_addresses", "Addresses the host owns now."),
		pending:            d("netdumper_pending_connections", "Connections attributed by their listener, not persisted on their own."),
		unsaved:            d("netdumper_unsaved_changes", "History changes waiting for a commit that failed."),
		events:             d("netdumper_events_total", "Bind, unbind and owner-changed events."),
		seq:                d("netdumper_event_seq", "Sequence number of the last event."),
		subscribers:        d("netdumper_subscribers", "Live event subscriptions of the tracker."),
		droppedSubscribers: d("netdumper_subscribers_dropped_total", "Subscriptions the tracker dropped because their queue overflowed."),
	}
}

// Describe implements prometheus.Collector.
func (c *trackerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.scans, c.scanErrors, c.commitErrors, c.scanDuration, c.lastScan,
		c.bindings, c.addrs, c.pending, c.unsaved, c.events, c.seq, c.subscribers, c.droppedSubscribers} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *trackerCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.src.Stats()
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter(c.scans, s.Scans)
	counter(c.scanErrors, s.ScanErrors)
	counter(c.commitErrors, s.CommitErrors)
	gauge(c.scanDuration, s.LastScanDuration.Seconds(), "scan")
	gauge(c.scanDuration, s.LastDiffDuration.Seconds(), "diff")
	gauge(c.scanDuration, s.LastCommitDuration.Seconds(), "commit")
	if !s.LastScan.IsZero() {
		gauge(c.lastScan, float64(s.LastScan.UnixNano())/1e9)
	}
	gauge(c.bindings, float64(s.Bindings))
	gauge(c.addrs, float64(s.Addrs))
	gauge(c.pending, float64(s.Pending))
	gauge(c.unsaved, float64(s.Unsaved))
	counter(c.events, s.Events)
	gauge(c.seq, float64(s.Seq))
	gauge(c.subscribers, float64(s.Subscribers))
	counter(c.droppedSubscribers, s.DroppedSubscribers)
}
