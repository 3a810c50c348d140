//go:build 386 || amd64 || arm

package httpsrv

// soReusePort is Linux's SO_REUSEPORT socket option, which package syscall
// does not name on these architectures (its Linux tables for them predate
// the option). The number is 15 on every Linux architecture but MIPS (and
// SPARC, PA-RISC and Alpha, which Go does not support), where syscall
// names it.
const soReusePort = 0xf
