//go:build unix

package httpsrv

import "syscall"

// getRlimitNoFile returns the process's RLIMIT_NOFILE soft limit. The Go
// runtime raises it to the hard limit when a program starts (os package,
// since Go 1.19), so this is usually the hard limit.
func getRlimitNoFile() (uint64, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, err
	}
	return uint64(rl.Cur), nil
}
