package qcow2

import (
	"runtime"
	"sync"
)

// job is one unit to compress. The worker sets out, or leaves it nil when
// the unit is to be stored as it is.
type job struct {
	idx  int64
	in   []byte
	out  []byte
	done chan struct{}
}

// pool compresses units on a bounded number of goroutines and hands the
// results back in submission order.
type pool struct {
	jobs   chan *job
	queue  []*job
	limit  int
	wg     sync.WaitGroup
	free   chan []byte // recycled unit buffers
	unit   int
	handle func(*job) error
}

// newPool starts workers goroutines (GOMAXPROCS when workers < 1), each
// running the function made by newWorker. handle receives finished jobs
// in order.
func newPool(workers, unit int, newWorker func() func(*job), handle func(*job) error) *pool {
	if workers < 1 {
		workers = runtime.GOMAXPROCS(0)
	}
	p := &pool{
		jobs:   make(chan *job, workers),
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

// buffer returns a zeroed unit buffer.
func (p *pool) buffer() []byte {
	select {
	case b := <-p.free:
		clear(b)
		return b
	default:
		return make([]byte, p.unit)
	}
}

func (p *pool) recycle(b []byte) {
	if len(b) != p.unit {
		return
	}
	select {
	case p.free <- b:
	default:
	}
}

// submit queues a unit; it may hand finished jobs to handle.
func (p *pool) submit(idx int64, in []byte) error {
	j := &job{idx: idx, in: in, done: make(chan struct{})}
	p.jobs <- j
	p.queue = append(p.queue, j)
	for len(p.queue) > p.limit {
		if err := p.next(); err != nil {
			return err
		}
	}
	return nil
}

func (p *pool) next() error {
	j := p.queue[0]
	p.queue[0] = nil
	p.queue = p.queue[1:]
	<-j.done
	err := p.handle(j)
	p.recycle(j.in)
	return err
}

// drain hands every queued job to handle.
func (p *pool) drain() error {
	for len(p.queue) > 0 {
		if err := p.next(); err != nil {
			return err
		}
	}
	return nil
}

// stop ends the workers after the queued jobs are done.
func (p *pool) stop() {
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
