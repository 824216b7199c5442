package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
)

// imgtool runs the command line in-process and returns stdout, stderr and
// the exit status.
func imgtool(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(""), &stdout, &stderr)
	return stdout.String(), stderr.String(), code
}

// mustJSON runs imgtool with --json and decodes its output into v.
func mustJSON(t *testing.T, v any, args ...string) {
	t.Helper()
	out, errOut, code := imgtool(t, append(args, "--json")...)
	if code != 0 {
		t.Fatalf("imgtool %s: exit %d: %s", strings.Join(args, " "), code, errOut)
	}
	dec := json.NewDecoder(strings.NewReader(out))
	if err := dec.Decode(v); err != nil {
		t.Fatalf("imgtool %s --json: %v\n%s", strings.Join(args, " "), err, out)
	}
	if dec.More() {
		t.Fatalf("imgtool %s --json printed more than one JSON document", strings.Join(args, " "))
	}
}

func TestExitStatus(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"version"}, 0, ""},
		{[]string{"--help"}, 0, ""},
		{[]string{"inspect"}, 2, "accepts 1 arg"},
		{[]string{"inspect", "--bogus", "x"}, 2, "unknown flag"},
		{[]string{"nosuchcommand"}, 2, "unknown command"},
		{[]string{"inspect", "--fits", "huge", "x.img"}, 2, "--fits"},
		{[]string{"inspect", "/nonexistent/x.img"}, 1, "x.img"},
	} {
		_, stderr, code := imgtool(t, c.args...)
		if code != c.code {
			t.Errorf("imgtool %v: exit %d, want %d (stderr %q)", c.args, code, c.code, stderr)
		}
		if c.msg != "" && !strings.Contains(stderr, c.msg) {
			t.Errorf("imgtool %v: stderr %q does not mention %q", c.args, stderr, c.msg)
		}
		if c.code != 0 && strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("imgtool %v: error is not one line: %q", c.args, stderr)
		}
	}
}

func TestHelpHasExamplesAndExitStatus(t *testing.T) {
	out, _, _ := imgtool(t, "--help")
	if !strings.Contains(out, "EXIT STATUS") {
		t.Errorf("root help lacks EXIT STATUS:\n%s", out)
	}
	root := newRootCmd(&globalOptions{})
	for _, c := range root.Commands() {
		if c.Name() == "help" || c.Name() == "completion" {
			continue
		}
		if strings.TrimSpace(c.Example) == "" {
			t.Errorf("imgtool %s has no Examples block", c.Name())
		}
	}
}

func TestVersionJSON(t *testing.T) {
	var v map[string]string
	mustJSON(t, &v, "version")
	if v["version"] == "" || v["go"] == "" {
		t.Errorf("version --json = %v", v)
	}
}

func TestCompletion(t *testing.T) {
	for _, sh := range []string{"bash", "zsh", "fish", "powershell"} {
		out, stderr, code := imgtool(t, "completion", sh)
		if code != 0 || !strings.Contains(out, "imgtool") {
			t.Errorf("completion %s: exit %d, %d bytes, %s", sh, code, len(out), stderr)
		}
	}
}
