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

// inheritedFD is one listening socket passed to the new process.
type inheritedFD struct {
	Network string `json:"network"`
	Addr    string `json:"addr"` // as passed to Listen, not the bound address
	FD      int    `json:"fd"`
}

// key identifies a listener across processes: the arguments of Listen.
type key struct{ network, addr string }

// entry is a listener returned by Listen.
type entry struct {
	key
	ln net.Listener
}

// Upgrader hands a process's listening sockets to a new copy of its binary
// and tells the process when to drain. Create it with New, early in main.
// Its methods are safe for concurrent use.
type Upgrader struct {
	opts      Options
	path, dir string // the binary to start and its working directory; immutable
	hasParent bool   // immutable

	exitOnce sync.Once // guards close(exit)
	exit     chan struct{}

	mu        sync.Mutex  // guards the fields below
	parent    *os.File    // write end of the parent's readiness pipe, until Ready
	inherited map[key]int // descriptors from the parent that Listen has not claimed
	listeners []entry     // every listener Listen returned, in order
	ready     bool        // Ready was called
	upgrading bool        // an Upgrade runs
	upgraded  bool        // an Upgrade succeeded
}

// New returns an Upgrader for this process. If the process was started by
// an Upgrade, New takes the listening sockets and the readiness pipe its
// parent passed, and unsets HTTPSRV_UPGRADE so that no later child takes
// them too; only the first New in a process can have a parent. The
// descriptors are close-on-exec.
func New(opts Options) (*Upgrader, error) {
	dir, err := os.Getwd()
	if err != nil {
		return nil, fmt.Errorf("upgrade: working directory: %w", err)
	}
	path, err := executable(dir)
	if err != nil {
		return nil, err
	}
	u := &Upgrader{opts: opts, path: path, dir: dir, exit: make(chan struct{}), inherited: make(map[key]int)}
	v, ok := os.LookupEnv(envName)
	os.Unsetenv(envName)
	if !ok {
		return u, nil
	}
	var h handoff
	if err := json.Unmarshal([]byte(v), &h); err != nil {
		return nil, fmt.Errorf("upgrade: %s: %w", envName, err)
	}
	fds := []int{h.Ready}
	for _, l := range h.Listeners {
		fds = append(fds, l.FD)
		u.inherited[key{l.Network, l.Addr}] = l.FD
	}
	for _, fd := range fds {
		if fd < 3 {
			return nil, fmt.Errorf("upgrade: %s: descriptor %d is not an inherited one", envName, fd)
		}
		syscall.CloseOnExec(fd)
	}
	u.parent = os.NewFile(uintptr(h.Ready), "upgrade-ready")
	u.hasParent = true
	return u, nil
}

// executable resolves os.Args[0] as exec would, relative to dir, so that
// Upgrade starts the file now at that path even after the running binary
// was replaced (os.Executable would name the replaced one).
func executable(dir string) (string, error) {
	name := os.Args[0]
	if !strings.Contains(name, "/") {
		p, err := exec.LookPath(name)
		if err != nil && !errors.Is(err, exec.ErrDot) {
			return "", fmt.Errorf("upgrade: finding %s: %w", name, err)
		}
		name = p
	}
	if !filepath.IsAbs(name) {
		name = filepath.Join(dir, name)
	}
	return name, nil
}

// HasParent reports whether this process was started by an Upgrade.
func (u *Upgrader) HasParent() bool { return u.hasParent }

// Listen returns the listening socket the parent passed for network and
// address, or, if there is none (the first process, or a new address),
// listens with Options.ListenConfig. The pair is the key across processes:
// pass the same arguments, not the address the socket got (for ":0", say).
// Every listener Listen returns is handed to the next process by Upgrade.
// Listen returns an error if the pair is already listening in this process,
// and ErrUpgraded after a successful Upgrade.
func (u *Upgrader) Listen(network, addr string) (net.Listener, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.upgraded {
		return nil, ErrUpgraded
	}
	k := key{network, addr}
	for _, e := range u.listeners {
		if e.key == k {
			return nil, fmt.Errorf("upgrade: already listening on %s %s", network, addr)
		}
	}
	var ln net.Listener
	var err error
	if fd, ok := u.inherited[k]; ok {
		delete(u.inherited, k)
		ln, err = fdpass.Listener(fd, network+":"+addr)
	} else {
		lc := u.opts.ListenConfig
		if lc == nil {
			lc = new(net.ListenConfig)
		}
		ln, err = lc.Listen(context.Background(), network, addr)
	}
	if err != nil {
		return nil, fmt.Errorf("upgrade: %w", err)
	}
	u.listeners = append(u.listeners, entry{k, ln})
	return ln, nil
}

