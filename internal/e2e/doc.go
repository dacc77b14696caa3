// Package e2e holds netdumper's end-to-end test: real programs talk on
// loopback, the real softflowd captures them into a real nfcapd, `netdumper
// serve` tracks their sockets, `netdumper enrich` labels the file, and the
// real nfdump must show each flow's process. The package has no code of
// its own; the traffic program is in testdata/e2eprog.
package e2e
