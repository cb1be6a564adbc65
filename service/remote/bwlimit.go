package remote

import (
	"context"
	"io"
	"time"
)

// pacer writes at most rate bytes per second on average: it writes in
// pieces of a tenth of a second's worth and, once ahead of the rate,
// sleeps until the bytes written so far are due. The first piece goes at
// once.
type pacer struct {
	ctx   context.Context
	w     io.Writer
	rate  int64 // bytes per second, > 0
	piece int
	start time.Time
	sent  int64
	// started: start is set (at the first write)
	started bool
	now     func() time.Time
	sleep   func(ctx context.Context, d time.Duration) error
}

func newPacer(ctx context.Context, w io.Writer, rate int64) *pacer {
	return &pacer{ctx: ctx, w: w, rate: rate, piece: int(min(max(rate/10, 512), chunk)),
		now: time.Now, sleep: sleepCtx}
}

func (p *pacer) Write(b []byte) (int, error) {
	if !p.started {
		p.start, p.started = p.now(), true
	}
	done := 0
	for len(b) > 0 {
		due := p.start.Add(time.Duration(float64(p.sent) / float64(p.rate) * float64(time.Second)))
		if wait := due.Sub(p.now()); wait > 0 {
			if err := p.sleep(p.ctx, wait); err != nil {
				return done, err
			}
		}
		n := min(len(b), p.piece)
		m, err := p.w.Write(b[:n])
		done += m
		p.sent += int64(m)
		if err != nil {
			return done, err
		}
		b = b[n:]
	}
	return done, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
