//go:build unix

package upgrade

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/seed80f6b3e8/httpsrv/internal/fdpass"
)

// envName is the variable that tells a new process what it inherits.
const envName = "HTTPSRV_UPGRADE"

// handoff is the value of HTTPSRV_UPGRADE, as JSON.
type handoff struct {
	Ready     int           `json:"ready"` // write end of the readiness pipe
	Listeners []inheritedFD `json:"listeners"`
}

// fds returns every descriptor h names.
func (h *handoff) fds() []int {
	fds := []int{h.Ready}
	for _, l := range h.Listeners {
		fds = append(fds, l.FD)
	}
	return fds
}

// inheritedFD is one listening socket passed to the new process.
type inheritedFD struct {
	Network string `json:"network"`
	Addr    string `json:"addr"` // as passed to Listen, not the bound address
	FD      int    `json:"fd"`
}

// The descriptors a parent passed are marked close-on-exec as soon as this
// package is initialized, before the init functions of the packages that
// import it and before main, not only by New: a process started before New
// (by a library's init, say) would otherwise inherit the readiness pipe,
// hiding this process's exit from the parent, and the listening sockets,
// keeping them open after every server process has gone.
var _ = closeInheritedOnExec()

// closeInheritedOnExec marks the descriptors named by HTTPSRV_UPGRADE
// close-on-exec. It leaves the variable for New.
func closeInheritedOnExec() bool {
	v, ok := os.LookupEnv(envName)
	if !ok {
		return false
	}
	var h handoff
	if json.Unmarshal([]byte(v), &h) != nil {
		return false
	}
	for _, fd := range h.fds() {
		if fd >= 3 {
			syscall.CloseOnExec(fd)
		}
	}
	return true
}

// key identifies a listener across processes: the arguments of Listen.
type key struct{ network, addr string }

// listener is a listener Listen returned: its Close removes it from the
// Upgrader's set, so that an Upgrade hands over only open listeners.
type listener struct {
	net.Listener // immutable
	key          // immutable
	u            *Upgrader
	inherited    bool                 // from the parent; immutable
	keepAlive    *net.KeepAliveConfig // for accepted TCP connections; nil: as net set them; immutable

	// owner, guarded by u.mu, is whether this process removes the socket
	// file of a Unix listener on Close: false for an inherited one until
	// Ready has told the parent (which then stops removing it).
	owner bool
}

// Accept waits for and returns the next connection. On a listener inherited
// from the parent, TCP connections get Options.ListenConfig's keep-alive
// settings, as the parent's listener gave them (net.FileListener's
// listener gives Go's defaults).
func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil || l.keepAlive == nil {
		return c, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		// Errors are ignored, as net.ListenConfig ignores them.
		if l.keepAlive.Enable {
			tc.SetKeepAliveConfig(*l.keepAlive)
		} else {
			tc.SetKeepAlive(false)
		}
	}
	return c, nil
}

// Close closes the listener and removes it from the Upgrader: later
// Upgrades do not hand it over, and Listen may open the pair again.
func (l *listener) Close() error {
	l.u.forget(l)
	return l.Listener.Close()
}

// SyscallConn returns the socket's raw connection, for socket options.
func (l *listener) SyscallConn() (syscall.RawConn, error) {
	sc, ok := l.Listener.(syscall.Conn)
	if !ok {
		return nil, fmt.Errorf("upgrade: listener %T has no file descriptor", l.Listener)
	}
	return sc.SyscallConn()
}

// unixPath returns the socket file a Unix listener removes on Close, or "".
func (l *listener) unixPath() string {
	ul, ok := l.Listener.(*net.UnixListener)
	if !ok {
		return ""
	}
	p := ul.Addr().String()
	if p == "" || p[0] == '@' { // unnamed or abstract: no file
		return ""
	}
	return p
}

