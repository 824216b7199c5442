package meta

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

func TestHiddenLogDedupesAndBounds(t *testing.T) {
	var h HiddenLog
	if got := h.Hidden(); len(got) != 0 {
		t.Fatalf("zero log: %v", got)
	}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1500; i++ {
				h.Add(fmt.Sprintf("entry %d", i))
			}
		}()
	}
	wg.Wait()
	got := h.Hidden()
	if len(got) != maxHidden+1 {
		t.Fatalf("%d lines, want %d kept + 1 summary", len(got), maxHidden)
	}
	if !strings.Contains(got[maxHidden], "2000 further") { // 4 × 500 reports beyond the bound
		t.Errorf("summary line %q", got[maxHidden])
	}
	seen := map[string]bool{}
	for _, s := range got[:maxHidden] {
		if seen[s] {
			t.Fatalf("duplicate %q", s)
		}
		seen[s] = true
	}
}
