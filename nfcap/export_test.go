package nfcap

// DecodeFlowKeyForTest exposes the rewrite's partial decoder to the
// external tests.
var DecodeFlowKeyForTest = decodeFlowKey