// keepAliveFor returns the keep-alive settings net.ListenConfig lc gives
// accepted TCP connections (see net's newTCPConn), or nil if they are
// those of a zero ListenConfig, which net.FileListener's listener gives
// already. One difference remains: a negative field of KeepAliveConfig
// leaves Go's default (15 s, 15 s, 9) that net.FileListener set, not the
// system's.
func keepAliveFor(lc *net.ListenConfig) *net.KeepAliveConfig {
	if lc == nil || lc.KeepAlive == 0 && lc.KeepAliveConfig == (net.KeepAliveConfig{}) {
		return nil
	}
	cfg := lc.KeepAliveConfig
	if !cfg.Enable && lc.KeepAlive >= 0 {
		cfg = net.KeepAliveConfig{Enable: true, Idle: lc.KeepAlive}
	}
	return &cfg
}

// child is a new process that an Upgrade started.
type child struct {
	pid  int
	done chan struct{} // closed once the process has exited and been reaped

	// Set before done is closed.
	state *os.ProcessState
	err   error
}

// wait waits for proc, the process c describes, to exit, and reaps it.
// After a successful Upgrade it runs until the new process exits.
func (c *child) wait(proc *os.Process) {
	c.state, c.err = proc.Wait()
	close(c.done)
}

// Upgrader hands a process's listening sockets to a new copy of its binary
// and tells the process when to drain. Create it with New, early in main.
// Its methods are safe for concurrent use.
type Upgrader struct {
	opts      Options
	dir       string // working directory when New ran, or "" if unknown; immutable
	hasParent bool   // immutable

	exitOnce sync.Once // guards close(exit)
	exit     chan struct{}

	mu        sync.Mutex  // guards the fields below
	parent    *os.File    // write end of the parent's readiness pipe, until Ready
	inherited map[key]int // descriptors from the parent that Listen has not claimed
	listeners []*listener // the open listeners Listen returned, in order
	orphans   []string    // socket files of Unix listeners closed during an Upgrade
	ready     bool        // Ready succeeded
	upgrading bool        // an Upgrade runs
	upgraded  bool        // an Upgrade succeeded
	next      *child      // the new process of the successful Upgrade
}

// New returns an Upgrader for this process. If the process was started by
// an Upgrade, New takes the listening sockets and the readiness pipe its
// parent passed, and unsets HTTPSRV_UPGRADE so that no later child takes
// them too; only the first New in a process can have a parent. The
// descriptors are close-on-exec (from the package's initialization on).
//
// New does not look for the binary that Upgrade starts; Upgrade does.
func New(opts Options) (*Upgrader, error) {
	dir, _ := os.Getwd() // "" if unknown: Upgrade then needs an absolute path
	u := &Upgrader{opts: opts, dir: dir, exit: make(chan struct{}), inherited: make(map[key]int)}
	v, ok := os.LookupEnv(envName)
	os.Unsetenv(envName)
	if !ok {
		return u, nil
	}
	var h handoff
	if err := json.Unmarshal([]byte(v), &h); err != nil {
		return nil, fmt.Errorf("upgrade: %s: %w", envName, err)
	}
	for _, fd := range h.fds() {
		if fd < 3 {
			return nil, fmt.Errorf("upgrade: %s: descriptor %d is not an inherited one", envName, fd)
		}
		syscall.CloseOnExec(fd)
	}
	for _, l := range h.Listeners {
		u.inherited[key{l.Network, l.Addr}] = l.FD
	}
	u.parent = os.NewFile(uintptr(h.Ready), "upgrade-ready")
	u.hasParent = true
	return u, nil
}

// executable returns the binary Upgrade starts: os.Args[0] resolved as a
// shell would (through PATH if it has no slash, relative to the working
// directory New saw), so that a binary installed over the running one is
// started, or, if that names no file (a process started under another
// name), the one os.Executable reports. On Linux that is where the running
// binary was started from, with a file installed there since (by rename)
// in its place, but it follows the running binary if that was moved away.
func (u *Upgrader) executable() (string, error) {
	p, err := lookArgs0(u.dir)
	if err == nil {
		return p, nil
	}
	exe, xerr := os.Executable()
	if xerr != nil {
		return "", fmt.Errorf("upgrade: finding the binary to start: %w", errors.Join(err, xerr))
	}
	return exe, nil
}

