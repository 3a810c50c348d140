package httpsrv

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/seed80f6b3e8/httpsrv/internal/fdpass"
)

// The sd_listen_fds(3) protocol: the service manager passes LISTEN_FDS
// descriptors starting at listenFDsStart, for the process LISTEN_PID, named
// in LISTEN_FDNAMES (colon-separated, optional).
const (
	listenFDsStart = 3
	listenPIDEnv   = "LISTEN_PID"
	listenFDsEnv   = "LISTEN_FDS"
	listenNamesEnv = "LISTEN_FDNAMES"
)

// ActivationListeners returns the listening sockets passed to this process
// by systemd socket activation (sd_listen_fds(3)), in the order of the
// socket unit's Listen lines, for [Server.ServeTLS] or [Server.Serve]:
//
//	lns, err := httpsrv.ActivationListeners()
//	if err != nil || len(lns) != 1 {
//		log.Fatalf("want one socket from systemd: %v", err)
//	}
//	log.Fatal(srv.ServeTLS(lns[0], "cert.pem", "key.pem"))
//
// The socket stays open in the service manager while the service restarts,
// so connections made meanwhile wait in its backlog instead of being
// refused; with [Server.Shutdown] on SIGTERM, a restart loses no request.
//
// It returns nil and a nil error when LISTEN_PID is unset or names another
// process (the variables were meant for a parent), or when LISTEN_FDS is
// unset, as sd_listen_fds does. It always unsets LISTEN_PID, LISTEN_FDS and
// LISTEN_FDNAMES, so that child processes do not take the sockets for
// theirs; only the first call in a process can return listeners.
//
// Every descriptor is checked before any is used: each must be a
// listening SOCK_STREAM socket (ListenStream= without Accept=yes). If one
// is not (a connection passed with Accept=yes, a datagram socket, a
// LISTEN_FDS larger than the number of descriptors passed), the error
// names each such descriptor and no descriptor is closed or changed, so
// that a wrong count cannot close the process's own files. A count above
// 65536 is refused as corrupt. Otherwise each descriptor is marked
// close-on-exec and replaced by the listener's own. It is implemented
// here, without a dependency, and is not supported on Windows.
func ActivationListeners() ([]net.Listener, error) {
	lns, _, err := activationListeners()
	return lns, err
}

// ActivationListenersByName is [ActivationListeners], keyed by the names in
// LISTEN_FDNAMES (the socket units' FileDescriptorName=, by default the
// unit's name). A descriptor without a name is listed under "unknown", as
// sd_listen_fds_with_names(3) does. Listeners sharing a name keep their
// order.
func ActivationListenersByName() (map[string][]net.Listener, error) {
	lns, names, err := activationListeners()
	if lns == nil {
		return nil, err
	}
	byName := make(map[string][]net.Listener)
	for i, ln := range lns {
		byName[names[i]] = append(byName[names[i]], ln)
	}
	return byName, nil
}

// maxListenFDs bounds LISTEN_FDS: far more sockets than a unit passes, and
// small enough that a corrupt value cannot exhaust memory or overflow the
// descriptor numbers (sd_listen_fds only rejects counts above INT_MAX-3).
const maxListenFDs = 1 << 16

// activationListeners implements ActivationListeners, returning each
// listener's name too.
func activationListeners() ([]net.Listener, []string, error) {
	pid := os.Getenv(listenPIDEnv)
	fds, fdsSet := os.LookupEnv(listenFDsEnv)
	names := os.Getenv(listenNamesEnv)
	os.Unsetenv(listenPIDEnv)
	os.Unsetenv(listenFDsEnv)
	os.Unsetenv(listenNamesEnv)
	if pid == "" || pid != strconv.Itoa(os.Getpid()) || !fdsSet {
		return nil, nil, nil
	}
	n, err := strconv.Atoi(fds)
	if err != nil || n < 0 || n > maxListenFDs {
		return nil, nil, fmt.Errorf("httpsrv: socket activation: %s=%q is not a count of descriptors (0 to %d)", listenFDsEnv, fds, maxListenFDs)
	}
	if n == 0 {
		return nil, nil, nil
	}
	nameList := make([]string, n)
	split := strings.Split(names, ":")
	for i := range nameList {
		nameList[i] = "unknown"
		if names != "" && i < len(split) && split[i] != "" {
			nameList[i] = split[i]
		}
	}
	// Check them all before touching any: past the descriptors really
	// passed are the process's own files.
	var errs []error
	for i := range n {
		fd := listenFDsStart + i
		if err := fdpass.Check(fd, syscall.SOCK_STREAM); err != nil {
			errs = append(errs, fmt.Errorf("descriptor %d (%s): %w", fd, nameList[i], err))
		}
	}
	if errs != nil {
		return nil, nil, fmt.Errorf("httpsrv: socket activation: %w", errors.Join(errs...))
	}
	lns := make([]net.Listener, 0, n)
	for i := range n {
		ln, err := fdpass.Listener(listenFDsStart+i, nameList[i])
		if err != nil {
			for _, ln := range lns {
				ln.Close()
			}
			return nil, nil, fmt.Errorf("httpsrv: socket activation: %w", err)
		}
		lns = append(lns, ln)
	}
	return lns, nameList, nil
}
