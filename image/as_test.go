package image

import (
	"io"
	"strings"
	"testing"
)

type streamer struct{ Image }

func (streamer) Stream() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader("s")), nil }

func TestAsFindsWrappedCapability(t *testing.T) {
	inner := streamer{NewReader(strings.NewReader("abc"), 3)}
	wrapped := &owned{Image: inner}
	if _, ok := Image(wrapped).(interface{ Stream() (io.ReadCloser, error) }); ok {
		t.Fatal("the wrapper itself should not show Stream")
	}
	s, ok := As[interface{ Stream() (io.ReadCloser, error) }](wrapped)
	if !ok {
		t.Fatal("As did not find Stream through Unwrap")
	}
	rc, _ := s.Stream()
	b, _ := io.ReadAll(rc)
	if string(b) != "s" {
		t.Errorf("Stream read %q", b)
	}
	if _, ok := As[interface{ Bogus() }](wrapped); ok {
		t.Error("As found a method nobody has")
	}
}