// lookArgs0 resolves os.Args[0] relative to dir.
func lookArgs0(dir string) (string, error) {
	if len(os.Args) == 0 || os.Args[0] == "" {
		return "", errors.New("os.Args[0] is empty")
	}
	name := os.Args[0]
	if !strings.Contains(name, "/") {
		p, err := exec.LookPath(name)
		if err != nil && !errors.Is(err, exec.ErrDot) {
			return "", err
		}
		name = p
	}
	if !filepath.IsAbs(name) {
		if dir == "" {
			return "", fmt.Errorf("%s: relative, and the working directory is unknown", name)
		}
		name = filepath.Join(dir, name)
	}
	fi, err := os.Stat(name)
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s: not a regular file", name)
	}
	return name, nil
}

// HasParent reports whether this process was started by an Upgrade.
func (u *Upgrader) HasParent() bool { return u.hasParent }

// Listen returns the listening socket the parent passed for network and
// address, or, if there is none (the first process, or a new address),
// listens with Options.ListenConfig. The pair is the key across processes:
// pass the same arguments, not the address the socket got (for ":0", say).
// Every listener Listen returns is handed to the next process by Upgrade
// until it is closed. Listen returns an error if the pair is already
// listening in this process, ErrInProgress while an Upgrade runs, and
// ErrUpgraded after a successful Upgrade.
//
// The listener is not a *net.TCPListener or *net.UnixListener; it
// implements syscall.Conn. An inherited TCP listener gives accepted
// connections Options.ListenConfig's keep-alive settings, and an inherited
// Unix listener removes its socket file on Close once Ready has told the
// parent (before that, the parent still owns the file).
func (u *Upgrader) Listen(network, addr string) (net.Listener, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	switch {
	case u.upgraded:
		return nil, ErrUpgraded
	case u.upgrading:
		return nil, ErrInProgress
	}
	k := key{network, addr}
	for _, l := range u.listeners {
		if l.key == k {
			return nil, fmt.Errorf("upgrade: already listening on %s %s", network, addr)
		}
	}
	l := &listener{key: k, u: u, owner: true}
	var err error
	if fd, ok := u.inherited[k]; ok {
		delete(u.inherited, k)
		l.Listener, err = fdpass.Listener(fd, network+":"+addr)
		if err != nil {
			syscall.Close(fd)
		} else {
			l.inherited = true
			l.owner = u.ready // false: Ready closes unclaimed descriptors
			l.keepAlive = keepAliveFor(u.opts.ListenConfig)
			u.setUnlinkLocked(l)
		}
	} else {
		lc := u.opts.ListenConfig
		if lc == nil {
			lc = new(net.ListenConfig)
		}
		l.Listener, err = lc.Listen(context.Background(), network, addr)
	}
	if err != nil {
		return nil, fmt.Errorf("upgrade: %w", err)
	}
	u.listeners = append(u.listeners, l)
	return l, nil
}

// setUnlinkLocked sets whether Close of l, a Unix listener, removes its
// socket file: only if this process owns it and is not handing it over.
// It requires that u.mu is held, and that l is in u.listeners (so that its
// Close is not running).
func (u *Upgrader) setUnlinkLocked(l *listener) {
	if ul, ok := l.Listener.(*net.UnixListener); ok && l.unixPath() != "" {
		ul.SetUnlinkOnClose(l.owner && !u.upgrading && !u.upgraded)
	}
}

// forget removes l from the listeners an Upgrade hands over.
func (u *Upgrader) forget(l *listener) {
	u.mu.Lock()
	defer u.mu.Unlock()
	i := slices.Index(u.listeners, l)
	if i < 0 {
		return
	}
	u.listeners = slices.Delete(u.listeners, i, i+1)
	if p := l.unixPath(); p != "" && l.owner && u.upgrading {
		// The new process has the socket; if the Upgrade fails, nobody
		// does, and its file is removed then.
		u.orphans = append(u.orphans, p)
	}
}

