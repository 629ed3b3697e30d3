package bus

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// Handler processes one message. Returning nil acks it; an error naks it
// with a growing delay, so it is redelivered (to this copy or another).
// Handlers deal with permanent failures themselves (failing the run, say)
// and return nil.
type Handler func(ctx context.Context, msg jetstream.Msg) error

// WorkOptions tune Work.
type WorkOptions struct {
	// Workers is how many messages are handled at once.
	Workers int
	// KeepAlive is how often a message still being handled is marked in
	// progress, so JetStream does not redeliver it; keep it well under the
	// consumer's AckWait. Default: a third of the AckWait, at most 10s.
	KeepAlive time.Duration
	// MaxBackoff caps the delay of a nak.
	MaxBackoff time.Duration
	// Drain is how long handlers in flight may go on after ctx ends (a
	// graceful shutdown) before their context is cancelled too; default
	// 15s, inside the default 30s shutdown timeout.
	Drain time.Duration
}

// stoppingKey marks a handler's context with the end of the work loop's.
type stoppingKey struct{}

// Stopping reports whether the work loop that called a handler is shutting
// down. Long handlers (the extractor's walk over a model) check it at their
// next boundary and return an error, which hands the message back at once.
func Stopping(ctx context.Context) bool {
	done, ok := ctx.Value(stoppingKey{}).(<-chan struct{})
	if !ok {
		return false
	}
	select {
	case <-done:
		return true
	default:
		return false
	}
}

// Work pulls messages from cons and hands each to handle, with up to
// o.Workers at once, until ctx ends; then it stops pulling and waits for the
// handlers in flight. Those get o.Drain to finish (a request a destination
// is answering completes, rather than being cut off and sent again by
// another copy); then their context is cancelled too.
func (b *Bus) Work(ctx context.Context, cons jetstream.Consumer, o WorkOptions, log zerolog.Logger, handle Handler) error {
	if o.Workers <= 0 {
		o.Workers = 1
	}
	if o.KeepAlive <= 0 {
		// Well inside the consumer's ack wait: two marks may be lost or
		// late before the message is redelivered.
		o.KeepAlive = 10 * time.Second
		if wait := cons.CachedInfo().Config.AckWait; wait > 0 {
			o.KeepAlive = min(o.KeepAlive, wait/3)
		}
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 30 * time.Second
	}
	if o.Drain <= 0 {
		o.Drain = 15 * time.Second
	}
	iter, err := cons.Messages(jetstream.PullMaxMessages(o.Workers))
	if err != nil {
		return err
	}
	go func() {
		<-ctx.Done()
		iter.Stop()
	}()
	hctx, cancelHandlers := context.WithCancel(context.WithValue(context.WithoutCancel(ctx), stoppingKey{}, ctx.Done()))
	defer cancelHandlers()
	drained := make(chan struct{})
	defer close(drained)
	go func() {
		select {
		case <-ctx.Done():
		case <-drained:
			return
		}
		t := time.NewTimer(o.Drain)
		defer t.Stop()
		select {
		case <-t.C:
			cancelHandlers()
		case <-drained:
		}
	}()
	slots := make(chan struct{}, o.Workers)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		slots <- struct{}{}
		msg, err := iter.Next()
		if err != nil {
			<-slots
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return nil
			}
			log.Warn().Err(err).Msg("pulling messages")
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			b.handleOne(hctx, msg, o, log, handle)
		}()
	}
}

func (b *Bus) handleOne(ctx context.Context, msg jetstream.Msg, o WorkOptions, log zerolog.Logger, handle Handler) {
	done := make(chan struct{})
	defer close(done)
	go func() {
		t := time.NewTicker(o.KeepAlive)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				_ = msg.InProgress()
			}
		}
	}()
	err := handle(ctx, msg)
	if err == nil {
		if err := msg.DoubleAck(ctx); err != nil {
			if ctx.Err() == nil {
				log.Warn().Err(err).Str("subject", msg.Subject()).Msg("acking message")
			}
			return
		}
		// Only once the ack is confirmed: a redelivered message still
		// finds its body.
		b.release(ctx, msg)
		return
	}
	if ctx.Err() != nil || Stopping(ctx) {
		// Shutting down: hand the message back at once for another copy.
		_ = msg.Nak()
		return
	}
	delay := backoff(msg, o.MaxBackoff)
	var after *RetryError
	if errors.As(err, &after) && after.Delay > 0 {
		delay = after.Delay
	}
	if after != nil && after.Hold {
		_ = msg.NakWithDelay(delay)
		return
	}
	log.Warn().Err(err).Str("subject", msg.Subject()).Dur("retry_in", delay).Msg("handling message failed; will retry")
	_ = msg.NakWithDelay(delay)
}

// RetryError asks Work to redeliver the message after Delay (a
// destination's Retry-After, say) instead of the usual backoff.
type RetryError struct {
	Err   error
	Delay time.Duration
	// Hold marks an expected wait (a paused run), not a failure: it is
	// not logged.
	Hold bool
}

func (e *RetryError) Error() string { return e.Err.Error() }
func (e *RetryError) Unwrap() error { return e.Err }

// Delivered counts the deliveries of msg: 1 the first time, more after
// naks and redeliveries (1 when its metadata cannot be read).
func Delivered(msg jetstream.Msg) uint64 {
	if md, err := msg.Metadata(); err == nil {
		return md.NumDelivered
	}
	return 1
}

// backoff grows with the delivery count: 1s, 2s, 4s, ... up to max.
func backoff(msg jetstream.Msg, max time.Duration) time.Duration {
	n := Delivered(msg)
	d := time.Second
	for i := uint64(1); i < n && d < max; i++ {
		d *= 2
	}
	return min(d, max)
}

// DefaultAckWait is how long a consumer waits for the ack of a message
// before redelivering it: after a copy dies, its messages go to another
// after this long. A handler that takes longer (an extraction, a request a
// slow destination is answering) is kept alive by Work's in-progress marks
// every third of it, so this bounds only what a crash costs, not how long
// work may take. A republish after such a crash comes at least this long
// after the first publish, which is why Limits.Duplicates is a multiple of it.
const DefaultAckWait = 10 * time.Second

// EnvAckWait names the environment variable that overrides DefaultAckWait
// in every consumer a process provisions (a Go duration, at least 1s).
// Every process must be given the same value: each one updates the shared
// consumers when it starts. Tests that kill processes set it low, so the
// work of a dead copy moves on in seconds; the duplicate window
// (Limits.Duplicates) must stay well above it.
const EnvAckWait = "EBB_ACK_WAIT"

// AckWait is the ack wait of the consumers this process provisions:
// DefaultAckWait, or EBB_ACK_WAIT when set.
func AckWait() (time.Duration, error) {
	v := os.Getenv(EnvAckWait)
	if v == "" {
		return DefaultAckWait, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < time.Second {
		return 0, fmt.Errorf("%s=%q: want a duration of at least 1s, such as 60s", EnvAckWait, v)
	}
	return d, nil
}

// Durable creates or updates a shared durable pull consumer: every copy of a
// service binds to the same one, so they share its messages. Without an
// AckWait in cfg it gets AckWait().
func Durable(ctx context.Context, js jetstream.JetStream, stream string, cfg jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	cfg.AckPolicy = jetstream.AckExplicitPolicy
	if cfg.AckWait == 0 {
		d, err := AckWait()
		if err != nil {
			return nil, err
		}
		cfg.AckWait = d
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, stream, cfg)
	if err != nil {
		return nil, fmt.Errorf("provisioning consumer %s on %s: %w", cfg.Durable, stream, err)
	}
	return cons, nil
}
