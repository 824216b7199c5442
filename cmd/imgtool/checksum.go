package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// sha256Flag is the help of --sha256 on every command that reads an image.
const sha256Flag = "check the input file's SHA-256 (`HEX` or a FILE.sha256 as sha256sum writes) before using it"

// verifyInputChecksum checks the SHA-256 of the file at path (as it is on
// disk: the compressed file as published, like sha256sum of a download)
// against spec: 64 hex digits, or the name of a checksum file in sha256sum's
// format (the line naming path's file, or its only line). An empty spec
// checks nothing. "ARCHIVE.zip:MEMBER" checks the archive.
func verifyInputChecksum(path, spec string) error {
	if spec == "" {
		return nil
	}
	want, err := expectedSHA256(path, spec)
	if err != nil {
		return err
	}
	file := path
	if _, err := os.Stat(file); err != nil {
		if i := strings.LastIndex(strings.ToLower(path), ".zip:"); i > 0 {
			file = path[:i+4]
		}
	}
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyBuffer(h, f, make([]byte, 1<<20)); err != nil {
		return fmt.Errorf("reading %s for its checksum: %w", file, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return fmt.Errorf("%s: SHA-256 is %s, expected %s: the file is damaged or not the one the checksum is for; download it again", file, got, want)
	}
	return nil
}

// expectedSHA256 turns --sha256's value into 64 lower-case hex digits.
func expectedSHA256(path, spec string) (string, error) {
	if isHexSum(spec) {
		return strings.ToLower(spec), nil
	}
	f, err := os.Open(spec)
	if err != nil {
		return "", usagef("--sha256 %s is neither 64 hex digits nor a readable checksum file: %v", spec, err)
	}
	defer f.Close()
	base := filepath.Base(path)
	if i := strings.LastIndex(strings.ToLower(base), ".zip:"); i > 0 {
		base = base[:i+4]
	}
	var sums []string
	var match string
	sc := bufio.NewScanner(io.LimitReader(f, 16<<20))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		sum, name, _ := strings.Cut(line, " ")
		if !isHexSum(sum) {
			continue
		}
		sums = append(sums, strings.ToLower(sum))
		name = strings.TrimLeft(strings.TrimSpace(name), "*")
		if name != "" && filepath.Base(name) == base {
			match = strings.ToLower(sum)
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("reading %s: %w", spec, err)
	}
	switch {
	case match != "":
		return match, nil
	case len(sums) == 1:
		return sums[0], nil
	case len(sums) == 0:
		return "", usagef("%s holds no SHA-256 (64 hex digits); give the checksum file or the digits themselves", spec)
	}
	return "", usagef("%s lists %d checksums and none for %s; give the digits with --sha256 HEX", spec, len(sums), base)
}

func isHexSum(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}
