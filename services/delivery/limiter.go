package delivery

import (
	"context"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/ebb-etl/ebb/libs/config"
)

// limiter paces the requests of one destination account, shared by every
// sync and partition that writes to it: a token bucket for the request rate,
// a semaphore for requests in flight, and additive-increase /
// multiplicative-decrease on 429s, so a destination that pushes back gets
// fewer requests until it recovers.
//
// The configured rate and burst are for the whole account: with several
// delivery copies running, each takes its share (see members), so together
// they stay within them. Concurrency is per copy.
type limiter struct {
	configured config.DeliveryOptions
	copies     *atomic.Int64 // live delivery copies; nil means one
	shareOf    int64         // the number of copies the rate was cut for

	ceiling float64 // this copy's share of the configured rate; +Inf when unlimited
	bucket  *rate.Limiter
	slots   chan struct{} // nil when concurrency is unbounded

	mu     sync.Mutex
	window []time.Time // request starts in the last second, to learn a rate to cut from
}

// minRate is the floor of the adaptive rate, requests per second.
const minRate = 0.5

func newLimiter(o config.DeliveryOptions, copies *atomic.Int64) *limiter {
	l := &limiter{ceiling: math.Inf(1), configured: o, copies: copies, shareOf: 1}
	if o.RequestsPerSecond > 0 {
		l.ceiling = o.RequestsPerSecond
	}
	l.bucket = rate.NewLimiter(rate.Limit(l.ceiling), max(o.Burst, 1))
	if o.Concurrency > 0 {
		l.slots = make(chan struct{}, o.Concurrency)
	}
	return l
}

// reshare cuts the configured rate and burst for the live copies when
// their number changed.
func (l *limiter) reshare() {
	if l.copies == nil || l.configured.RequestsPerSecond <= 0 {
		return
	}
	n := max(l.copies.Load(), 1)
	l.mu.Lock()
	defer l.mu.Unlock()
	if n == l.shareOf {
		return
	}
	l.shareOf = n
	l.ceiling = l.configured.RequestsPerSecond / float64(n)
	// Fewer copies raise the ceiling; additive increase climbs to it.
	l.bucket.SetLimit(rate.Limit(min(float64(l.bucket.Limit()), l.ceiling)))
	l.bucket.SetBurst(max(l.configured.Burst/int(n), 1))
}

// acquire waits for a request slot; release must follow.
func (l *limiter) acquire(ctx context.Context) error {
	l.reshare()
	if l.slots != nil {
		select {
		case l.slots <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := l.bucket.Wait(ctx); err != nil {
		l.release()
		return err
	}
	l.mu.Lock()
	now := time.Now()
	l.window = append(l.window, now)
	for len(l.window) > 0 && now.Sub(l.window[0]) > time.Second {
		l.window = l.window[1:]
	}
	l.mu.Unlock()
	return nil
}

// pacer returns the pace function of one Write (see destination.Pace):
// its first request goes on the token acquire already took; each later one
// waits for a token of its own.
func (l *limiter) pacer() func(context.Context) error {
	var started atomic.Bool
	return func(ctx context.Context) error {
		if started.CompareAndSwap(false, true) {
			return nil
		}
		return l.bucket.Wait(ctx)
	}
}

func (l *limiter) release() {
	if l.slots != nil {
		<-l.slots
	}
}

// throttled halves the rate after a 429 (multiplicative decrease).
func (l *limiter) throttled() {
	l.mu.Lock()
	defer l.mu.Unlock()
	cur := float64(l.bucket.Limit())
	if math.IsInf(cur, 1) {
		cur = float64(len(l.window)) // the rate that was too much
	}
	l.bucket.SetLimit(rate.Limit(max(cur/2, minRate)))
}

// succeeded raises the rate a little (additive increase) back towards the
// configured ceiling.
func (l *limiter) succeeded() {
	l.mu.Lock()
	defer l.mu.Unlock()
	cur := float64(l.bucket.Limit())
	if math.IsInf(cur, 1) || cur >= l.ceiling {
		return
	}
	step := 1.0
	if !math.IsInf(l.ceiling, 1) {
		step = max(l.ceiling/20, 0.1)
	}
	next := cur + step
	if next >= l.ceiling {
		l.bucket.SetLimit(rate.Limit(l.ceiling))
		return
	}
	l.bucket.SetLimit(rate.Limit(next))
}

// current is the rate in force, for logs and tests.
func (l *limiter) current() float64 { return float64(l.bucket.Limit()) }
