package image

import "strings"

// isWindowsDeviceName reports whether path is one of the Windows device
// names that Open reads as a device: \\.\PhysicalDriveN (a whole disk) or
// \\.\X: (a volume), also written with the \\?\ prefix or forward slashes,
// in any letter case. It is plain string matching, kept free of build tags
// so that it is tested on every system.
func isWindowsDeviceName(path string) bool {
	p := strings.ReplaceAll(path, "/", `\`)
	if !strings.HasPrefix(p, `\\.\`) && !strings.HasPrefix(p, `\\?\`) {
		return false
	}
	rest := p[4:]
	if len(rest) == 2 && rest[1] == ':' {
		c := rest[0] | 0x20 // lower case
		return c >= 'a' && c <= 'z'
	}
	const drive = "physicaldrive"
	if len(rest) <= len(drive) || !strings.EqualFold(rest[:len(drive)], drive) {
		return false
	}
	digits := rest[len(drive):]
	if len(digits) > 4 {
		return false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
