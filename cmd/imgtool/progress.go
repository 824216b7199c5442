package main

import (
	"fmt"
	"io"
	"sync"
	"time"

	"imgtool/flash"
	"imgtool/internal/units"
)

// progressBar draws the phases of a long byte copy (write, verify, read,
// capacity check) on one terminal line with percentage, rate and ETA,
// redrawn five times a second from a counter the workers update with
// atomics. A finished phase is left on its own line with its average rate.
// It implements flash.Progress.
type progressBar struct {
	w       io.Writer
	c       flash.Counter
	mu      sync.Mutex
	start   time.Time // of the current phase
	drawn   bool
	stop    chan struct{}
	stopped chan struct{}
}

func newProgressBar(w io.Writer) *progressBar {
	p := &progressBar{w: w, stop: make(chan struct{}), stopped: make(chan struct{})}
	go p.loop()
	return p
}

// Phase implements flash.Progress: it closes the line of the previous
// phase and starts a new one.
func (p *progressBar) Phase(name string, total int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.finishLocked()
	p.c.Phase(name, total)
	p.start = time.Now()
}

// Update implements flash.Progress.
func (p *progressBar) Update(n int64) { p.c.Update(n) }

// Done stops redrawing and leaves the last phase's summary line.
func (p *progressBar) Done() {
	close(p.stop)
	<-p.stopped
	p.mu.Lock()
	defer p.mu.Unlock()
	p.finishLocked()
}

func (p *progressBar) loop() {
	defer close(p.stopped)
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.mu.Lock()
			p.drawLocked()
			p.mu.Unlock()
		}
	}
}

// drawLocked redraws the current phase's line.
func (p *progressBar) drawLocked() {
	phase, total, done := p.c.Load()
	if phase == "" {
		return
	}
	el := time.Since(p.start)
	rate := rateOf(done, el)
	line := fmt.Sprintf("%-8s %s / %s", phase, units.Human(done), units.Human(total))
	if total > 0 {
		line = fmt.Sprintf("%-8s %3d%%  %s / %s", phase, done*100/total, units.Human(done), units.Human(total))
	}
	if rate > 0 {
		line += fmt.Sprintf("  %s/s", units.Human(int64(rate)))
		if total > done {
			line += "  ETA " + clock(time.Duration(float64(total-done)/rate*float64(time.Second)))
		}
	}
	fmt.Fprintf(p.w, "\r\033[K%s", line)
	p.drawn = true
}

// finishLocked prints the summary of the phase that ends, if one ran.
func (p *progressBar) finishLocked() {
	phase, _, done := p.c.Load()
	if phase == "" || !p.drawn {
		return
	}
	el := time.Since(p.start)
	fmt.Fprintf(p.w, "\r\033[K%-8s %s in %s (%s/s)\n", phase, units.Human(done), clock(el), units.Human(int64(rateOf(done, el))))
	p.drawn = false
}

// rateOf is bytes per second.
func rateOf(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// clock formats a duration as m:ss or h:mm:ss.
func clock(d time.Duration) string {
	s := int64(d.Round(time.Second) / time.Second)
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}
