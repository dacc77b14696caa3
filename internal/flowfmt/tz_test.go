package flowfmt

import (
	"testing"
	"time"
)

func TestLocation(t *testing.T) {
	winter := time.Date(2023, 1, 15, 12, 0, 0, 0, time.UTC)
	summer := time.Date(2023, 7, 15, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		tz             string
		winter, summer string // wall clock and zone name at the two times
	}{
		{"", "12:00 UTC", "12:00 UTC"},
		{"Europe/Berlin", "13:00 CET", "14:00 CEST"},
		{":Europe/Berlin", "13:00 CET", "14:00 CEST"},
		{"/usr/share/zoneinfo/Europe/Berlin", "13:00 CET", "14:00 CEST"},
		{"JST-9", "21:00 JST", "21:00 JST"},
		{"JST-9 ", "21:00 JST", "21:00 JST"},
		{"UTC+3", "09:00 UTC", "09:00 UTC"}, // POSIX: three hours west
		{"<+0530>-5:30", "17:30 +0530", "17:30 +0530"},
		{"CET-1CEST,M3.5.0,M10.5.0/3", "13:00 CET", "14:00 CEST"},
		{"AEST-10AEDT,M10.1.0,M4.1.0/3", "23:00 AEDT", "22:00 AEST"},
		{"EST5EDT,M3.2.0,M11.1.0", "07:00 EST", "08:00 EDT"},
	}
	for _, tc := range tests {
		loc, err := Location(tc.tz)
		if err != nil {
			t.Errorf("%q: %v", tc.tz, err)
			continue
		}
		if got := winter.In(loc).Format("15:04 MST"); got != tc.winter {
			t.Errorf("%q in January: %s, want %s", tc.tz, got, tc.winter)
		}
		if got := summer.In(loc).Format("15:04 MST"); got != tc.summer {
			t.Errorf("%q in July: %s, want %s", tc.tz, got, tc.summer)
		}
	}
	for _, bad := range []string{"bogus", "AB-1", ":Nowhere/Zone", "/nonexistent/zone", "CET-1CEST,M13.5.0,M10.5.0/3", "XYZ-99"} {
		if _, err := Location(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
