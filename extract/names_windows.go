package extract

import "strings"

// hostNameProblem refuses names that Windows would reinterpret: ":" (drive
// letters and alternate data streams), the other reserved characters,
// control characters, trailing dots and spaces (silently stripped, so "a."
// would become "a") and reserved device names.
func hostNameProblem(name string) string {
	for _, r := range name {
		if r < 32 || strings.ContainsRune(`<>:"|?*`, r) {
			return "name has a character Windows reserves"
		}
	}
	if strings.HasSuffix(name, ".") || strings.HasSuffix(name, " ") {
		return "name ends in a dot or space"
	}
	base := strings.ToUpper(name)
	if i := strings.IndexByte(base, '.'); i >= 0 {
		base = base[:i]
	}
	base = strings.TrimRight(base, " ")
	switch base {
	case "CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$":
		return "reserved device name"
	}
	if len(base) == 4 && (strings.HasPrefix(base, "COM") || strings.HasPrefix(base, "LPT")) {
		if c := base[3]; c >= '0' && c <= '9' {
			return "reserved device name"
		}
	}
	return ""
}
