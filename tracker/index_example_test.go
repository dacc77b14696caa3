package tracker_test

import (
	"fmt"
	"net/netip"
	"os"
	"time"

	"github.com/netdumper/netdumper/tracker"
)

// An index built from a bindings file names the process of a flow.
func ExampleIndex_Lookup() {
	f, err := os.Open("testdata/bindings/issue4.json")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer f.Close()
	file, err := tracker.ReadFile(f, "issue4.json")
	if err != nil {
		fmt.Println(err)
		return
	}
	ix := tracker.NewIndex(tracker.IndexOptions{}, file.Hosts...)
	flow := tracker.FlowKey{
		Proto: tracker.ProtoTCP,
		Src:   netip.MustParseAddrPort("198.51.100.7:50001"),
		Dst:   netip.MustParseAddrPort("192.0.2.10:22"),
	}
	seen := time.Date(2023, 11, 14, 22, 5, 0, 0, time.UTC)
	m := ix.Lookup(flow, seen, seen.Add(time.Second))
	fmt.Println(m.Binding.Owner.Name, m.Binding.Owner.PID, m.Kind, m.Side, m.Binding.Host)
	// Output: sshd 812 wildcard dst web1
}
