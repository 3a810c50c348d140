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
//	// Before Ready: from then on a SIGHUP may come (the PID file names
//	// this process), and its default action would end the process.
//	sigs := make(chan os.Signal, 1)
//	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM)
//	serving := make(chan struct{})
//	srv := &httpsrv.Server{Handler: mux, BaseContext: func(net.Listener) context.Context {
//		close(serving) // certificate loaded, about to accept
//		return context.Background()
//	}}
//	serveErr := make(chan error, 1)
//	go func() { serveErr <- srv.ServeTLS(ln, "cert.pem", "key.pem") }()
//	select {
//	case <-serving:
//	case err := <-serveErr: // a bad certificate, say: the parent keeps serving
//		log.Fatal(err)
//	}
//	if err := upg.Ready(); err != nil { // tells the parent, if any, to drain
//		log.Fatal(err)
//	}
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
// Call Ready only once the server serves: a new binary that calls it
// right after go srv.ServeTLS(...) says it is ready even when ServeTLS
// then fails (a certificate it cannot load, a bad setting), and the parent
// drains and exits, leaving no process to accept from the socket. Waiting
// for BaseContext, which ServeTLS calls after loading the certificate and
// just before its first Accept, or for ServeTLS's error, lets such a
// binary exit before Ready, and the parent's Upgrade fail with the old
// process still serving. Register the signals before Ready too.
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
// The new process is the file named by os.Args[0], looked up when Upgrade
// runs (through PATH for a bare name, relative to the working directory
// New saw), so that a binary installed over the running one is the one
// started; if os.Args[0] names no file (a process started under another
// name), it is the file os.Executable reports. It gets the same arguments,
// working directory, standard streams and environment, plus
// HTTPSRV_UPGRADE: JSON naming the descriptors it inherits (the write end
// of the readiness pipe, then one per open listener, each with the network
// and address it was opened for). The package marks them close-on-exec
// when it is initialized, so that a process the new binary starts before
// New does not inherit them. The parent waits for one byte on the pipe
// and for the new process itself: its exit, the end of the pipe without
// the byte (its Ready failed), or Options.UpgradeTimeout ends the upgrade
// with an error, and the new process is killed.
//
// # systemd
//
// Run the first process with Type=simple (the default: the process does
// not fork, so Type=forking does not fit), Options.PIDFile and the unit's
// PIDFile= naming the same file, and ExecReload=kill -HUP $MAINPID (the
// recipe tableflip gives). systemd reads PIDFile= when an ExecReload=
// command ends, too early here, and again when the process it knows as
// MainPID exits: since Ready writes the file before it tells the parent,
// and the parent exits only after that, the file then names the new
// process, which becomes MainPID. That is systemd's source (service.c,
// service_sigchld_event), not a test run here. This package does not send
// sd_notify's MAINPID=, which would tell systemd directly; with socket
// activation instead (httpsrv.ActivationListeners), systemd restarts the
// service itself and no PID file is needed.
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
	// temporary file and a rename) before Ready tells the parent, and
	// again by a failed Upgrade, so that a service manager can follow the
	// process that serves (see the package documentation for systemd).
	// Empty means no PID file.
	PIDFile string

	// ListenConfig, if non-nil, opens the listeners that Listen does not
	// inherit, for socket options such as SO_REUSEPORT. Its KeepAlive and
	// KeepAliveConfig also apply to connections accepted on inherited TCP
	// listeners, as they did in the process that opened them. Nil means a
	// zero net.ListenConfig.
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

	// ErrInProgress is returned by Upgrade while another Upgrade runs, and
	// by Listen while an Upgrade runs (a listener opened then would not
	// reach the new process).
	ErrInProgress = errors.New("upgrade: an upgrade is in progress")

	// ErrUpgraded is returned by Upgrade and Listen once an upgrade has
	// succeeded: the process should drain and exit.
	ErrUpgraded = errors.New("upgrade: already upgraded")
)
