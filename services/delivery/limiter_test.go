package delivery

import (
	"math"
	"testing"
	"time"

	"github.com/ebb-etl/ebb/libs/config"
)

// After a 429 the rate climbs back by a few percent a second, six times
// slower near the rate the destination refused at (the wall), so the next
// 429 comes later, and at the usual pace again well past it. Before, it
// climbed at one pace into the wall: at 5 requests/s, 4-6% of requests
// were refused against 3% now (make bench BENCH_SCENARIOS=ratelimit).
func TestTheRateClimbsSlowlyNearTheLastWall(t *testing.T) {
	clock := time.Unix(1_000_000, 0)
	l := newLimiter(config.DeliveryOptions{}, nil)
	l.now = func() time.Time { return clock }
	l.busySince = clock
	for range 20 { // 10 requests a second taken for 2 s, then a 429
		clock = clock.Add(100 * time.Millisecond)
		l.succeeded(clock)
	}
	l.throttled(0)
	wall := l.wall
	if math.Abs(wall-10) > 0.6 {
		t.Fatalf("wall %.2f, want the accepted rate, about 10/s", wall)
	}

	// growth is the rate's growth per second around a share of the wall.
	growth := func(share float64) float64 {
		for l.current() < share*wall {
			clock = clock.Add(250 * time.Millisecond)
			l.succeeded(clock)
		}
		before := l.current()
		for range 4 {
			clock = clock.Add(250 * time.Millisecond)
			l.succeeded(clock)
		}
		return l.current()/before - 1
	}
	far, near, past := growth(0.88), growth(0.99), growth(1.10)
	if math.Abs(far-increase) > 0.005 || math.Abs(past-increase) > 0.005 {
		t.Fatalf("away from the wall the rate grows %.3f and %.3f a second, want %.3f", far, past, increase)
	}
	if want := increase / slowNearWall; math.Abs(near-want) > 0.001 {
		t.Fatalf("near the wall the rate grows %.4f a second, want %.4f", near, want)
	}
}
