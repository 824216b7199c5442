package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"imgtool/customize"
	"imgtool/internal/testimg"
	"imgtool/shrink/undo"
)

const editHelperEnv = "IMGTOOL_TEST_EDIT_HELPER"

// TestEditCrashHelper runs imgtool with the JSON-encoded arguments of
// IMGTOOL_TEST_EDIT_HELPER, in a child process of TestEditKilled.
func TestEditCrashHelper(t *testing.T) {
	spec := os.Getenv(editHelperEnv)
	if spec == "" {
		return
	}
	var args []string
	if err := json.Unmarshal([]byte(spec), &args); err != nil {
		t.Fatal(err)
	}
	os.Exit(run(context.Background(), args, os.Stdin, os.Stdout, os.Stderr))
}

// TestEditKilled kills customize and put after the Nth change to the
// image and checks that the next imgtool command restores the image
// exactly.
func TestEditKilled(t *testing.T) {
	img := customImage(t, "lib/systemd/system/ssh.service")
	pristine := img + ".orig"
	testimg.Run(t, "cp", "--sparse=always", img, pristine)
	orig := fileSHA256(t, img)
	src := filepath.Join(t.TempDir(), "file.bin")
	must(t, os.WriteFile(src, make([]byte, 300<<10), 0o644))
	hash := customize.SHA512Crypt("pw", "salt", 0)
	for _, args := range [][]string{
		{"customize", img, "--hostname", "box", "--user", "admin", "--password-hash", hash, "--ssh", "--timezone", "UTC", "--sysprep", "--boot-config", "dtoverlay=x"},
		{"put", img, src, "2:/etc/big.bin"},
		{"put", img, src, "1:/big.bin"},
	} {
		testimg.Run(t, "cp", "--sparse=always", pristine, img)
		killEachChange(t, img, orig, args, args[:3])
		fsckAll(t, img)
	}
}

// killEachChange runs imgtool with args in a child process killed after
// its 1st, 2nd, 3rd, 5th … change to img, until a run finishes, and
// checks after each kill that an undo file is left and that the next
// imgtool command restores img to the hash orig. what names the command
// in messages.
func killEachChange(t *testing.T, img, orig string, args, what []string) {
	t.Helper()
	enc, _ := json.Marshal(args)
	for _, n := range []int{1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377, 610, 987} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestEditCrashHelper$")
		cmd.Env = append(os.Environ(), editHelperEnv+"="+string(enc), undo.CrashEnv+"="+strconv.Itoa(n))
		out, _ := cmd.CombinedOutput()
		code := cmd.ProcessState.ExitCode()
		if code == 0 {
			return
		}
		if code != 3 {
			t.Fatalf("%v killed after change %d: exit %d: %s", what, n, code, out)
		}
		if !undo.Exists(img) {
			t.Fatalf("%v killed after change %d: no undo file", what, n)
		}
		if _, stderr, code := imgtool(t, "ls", img, "2:/"); code != 0 {
			t.Fatalf("ls after a kill: %s", stderr)
		}
		if fileSHA256(t, img) != orig || undo.Exists(img) {
			t.Fatalf("%v killed after change %d: image not restored", what, n)
		}
	}
	t.Fatalf("%v never finished", what)
}