// Ready says that this process serves: it closes the inherited sockets
// Listen did not claim, writes Options.PIDFile, and tells the parent, if
// any, that the upgrade succeeded, so that the parent drains and exits.
// Call it once every listener is being served. Calls after the first do
// nothing.
func (u *Upgrader) Ready() error {
	u.mu.Lock()
	if u.ready {
		u.mu.Unlock()
		return nil
	}
	u.ready = true
	for _, fd := range u.inherited {
		syscall.Close(fd)
	}
	clear(u.inherited)
	parent := u.parent
	u.parent = nil
	u.mu.Unlock()

	var err error
	if u.opts.PIDFile != "" {
		err = writePIDFile(u.opts.PIDFile)
	}
	if parent != nil {
		_, werr := parent.Write([]byte{1})
		if werr = errors.Join(werr, parent.Close()); werr != nil {
			err = errors.Join(err, fmt.Errorf("upgrade: telling the parent: %w", werr))
		}
	}
	return err
}

// Upgrade starts the new binary with this process's listeners and waits
// until it calls Ready, Options.UpgradeTimeout passes, or it exits. It
// returns nil once the new process is ready, and then closes the Exit
// channel: this process should stop serving with Shutdown (which closes
// only its own descriptors; the sockets stay open in the new process) and
// exit. Otherwise the new process has been killed, this process keeps
// serving, and Upgrade can be called again. At most one Upgrade runs at a
// time (ErrInProgress); it requires Ready (ErrNotReady) and returns
// ErrUpgraded after one has succeeded.
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
	u.upgrading = true
	entries := slices.Clone(u.listeners)
	u.mu.Unlock()

	err := u.start(entries)

	u.mu.Lock()
	u.upgrading = false
	u.upgraded = err == nil
	u.mu.Unlock()
	if err != nil {
		return err
	}
	for _, e := range entries {
		// Closing a Unix listener would remove the socket file the new
		// process now serves.
		if ul, ok := e.ln.(*net.UnixListener); ok {
			ul.SetUnlinkOnClose(false)
		}
	}
	u.exitOnce.Do(func() { close(u.exit) })
	return nil
}

// start runs the new process with the listeners in entries and waits for
// its readiness byte.
func (u *Upgrader) start(entries []entry) (err error) {
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("upgrade: readiness pipe: %w", err)
	}
	defer r.Close()
	files := []*os.File{w}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	// The child's descriptors: 0-2 are the standard streams, 3 the
	// readiness pipe, then the listeners.
	h := handoff{Ready: 3}
	for _, e := range entries {
		f, err := fdpass.File(e.ln)
		if err != nil {
			return fmt.Errorf("upgrade: %w", err)
		}
		h.Listeners = append(h.Listeners, inheritedFD{Network: e.network, Addr: e.addr, FD: 3 + len(files)})
		files = append(files, f)
	}
	v, err := json.Marshal(h)
	if err != nil {
		return fmt.Errorf("upgrade: %w", err)
	}
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, envName+"=") })
	proc, err := os.StartProcess(u.path, os.Args, &os.ProcAttr{
		Dir:   u.dir,
		Env:   append(env, envName+"="+string(v)),
		Files: append([]*os.File{os.Stdin, os.Stdout, os.Stderr}, files...),
	})
	if err != nil {
		return fmt.Errorf("upgrade: starting the new process: %w", err)
	}
	// Only the child holds the pipe's write end now: its exit ends the
	// read below.
	for _, f := range files {
		f.Close()
	}
	files = nil

	timeout := u.opts.UpgradeTimeout
	if timeout <= 0 {
		timeout = DefaultUpgradeTimeout
	}
	if err := r.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		proc.Kill()
		proc.Wait()
		return fmt.Errorf("upgrade: readiness pipe: %w", err)
	}
	var b [1]byte
	n, rerr := r.Read(b[:])
	if n == 1 {
		return proc.Release()
	}
	proc.Kill()
	state, werr := proc.Wait()
	pid := strconv.Itoa(proc.Pid)
	switch {
	case errors.Is(rerr, os.ErrDeadlineExceeded):
		return fmt.Errorf("upgrade: new process %s not ready within %v; killed", pid, timeout)
	case errors.Is(rerr, io.EOF) && werr == nil:
		return fmt.Errorf("upgrade: new process %s exited before it was ready: %v", pid, state)
	default:
		return fmt.Errorf("upgrade: new process %s: %w", pid, errors.Join(rerr, werr))
	}
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
