// Package tui is netdumper's terminal interface (Bubble Tea v1): watch the
// live bindings, browse flow files, preview the labels a commit would
// write, and commit them.
//
// # Screens
//
//   - Bindings (1): every socket and its owner from the BindingsSources
//     (an embedded tracker through TrackerSource, remote trackers through
//     MirrorSource), updated live without losing the cursor. Filter as you
//     type with "/" (port:22 proc:nginx user:www host:web1 proto:udp
//     state:listen pid:1234 addr:10.0., plain text anywhere, "!" negates),
//     sort with s (next column) and S (reverse), h adds the bindings
//     closed in the last minutes. Only the rows on screen are drawn; the
//     filter and the sort run over rows prepared once per update.
//   - Files (2): the nfcapd files under a directory, newest first, grouped
//     by day, with their time window, records, size and compression (from
//     the header and appendix, read for the rows on screen) and how many
//     records already carry a username (a full decode, in the background,
//     one file at a time, "…" until known). Subdirectories are listed
//     first; space marks files, c commits the marked (or selected) ones.
//   - Preview (3): one file's records as nfdump will print them after the
//     commit (nfdump's %line columns and %uname, byte for byte), with a
//     gutter letter per record (E exact 5-tuple, L listener, W wildcard
//     listener, = username kept, ? the --unknown text, - none) and the
//     match statistics of the whole file. A background pass records where
//     each block starts and which record it begins with; a page decodes
//     only the blocks it shows, so multi-million-record files page at
//     once. g/G jump to the start and end, / searches, n/N repeat.
//   - Commit: a dialog with the files, the label template, the overwrite
//     policy and each file's match rate (a dry run), then the rewrite with
//     a progress bar, by internal/enrich (the job `netdumper enrich`
//     runs). Esc cancels: the file being written is left untouched.
//
// Plus a help overlay built from the KeyMap (?), a status line with each
// source's health, mouse wheel and clicks, resizing, light and dark
// terminals (adaptive colours) and NO_COLOR (state is never shown by
// colour alone). The TUI never writes logs to the terminal: Options.Logger
// should write to a file.
//
// # Design
//
// Model is the root: a tab bar, the three screens, the commit dialog and
// the status line; each screen is a concrete type in its own file with
// update and view methods. Keys (KeyMap) and styles (Styles) are data.
// All I/O runs in tea.Cmds; long work (the index pass, username counts,
// commits) reports through messages tagged with a generation, so results
// for a file no longer shown are dropped.
package tui
