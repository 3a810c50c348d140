//go:build darwin || freebsd || netbsd

package httpsrv

import (
	"os"
	"syscall"
	"time"
)

// fileCtime returns the inode change time of info, from its stat.
func fileCtime(info os.FileInfo) time.Time {
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return time.Unix(st.Ctimespec.Unix())
	}
	return time.Time{}
}