// Ready says that this process serves: it closes the inherited sockets
// Listen did not claim, writes Options.PIDFile, and then tells the parent,
// if any, that the upgrade succeeded, so that the parent drains and exits.
// Call it once every listener is being served.
//
// If writing the PID file fails, Ready returns the error and does not tell
// the parent, which then keeps serving: its Upgrade fails at once and ends
// this process. If telling the parent fails (its Upgrade has given up),
// Ready returns that error. In both cases this process should exit. A
// process without a parent may call Ready again after an error; calls after
// a successful one do nothing.
func (u *Upgrader) Ready() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.ready {
		return nil
	}
	for _, fd := range u.inherited {
		syscall.Close(fd)
	}
	clear(u.inherited)

	var err error
	if u.opts.PIDFile != "" {
		err = writePIDFile(u.opts.PIDFile)
	}
	if u.parent != nil {
		if err == nil {
			// The byte is the commit: once written, the parent drains.
			if _, werr := u.parent.Write([]byte{1}); werr != nil {
				err = fmt.Errorf("upgrade: telling the parent: %w", werr)
			}
		}
		u.parent.Close()
		u.parent = nil
	}
	if err != nil {
		return err
	}
	u.ready = true
	for _, l := range u.listeners {
		if l.inherited {
			l.owner = true
			u.setUnlinkLocked(l)
		}
	}
	return nil
}

// Upgrade starts the new binary (see the package documentation for which
// file) with this process's open listeners and waits until it calls Ready,
// Options.UpgradeTimeout passes, or it exits. It returns nil once the new
// process is ready, and then closes the Exit channel: this process should
// stop serving with Shutdown (which closes only its own descriptors; the
// sockets stay open in the new process, and Unix socket files stay in
// place) and exit. Otherwise the new process has been killed (with
// SIGKILL: it must not run a shutdown of its own, which could remove a
// Unix socket file this process serves), Options.PIDFile is written again
// with this process's ID, this process keeps serving, and Upgrade can be
// called again. At most one Upgrade runs at a time (ErrInProgress); it
// requires Ready (ErrNotReady) and returns ErrUpgraded after one has
// succeeded.
//
// After a successful Upgrade, the new process remains a child of this
// one, and a goroutine waits for it, so that it does not become a zombie
// if it exits first; that goroutine ends when the new process exits. A
// leak check run as this process exits (goleak) sees it: ignore
// "github.com/seed80f6b3e8/httpsrv/upgrade.(*child).wait".
func (u *Upgrader) Upgrade() error {
	u.mu.Lock()
	switch {
	case u.upgraded:
		u.mu.Unlock()
		return ErrUpgraded
	case !u.ready:
		u.mu.Unlock()
		return ErrNotReady
	case u.upgrading:
		u.mu.Unlock()
		return ErrInProgress
	}
	path, err := u.executable()
	if err != nil {
		u.mu.Unlock()
		return err
	}
	// Duplicate the descriptors now: a listener closed during the Upgrade
	// is still handed over, and Listen fails meanwhile, so the new process
	// gets exactly the listeners open when the Upgrade began.
	var files []*os.File
	h := handoff{Ready: 3} // 0-2 are the standard streams, 3 the readiness pipe
	for _, l := range u.listeners {
		f, ferr := fdpass.File(l.Listener)
		if ferr != nil {
			err = fmt.Errorf("upgrade: %w", ferr)
			break
		}
		h.Listeners = append(h.Listeners, inheritedFD{Network: l.network, Addr: l.addr, FD: 4 + len(files)})
		files = append(files, f)
	}
	if err != nil {
		u.mu.Unlock()
		for _, f := range files {
			f.Close()
		}
		return err
	}
	u.upgrading = true
	for _, l := range u.listeners {
		u.setUnlinkLocked(l)
	}
	u.mu.Unlock()

	c, err := u.start(path, files, h)

	u.mu.Lock()
	u.upgrading = false
	orphans := u.orphans
	u.orphans = nil
	if err == nil {
		u.upgraded, u.next = true, c
	} else {
		for _, p := range orphans {
			os.Remove(p)
		}
	}
	for _, l := range u.listeners {
		u.setUnlinkLocked(l)
	}
	u.mu.Unlock()
	if err != nil {
		if u.opts.PIDFile != "" {
			// The new process may have written its own ID.
			err = errors.Join(err, writePIDFile(u.opts.PIDFile))
		}
		return err
	}
	u.exitOnce.Do(func() { close(u.exit) })
	return nil
}

