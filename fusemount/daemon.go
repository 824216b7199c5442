//go:build linux || darwin

package fusemount

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// readyEnv names the descriptor on which a process started by
// StartBackground reports that its mount is ready.
const readyEnv = "IMGTOOL_FUSEMOUNT_READY_FD"

const readyLine = "ready\n"

var (
	readyOnce sync.Once
	readyFile *os.File
)

// background picks up the readiness descriptor once, marks it
// close-on-exec and hides it from later child processes.
func background() *os.File {
	readyOnce.Do(func() {
		v := os.Getenv(readyEnv)
		if v == "" {
			return
		}
		os.Unsetenv(readyEnv)
		fd, err := strconv.Atoi(v)
		if err != nil || fd < 3 {
			return
		}
		syscall.CloseOnExec(fd)
		readyFile = os.NewFile(uintptr(fd), "ready")
	})
	return readyFile
}

// Background reports whether this process was started by
// StartBackground and must call NotifyReady once its mount is ready.
func Background() bool { return background() != nil }

// NotifyReady tells the process that called StartBackground that the
// mount is ready, and sends this process's standard output and error to
// /dev/null, as nobody reads them any more. It does nothing in a process
// not started by StartBackground.
func NotifyReady() error {
	f := background()
	if f == nil {
		return nil
	}
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer devnull.Close()
	for _, fd := range []int{0, 1, 2} {
		if err := unix.Dup2(int(devnull.Fd()), fd); err != nil {
			return err
		}
	}
	_, err = io.WriteString(f, readyLine)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// StartBackground runs exe with args in a new session and returns its
// process id once it calls NotifyReady. If it exits first, the error is a
// *BackgroundError with what it wrote to standard error. Cancelling ctx
// kills it.
func StartBackground(ctx context.Context, exe string, args []string) (int, error) {
	rr, rw, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	defer rr.Close()
	er, ew, err := os.Pipe()
	if err != nil {
		rw.Close()
		return 0, err
	}
	defer er.Close()
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), readyEnv+"=3")
	cmd.ExtraFiles = []*os.File{rw}
	cmd.Stderr = ew
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	rw.Close()
	ew.Close()
	if err != nil {
		return 0, fmt.Errorf("fusemount: starting %s: %w", exe, err)
	}
	var stderr bytes.Buffer
	copied := make(chan struct{})
	go func() {
		io.Copy(&stderr, io.LimitReader(er, 64<<10))
		io.Copy(io.Discard, er)
		close(copied)
	}()
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(rr).ReadString('\n')
		line <- s
	}()
	select {
	case <-ctx.Done():
		cmd.Process.Kill()
		cmd.Wait()
		return 0, ctx.Err()
	case s := <-line:
		if s == readyLine {
			pid := cmd.Process.Pid
			cmd.Process.Release()
			return pid, nil
		}
	}
	werr := cmd.Wait()
	<-copied
	msg := strings.TrimSpace(stderr.String())
	if msg == "" {
		if werr == nil {
			werr = errors.New("exited before the mount was ready")
		}
		msg = werr.Error()
	}
	return 0, &BackgroundError{Msg: msg}
}
