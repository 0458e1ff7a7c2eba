package bench

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// progressMin is the shortest run that gets a progress line: shorter runs
// are over before a reader could look at it.
const progressMin = 2 * time.Second

// progress redraws one line ("\r...") with elapsed time, a bar and counts
// every 200 ms until stopped. The caller decides whether w is a terminal.
type progress struct {
	stopc chan struct{}
	wg    sync.WaitGroup
}

func startProgress(w io.Writer, start time.Time, total time.Duration, stats []*workerStats, unit string) *progress {
	p := &progress{stopc: make(chan struct{})}
	if w == nil || total < progressMin {
		return p
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		const width = 30
		for {
			select {
			case <-p.stopc:
				fmt.Fprintf(w, "\r%s\r", strings.Repeat(" ", width+60))
				return
			case now := <-t.C:
				el := now.Sub(start)
				frac := min(float64(el)/float64(total), 1)
				var ok, errs uint64
				for _, s := range stats {
					ok += s.ok.Load()
					errs += s.errs.Load()
				}
				n := int(frac * width)
				fmt.Fprintf(w, "\r[%s%s] %3.0f%% %d %s (%.0f/s) %d errors ",
					strings.Repeat("=", n), strings.Repeat(" ", width-n), frac*100,
					ok, unit, float64(ok)/el.Seconds(), errs)
			}
		}
	}()
	return p
}

func (p *progress) stop() {
	close(p.stopc)
	p.wg.Wait()
}