// start runs the binary at path with files (closing them) as the
// descriptors from 4 on, and waits for its readiness byte.
func (u *Upgrader) start(path string, files []*os.File, h handoff) (*child, error) {
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("upgrade: readiness pipe: %w", err)
	}
	defer r.Close()
	v, err := json.Marshal(h)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("upgrade: %w", err)
	}
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, envName+"=") })
	proc, err := os.StartProcess(path, os.Args, &os.ProcAttr{
		Dir:   u.dir,
		Env:   append(env, envName+"="+string(v)),
		Files: append([]*os.File{os.Stdin, os.Stdout, os.Stderr, w}, files...),
	})
	// Only the child holds the pipe's write end now.
	w.Close()
	if err != nil {
		return nil, fmt.Errorf("upgrade: starting %s: %w", path, err)
	}
	c := &child{pid: proc.Pid, done: make(chan struct{})}
	go c.wait(proc)

	// The process's exit is seen directly, not only as the end of the
	// pipe, which a process it started may hold open.
	readDone := make(chan error, 1)
	go func() {
		var b [1]byte
		_, err := io.ReadFull(r, b[:])
		readDone <- err
	}()
	timeout := u.opts.UpgradeTimeout
	if timeout <= 0 {
		timeout = DefaultUpgradeTimeout
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var rerr error
	timedOut := false
	select {
	case rerr = <-readDone:
	case <-c.done:
		rerr = errNoByte
	case <-timer.C:
		rerr, timedOut = errNoByte, true
	}
	if rerr == errNoByte {
		// Stop the read; a byte written before the process exited or the
		// time ran out still counts.
		r.SetReadDeadline(time.Now())
		if rerr = <-readDone; errors.Is(rerr, os.ErrDeadlineExceeded) {
			rerr = pollByte(r)
		}
	}
	if rerr == nil {
		return c, nil
	}
	proc.Kill()
	<-c.done
	var ws syscall.WaitStatus
	if c.state != nil {
		ws, _ = c.state.Sys().(syscall.WaitStatus)
	}
	switch {
	case timedOut:
		return nil, fmt.Errorf("upgrade: new process %d not ready within %v; killed", c.pid, timeout)
	case c.err != nil:
		return nil, fmt.Errorf("upgrade: new process %d: %w", c.pid, c.err)
	case ws.Signaled() && ws.Signal() == syscall.SIGKILL:
		// Killed above, or by someone else, while it ran.
		return nil, fmt.Errorf("upgrade: new process %d closed the readiness pipe without being ready (its Ready failed?); killed", c.pid)
	default:
		return nil, fmt.Errorf("upgrade: new process %d exited before it was ready: %v", c.pid, c.state)
	}
}

// errNoByte means that the readiness byte has not arrived.
var errNoByte = errors.New("upgrade: no readiness byte")

// pollByte reads the readiness byte from r if it is there, without waiting.
func pollByte(r *os.File) error {
	if err := r.SetReadDeadline(time.Time{}); err != nil {
		return err
	}
	rc, err := r.SyscallConn()
	if err != nil {
		return err
	}
	var b [1]byte
	n := 0
	if err := rc.Read(func(fd uintptr) bool {
		var err error
		for {
			n, err = syscall.Read(int(fd), b[:])
			if err != syscall.EINTR {
				return true // one attempt: the pipe is non-blocking
			}
		}
	}); err != nil {
		return err
	}
	if n == 1 {
		return nil
	}
	return errNoByte
}

// Exit returns a channel that is closed when an Upgrade has succeeded and
// this process should drain and exit.
func (u *Upgrader) Exit() <-chan struct{} { return u.exit }

// writePIDFile writes this process's ID to path through a temporary file in
// the same directory and a rename, so that a reader never sees it partly
// written.
func writePIDFile(path string) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("upgrade: PID file: %w", err)
	}
	_, err = f.WriteString(strconv.Itoa(os.Getpid()) + "\n")
	err = errors.Join(err, f.Chmod(0o644), f.Close())
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("upgrade: PID file: %w", err)
	}
	return nil
}
