//go:build !linux

package main

import "os"

// sendFile has no in-kernel path on this system.
func sendFile(_, _ *os.File, _, _ int64) (int64, error) { return 0, errNoDirect }
