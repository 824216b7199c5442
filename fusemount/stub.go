//go:build !linux && !darwin

package fusemount

import (
	"context"
	"fmt"
	iofs "io/fs"
	"runtime"
)

// Server is a mounted filesystem; on this operating system there is none.
type Server struct{}

func notAvailable() error {
	return fmt.Errorf("%w on %s: use imgtool get to copy files out of the image instead", ErrNotAvailable, runtime.GOOS)
}

// Mount is not available on this operating system: it returns an error
// wrapping ErrNotAvailable that suggests imgtool get.
func Mount(mountpoint string, fsys iofs.FS, opts Options) (*Server, error) {
	return nil, notAvailable()
}

// MountPartitions is not available on this operating system.
func MountPartitions(mountpoint string, parts []Partition, opts Options) (*Server, error) {
	return nil, notAvailable()
}

// Available reports that FUSE cannot be used on this operating system.
func Available() error { return notAvailable() }

// Unmount is not available on this operating system.
func Unmount(mountpoint string, lazy bool) error { return notAvailable() }

// Mountpoint returns "".
func (s *Server) Mountpoint() string { return "" }

// Done returns a closed channel.
func (s *Server) Done() <-chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}

// Wait returns at once.
func (s *Server) Wait() {}

// Unmount returns the not-available error.
func (s *Server) Unmount() error { return notAvailable() }

// UnmountLazy returns the not-available error.
func (s *Server) UnmountLazy() error { return notAvailable() }

// StartBackground is not available on this operating system.
func StartBackground(ctx context.Context, exe string, args []string) (int, error) {
	return 0, notAvailable()
}

// Background reports false: no process here is started by
// StartBackground.
func Background() bool { return false }

// NotifyReady does nothing here.
func NotifyReady() error { return nil }
