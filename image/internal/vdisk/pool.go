package vdisk

import (
	"runtime"
	"sync"
)

// Job is one unit to compress: its index Idx and its bytes In. The worker
// sets Out, or leaves it nil when the unit is to be stored as it is.
type Job struct {
	Idx  int64
	In   []byte
	Out  []byte
	done chan struct{}
}

// Pool compresses units on a bounded number of goroutines and hands the
// results back in submission order.
type Pool struct {
	jobs   chan *Job
	queue  []*Job
	limit  int
	wg     sync.WaitGroup
	free   chan []byte // recycled unit buffers
	unit   int
	handle func(*Job) error
}

// NewPool starts workers goroutines (GOMAXPROCS when workers < 1), each
// running the function made by newWorker. handle receives finished jobs
// in order.
func NewPool(workers, unit int, newWorker func() func(*Job), handle func(*Job) error) *Pool {
	if workers < 1 {
		workers = runtime.GOMAXPROCS(0)
	}
	p := &Pool{
		jobs:   make(chan *Job, workers),
		limit:  2 * workers,
		free:   make(chan []byte, 3*workers+2),
		unit:   unit,
		handle: handle,
	}
	jobs := p.jobs
	for range workers {
		p.wg.Go(func() {
			work := newWorker()
			for j := range jobs {
				work(j)
				close(j.done)
			}
		})
	}
	return p
}

// Buffer returns a zeroed unit buffer.
func (p *Pool) Buffer() []byte {
	select {
	case b := <-p.free:
		clear(b)
		return b
	default:
		return make([]byte, p.unit)
	}
}

// Recycle keeps b for reuse by Buffer when it is a unit buffer.
func (p *Pool) Recycle(b []byte) {
	if len(b) != p.unit {
		return
	}
	select {
	case p.free <- b:
	default:
	}
}

// Submit queues a unit; it may hand finished jobs to handle.
func (p *Pool) Submit(idx int64, in []byte) error {
	j := &Job{Idx: idx, In: in, done: make(chan struct{})}
	p.jobs <- j
	p.queue = append(p.queue, j)
	for len(p.queue) > p.limit {
		if err := p.next(); err != nil {
			return err
		}
	}
	return nil
}

func (p *Pool) next() error {
	j := p.queue[0]
	p.queue[0] = nil
	p.queue = p.queue[1:]
	<-j.done
	err := p.handle(j)
	p.Recycle(j.In)
	return err
}

// Drain hands every queued job to handle.
func (p *Pool) Drain() error {
	for len(p.queue) > 0 {
		if err := p.next(); err != nil {
			return err
		}
	}
	return nil
}

// Stop ends the workers after the queued jobs are done.
func (p *Pool) Stop() {
	if p.jobs == nil {
		return
	}
	close(p.jobs)
	p.jobs = nil
	p.wg.Wait()
	for _, j := range p.queue {
		<-j.done
	}
	p.queue = nil
}
