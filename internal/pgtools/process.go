package pgtools

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// stderrTail is how much of a tool's standard error is kept for its
// error message.
const stderrTail = 4 << 10

// Command is the client program at path, set up the way pg_dump,
// pg_restore and psql always run: with ToolEnv(libpq) as its whole
// environment (the connection, and none of the process's secrets), in a
// process group of its own that is killed when ctx ends (a wrapper
// script's children, a pg_dump behind a shell, must not keep a pipe open
// after the script is gone), and the end of its standard error kept in the
// returned Tail, where its error is.
func Command(ctx context.Context, path string, libpq []string, args ...string) (*exec.Cmd, *Tail) {
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = ToolEnv(libpq)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return Kill(cmd) }
	cmd.WaitDelay = 5 * time.Second
	stderr := newTail(stderrTail)
	cmd.Stderr = stderr
	return cmd, stderr
}

// Kill kills the process group of a cmd made by Command at once, before
// its context ends: a restore whose input failed its check must die before
// its standard input closes, or it could commit. A group already gone is
// os.ErrProcessDone.
func Kill(cmd *exec.Cmd) error {
	if cmd.Process == nil {
		return nil
	}
	err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	if errors.Is(err, syscall.ESRCH) {
		return os.ErrProcessDone
	}
	return err
}

// Tail keeps the last bytes a tool wrote to stderr: the end of what it
// said, where its error is.
type Tail struct {
	mu  sync.Mutex
	max int
	b   []byte
}

// newTail keeps at most max bytes.
func newTail(max int) *Tail { return &Tail{max: max} }

func (t *Tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append([]byte(nil), t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

// String is the last messages kept, one line each, joined with " / ".
func (t *Tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	lines := strings.Split(strings.TrimSpace(string(t.b)), "\n")
	if len(lines) > 6 {
		lines = lines[len(lines)-6:]
	}
	return strings.Join(lines, " / ")
}
