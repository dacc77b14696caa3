package tracker

import "flag"

// update is the package's -update flag: tests that compare with golden
// files in testdata rewrite them when it is set
// (go test ./tracker -run TestScanFixture -update).
var update = flag.Bool("update", false, "rewrite the golden files in testdata")
