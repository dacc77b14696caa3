package ebpf

// The BPF object files and their Go loaders (netdumper_bpfel.go,
// netdumper_bpfeb.go and the .o files beside them) are generated from
// bpf/netdumper.bpf.c and committed, so that building needs no clang.
// Regenerate them with `make generate` (clang, llvm-strip) after editing
// anything under bpf/; TestGeneratedCurrent fails when they are stale.
//
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target bpfel,bpfeb -type event -tags linux -output-stem netdumper netdumper bpf/netdumper.bpf.c
