// Package enrich is the job that joins bindings to flow files: for each
// nfdump file it asks every bindings source for the history overlapping
// the file's time window, builds a tracker index, and rewrites the file
// with a label per flow (nfcap.Rewrite through nfcap.ReplaceFile). Both
// `netdumper enrich` and the TUI's commit step run it, so they cannot
// drift apart.
package enrich
