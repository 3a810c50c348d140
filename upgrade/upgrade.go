// Package upgrade replaces a running server's binary without refusing a
// connection or losing a request: on a signal, the running process starts
// the new binary and hands it its listening sockets; the new process says
// it is ready; the old one stops accepting and drains with
// [github.com/seed80f6b3e8/httpsrv.Server.Shutdown], while the new one
// accepts from the same sockets.
//
// # Use
//
//	upg, err := upgrade.New(upgrade.Options{PIDFile: "/run/app.pid"})
//	if err != nil {
//		log.Fatal(err)
//	}
//	ln, err := upg.Listen("tcp", ":443") // the parent's socket, or a new one
//	if err != nil {
//		log.Fatal(err)
//	}
//	srv := &httpsrv.Server{Handler: mux}
//	go srv.ServeTLS(ln, "cert.pem", "key.pem")
//	if err := upg.Ready(); err != nil { // tells the parent, if any, to drain
//		log.Fatal(err)
//	}
//	sigs := make(chan os.Signal, 1)
//	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM)
//	wait:
//	for {
//		select {
//		case s := <-sigs:
//			if s == syscall.SIGTERM {
//				break wait
//			}
//			if err := upg.Upgrade(); err != nil {
//				log.Print(err) // the new binary did not start; keep serving
//			}
//		case <-upg.Exit(): // the new process is ready
//			break wait
//		}
//	}
//	srv.Shutdown(context.Background()) // the new process serves meanwhile
//
// # Why not tableflip
//
// This is the design of github.com/cloudflare/tableflip v1.2.3 (listeners
// keyed by network and address, readiness through a pipe, an upgrade
// timeout, a PID file for systemd's ExecReload), built here in a few
// hundred lines instead of imported, because tableflip would add itself
// and golang.org/x/sys to every importer's go.mod, allows one Upgrader per
// process, and wraps errors with %s, so callers cannot match them with
// errors.Is. It also supports the same systems: Unix only; on others New
// returns [ErrNotSupported].
//
// # Protocol
//
// The new process is the file named by os.Args[0] when New ran (so a
// binary replaced on disk is the one started), with the same arguments,
// working directory, standard streams and environment, plus
// HTTPSRV_UPGRADE: JSON naming the descriptors it inherits (the write end
// of the readiness pipe, then one per listener, each with the network and
// address it was opened for). The parent waits for one byte on the pipe;
// the end of the pipe without it (the new process exited) or
// Options.UpgradeTimeout ends the upgrade with an error, and the new
// process is killed.
package upgrade

import (
	"errors"
	"net"
	"time"
)

// DefaultUpgradeTimeout is how long Upgrade waits for the new process to
// call Ready when Options.UpgradeTimeout is zero.
const DefaultUpgradeTimeout = time.Minute

// Options configures an Upgrader. The zero value is a valid configuration.
type Options struct {
	// UpgradeTimeout bounds Upgrade's wait for the new process to call
	// Ready; it is then killed. Zero or negative means
	// DefaultUpgradeTimeout.
	UpgradeTimeout time.Duration

	// PIDFile, if set, is written with the process ID by Ready (through a
	// temporary file and a rename), so that a service manager follows the
	// process that serves: systemd's PIDFile= with Type=forking, say.
	PIDFile string

	// ListenConfig, if non-nil, opens the listeners that Listen does not
	// inherit, for socket options such as SO_REUSEPORT. Nil means a zero
	// net.ListenConfig.
	ListenConfig *net.ListenConfig
}

// Errors returned by an Upgrader's methods.
var (
	// ErrNotSupported is returned by New on systems that cannot pass
	// descriptors to a new process (all but Unix).
	ErrNotSupported = errors.New("upgrade: not supported on this system")

	// ErrNotReady is returned by Upgrade before Ready has been called: a
	// process that does not serve yet has nothing to hand over.
	ErrNotReady = errors.New("upgrade: process is not ready")

	// ErrInProgress is returned by Upgrade while another Upgrade runs.
	ErrInProgress = errors.New("upgrade: an upgrade is in progress")

	// ErrUpgraded is returned by Upgrade and Listen once an upgrade has
	// succeeded: the process should drain and exit.
	ErrUpgraded = errors.New("upgrade: already upgraded")
)
