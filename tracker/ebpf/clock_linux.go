//go:build linux

package ebpf

import (
	"time"

	"golang.org/x/sys/unix"
)

// bootEpoch returns the wall-clock time at which CLOCK_BOOTTIME was zero:
// adding a CLOCK_BOOTTIME reading (bpf_ktime_get_boot_ns, a task's
// start_boottime) to it gives wall-clock time. It reads the two clocks a
// few times and keeps the tightest pair, so the error is well under a
// microsecond; call it again now and then to follow clock steps.
func bootEpoch() (time.Time, error) {
	var best int64 = -1
	var epoch int64
	for range 3 {
		var r1, b, r2 unix.Timespec
		if err := unix.ClockGettime(unix.CLOCK_REALTIME, &r1); err != nil {
			return time.Time{}, err
		}
		if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &b); err != nil {
			return time.Time{}, err
		}
		if err := unix.ClockGettime(unix.CLOCK_REALTIME, &r2); err != nil {
			return time.Time{}, err
		}
		width := r2.Nano() - r1.Nano()
		if best < 0 || width < best {
			best = width
			epoch = r1.Nano() + width/2 - b.Nano()
		}
	}
	return time.Unix(0, epoch), nil
}
