package main

import (
	"errors"
	"io"
	"os"
	"syscall"
)

// sendFile copies n bytes at off of src to the current position of dst
// with sendfile(2): the data goes from the page cache to dst without
// passing through this process. It returns errNoDirect when nothing was
// copied because dst does not take it (a terminal, an O_APPEND file on old
// kernels).
func sendFile(dst, src *os.File, off, n int64) (int64, error) {
	rc, err := src.SyscallConn()
	if err != nil {
		return 0, errNoDirect
	}
	wc, err := dst.SyscallConn()
	if err != nil {
		return 0, errNoDirect
	}
	var done int64
	var serr error
	cerr := rc.Read(func(sfd uintptr) bool {
		werr := wc.Write(func(dfd uintptr) bool {
			for done < n {
				o := off + done
				k, err := syscall.Sendfile(int(dfd), int(sfd), &o, int(min(n-done, 1<<30)))
				if k > 0 {
					done += int64(k)
				}
				switch {
				case err == syscall.EINTR:
					continue
				case err == syscall.EAGAIN:
					return false // wait until dst (a non-blocking pipe) takes more
				case err != nil:
					serr = err
					return true
				case k == 0:
					serr = io.ErrUnexpectedEOF // src ended early
					return true
				}
			}
			return true
		})
		if werr != nil && serr == nil {
			serr = werr
		}
		return true
	})
	if cerr != nil && serr == nil {
		serr = cerr
	}
	if serr != nil && done == 0 && (errors.Is(serr, syscall.EINVAL) || errors.Is(serr, syscall.ENOSYS) || errors.Is(serr, syscall.EOPNOTSUPP)) {
		return 0, errNoDirect
	}
	return done, serr
}
