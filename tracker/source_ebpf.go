package tracker

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/netdumper/netdumper/tracker/ebpf"
)

// EventSourceOptions configure OpenEventSource.
type EventSourceOptions struct {
	// Mode: EventsAuto (the default), EventsEBPF or EventsPoll.
	Mode string
	// EBPF configures the eBPF source (ebpf.Options; its Logger defaults
	// to Logger).
	EBPF ebpf.Options
	// Logger receives the one notice of a fallback to polling, and the
	// source's details; nil discards.
	Logger *slog.Logger
}

// OpenEventSource opens the event source Mode asks for: with EventsEBPF
// the eBPF source, or an error saying why it cannot run here (matching
// ebpf.ErrUnsupported); with EventsAuto the same, except that a host
// that cannot run it (no BTF, no privilege, an old kernel, not Linux)
// gets a warning, logged once with the reason, and a nil source: the
// tracker then polls only; with EventsPoll a nil source. Pass the source
// as Options.Events, and close it after the tracker's Run has returned.
func OpenEventSource(opts EventSourceOptions) (EventSource, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	switch opts.Mode {
	case "", EventsAuto, EventsEBPF:
	case EventsPoll:
		log.Info("event source: none, tracking by polling only", "mode", EventsPoll)
		return nil, nil
	default:
		return nil, fmt.Errorf("unknown event source %q (want auto, ebpf or poll)", opts.Mode)
	}
	if opts.EBPF.Logger == nil {
		opts.EBPF.Logger = log
	}
	src, err := openEBPF(opts.EBPF)
	if err == nil {
		log.Info("event source: eBPF attached, every connection is seen as it starts")
		return src, nil
	}
	if opts.Mode == EventsEBPF || !errors.Is(err, ebpf.ErrUnsupported) {
		return nil, fmt.Errorf("ebpf event source: %w", err)
	}
	log.Warn("eBPF event source unavailable on this host; tracking by polling only, so connections shorter than the scan interval may go unattributed (use --source poll to silence this)",
		"reason", err.Error())
	return nil, nil
}

// ebpfStats converts the eBPF source's counters.
func ebpfStats(st ebpf.Stats) EventSourceStats {
	return EventSourceStats{
		Delivered: st.Events, Submitted: st.Submitted, RingbufDrops: st.RingbufDrops,
		KernelDrops: st.KernelDrops, Unowned: st.Unowned, Lost: st.Lost, Missed: st.Missed,
	}
}
