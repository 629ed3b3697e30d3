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
// multiplicative-decrease when the destination answers 429.
//
// The adaptation is built to settle just under a destination's limit with
// few refusals:
//   - a 429 is one congestion event, however many requests in flight it
//     refuses: the rate is cut once (to decrease × the rate the destination
//     was accepting, measured over the last seconds), and the refusals that
//     follow within the event's window are not cut again;
//   - Retry-After pauses the whole account, not just the request refused,
//     so the requests behind it do not run into the same wall;
//   - the rate then climbs back by a few percent a second, and requests
//     are spread evenly (burst 1) while adapting;
//   - near the rate of the last 429 (the wall) it climbs six times slower,
//     as TCP CUBIC does, so the next 429 comes about twice as late; well
//     past the wall without a 429, the wall is gone and it climbs at the
//     usual pace again.
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

	mu        sync.Mutex
	accepted  []time.Time // when requests the destination took started, over the last window
	inFlight  int         // requests between acquire and release
	idleSince time.Time   // when the last request in flight ended
	busySince time.Time   // when requests started again after a window without any
	pausedTo  time.Time   // no request starts before this (a Retry-After)
	eventTo   time.Time   // 429s before this belong to the last congestion event
	raisedAt  time.Time   // when the rate last went up
	now       func() time.Time
	adaptive  bool    // a 429 was seen: the rate is learned, not configured
	wall      float64 // the accepted rate when the last 429 came
	increases int     // for tests and logs
}

// Adaptation constants.
const (
	minRate = 0.5 // requests per second: the floor of the adaptive rate
	// decrease is the share of the accepted rate kept after a 429.
	decrease = 0.85
	// increase is how much the rate grows per second without a 429,
	// as a share of itself.
	increase = 0.03
	// window is how far back the accepted rate is measured.
	window = 2 * time.Second
	// Between nearWall and pastWall times the wall, the rate climbs by
	// increase/slowNearWall a second.
	nearWall, pastWall, slowNearWall = 0.97, 1.05, 6
)

func newLimiter(o config.DeliveryOptions, copies *atomic.Int64) *limiter {
	l := &limiter{ceiling: math.Inf(1), configured: o, copies: copies, shareOf: 1, now: time.Now}
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
	l.mu.Lock()
	if now := l.now(); l.inFlight == 0 && now.Sub(l.idleSince) > window {
		l.busySince = now
	}
	l.inFlight++
	l.mu.Unlock()
	if err := l.waitPause(ctx); err != nil {
		l.release()
		return err
	}
	if err := l.bucket.Wait(ctx); err != nil {
		l.release()
		return err
	}
	return nil
}

// waitPause waits out a Retry-After the destination asked of the account.
func (l *limiter) waitPause(ctx context.Context) error {
	for {
		l.mu.Lock()
		wait := l.pausedTo.Sub(l.now())
		l.mu.Unlock()
		if wait <= 0 {
			return nil
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
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
		if err := l.waitPause(ctx); err != nil {
			return err
		}
		return l.bucket.Wait(ctx)
	}
}

func (l *limiter) release() {
	l.mu.Lock()
	l.inFlight--
	if l.inFlight == 0 {
		l.idleSince = l.now()
	}
	l.mu.Unlock()
	if l.slots != nil {
		<-l.slots
	}
}

// acceptedRate is the rate of requests the destination took over the last
// window, or since requests started again if that is shorter: a 429 at
// the start of a run must not be cut from a rate diluted by the idle time
// before it. l.mu is held.
func (l *limiter) acceptedRate(now time.Time) float64 {
	l.trim(now)
	if len(l.accepted) == 0 {
		return 0
	}
	span := min(window, now.Sub(l.busySince))
	span = max(span, 100*time.Millisecond)
	return float64(len(l.accepted)) / span.Seconds()
}

func (l *limiter) trim(now time.Time) {
	i := 0
	for i < len(l.accepted) && now.Sub(l.accepted[i]) > window {
		i++
	}
	l.accepted = l.accepted[i:]
}

// throttled handles a 429: the first of a congestion event cuts the rate
// (multiplicative decrease) and every one pauses the account for its
// Retry-After.
func (l *limiter) throttled(retryAfter time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if until := now.Add(retryAfter); until.After(l.pausedTo) {
		l.pausedTo = until
	}
	if now.Before(l.eventTo) {
		return // the same congestion event: cut once
	}
	cur := float64(l.bucket.Limit())
	if accepted := l.acceptedRate(now); accepted > 0 && (math.IsInf(cur, 1) || accepted < cur) {
		cur = accepted // what the destination took, not what was offered
	}
	if math.IsInf(cur, 1) || cur <= 0 {
		cur = 1
	}
	l.wall = cur
	next := max(cur*decrease, minRate)
	l.bucket.SetLimit(rate.Limit(next))
	l.bucket.SetBurst(1) // evenly spread while the rate is learned
	l.adaptive = true
	// The requests already in flight may meet the same wall: they belong to
	// this event. A second's worth, or the Retry-After if longer.
	l.eventTo = now.Add(max(time.Second, retryAfter))
	l.raisedAt = l.eventTo
}

// succeeded records a request the destination took and, while the rate
// is learned, raises it a little for each second gone by without a 429
// (additive increase, proportional to the rate), up to the ceiling.
func (l *limiter) succeeded(started time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.accepted = append(l.accepted, started)
	l.trim(now)
	if !l.adaptive {
		return
	}
	cur := float64(l.bucket.Limit())
	elapsed := now.Sub(l.raisedAt)
	if elapsed < 200*time.Millisecond || cur >= l.ceiling {
		return
	}
	step := increase
	if cur >= nearWall*l.wall && cur < pastWall*l.wall {
		step = increase / slowNearWall
	}
	next := min(cur*(1+step*elapsed.Seconds()), l.ceiling)
	l.raisedAt = now
	l.increases++
	if math.IsInf(next, 1) {
		return
	}
	l.bucket.SetLimit(rate.Limit(next))
	if next >= l.ceiling && !math.IsInf(l.ceiling, 1) {
		l.bucket.SetBurst(max(l.configured.Burst/int(max(l.shareOf, 1)), 1))
	}
}

// current is the rate in force, for logs and tests.
func (l *limiter) current() float64 { return float64(l.bucket.Limit()) }
