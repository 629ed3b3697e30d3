package config

import "time"

// DeliveryOptions are the settings every destination accepts in its config,
// beside its type's own fields.
type DeliveryOptions struct {
	// BatchSize is the most records sent in one request.
	BatchSize int
	// Partitions is how many ordered lanes records are spread over, by key.
	Partitions int
	// AckWindow is the MaxAckPending of each partition's consumer: how many
	// batches may be in flight at once. It is the backpressure.
	AckWindow int
	// Timeout bounds one request.
	Timeout time.Duration
	// RetryFor is how long a transient failure is retried before the batch's
	// records fail for this run (the next run sends them again).
	RetryFor time.Duration
	// RetryBackoff is the first retry's delay; each next one doubles, up
	// to a minute, with jitter.
	RetryBackoff time.Duration
	// MaxAttempts bounds the tries of one request that keeps failing
	// transiently; then its records fail for this run.
	MaxAttempts int
	// RequestsPerSecond and Burst limit the request rate to the destination
	// account, shared by every sync that writes to it; 0 means no limit
	// until the destination answers 429, from when the rate adapts.
	RequestsPerSecond float64
	Burst             int
	// Concurrency bounds requests in flight to the destination; 0: no bound
	// beyond partitions × ack_window.
	Concurrency int
}

// Delivery defaults.
const (
	DefaultBatchSize  = 100
	DefaultPartitions = 4
	DefaultAckWindow  = 4
	DefaultTimeout    = 30 * time.Second
	DefaultRetryFor   = 15 * time.Minute
	DefaultAttempts   = 10
	DefaultBackoff    = 500 * time.Millisecond
)

// TypeLimits are a destination type's delivery defaults: its API's
// documented batch limit and rate limit, so a destination configured with
// nothing but credentials stays within what its API accepts.
type TypeLimits struct {
	BatchSize int
	// MaxBatchSize is the most records the API takes in one request; a
	// larger batch_size is a config error. 0: no limit beyond 10000.
	MaxBatchSize      int
	RequestsPerSecond float64
	Burst             int
	Concurrency       int
}

// typeLimits holds the types whose APIs document limits; the others get
// the general defaults and no rate limit until they answer 429.
var typeLimits = map[string]TypeLimits{
	// Segment: no hard limit, but asks to be told before going over 500
	// requests/s; the 500KB/32KB byte limits are enforced by the sender.
	"segment": {BatchSize: 100, RequestsPerSecond: 500, Burst: 50},
	// HubSpot private apps: 100 requests per 10 s; 100 inputs per batch.
	"hubspot": {BatchSize: 100, MaxBatchSize: 100, RequestsPerSecond: 10, Burst: 10},
	// Salesforce counts requests per day, not per second, and allows 25
	// long-running requests at once; sObject collections take 200 records.
	"salesforce": {BatchSize: 200, MaxBatchSize: 200, Concurrency: 25},
	// Braze /users/track: 3,000 requests per 3 s, 75 attributes each.
	"braze": {BatchSize: 75, MaxBatchSize: 75, RequestsPerSecond: 1000, Burst: 100},
	// Mixpanel: 2000 profile updates per request; ~30k per second ingested.
	"mixpanel": {BatchSize: 2000, MaxBatchSize: 2000, RequestsPerSecond: 15, Burst: 5},
	// Amplitude HTTP V2 guidance, which the Identify API follows: at most
	// 2000 per request and 100 requests per second.
	"amplitude": {BatchSize: 1000, MaxBatchSize: 2000, RequestsPerSecond: 100, Burst: 10},
	// A Postgres table takes a batch as one transaction: larger ones cost
	// fewer commits (1,000 rows a transaction was about twice as fast as
	// 100 on a first load).
	"postgres": {BatchSize: 1000},
	// Slack incoming webhooks: one message per request, one per second.
	"slack": {BatchSize: 1, MaxBatchSize: 1, RequestsPerSecond: 1, Burst: 1},
}

// Limits returns the delivery defaults of a destination type.
func Limits(destType string) TypeLimits {
	l, ok := typeLimits[destType]
	if !ok {
		return TypeLimits{BatchSize: DefaultBatchSize}
	}
	return l
}

// Delivery reads the delivery settings from the destination's config, with
// its type's defaults (see Limits).
func (d Destination) Delivery() (DeliveryOptions, error) {
	lim := Limits(d.Type)
	o := DeliveryOptions{
		BatchSize:    lim.BatchSize,
		Partitions:   DefaultPartitions,
		AckWindow:    DefaultAckWindow,
		Timeout:      DefaultTimeout,
		RetryFor:     DefaultRetryFor,
		MaxAttempts:  DefaultAttempts,
		RetryBackoff: DefaultBackoff,
	}
	maxBatch := 10000
	if lim.MaxBatchSize > 0 {
		maxBatch = lim.MaxBatchSize
	}
	var err error
	if o.BatchSize, err = intField(d.Config, "batch_size", o.BatchSize, 1, maxBatch); err != nil {
		return o, err
	}
	if o.Partitions, err = intField(d.Config, "partitions", o.Partitions, 1, 64); err != nil {
		return o, err
	}
	if o.AckWindow, err = intField(d.Config, "ack_window", o.AckWindow, 1, 1024); err != nil {
		return o, err
	}
	if o.Timeout, err = durationField(d.Config, "timeout", o.Timeout); err != nil {
		return o, err
	}
	if o.RetryFor, err = durationField(d.Config, "retry_for", o.RetryFor); err != nil {
		return o, err
	}
	if o.RetryBackoff, err = durationField(d.Config, "retry_backoff", o.RetryBackoff); err != nil {
		return o, err
	}
	if o.MaxAttempts, err = intField(d.Config, "max_attempts", o.MaxAttempts, 1, 1000); err != nil {
		return o, err
	}
	if o.Burst, err = intField(d.Config, "burst", max(lim.Burst, 1), 1, 100000); err != nil {
		return o, err
	}
	if o.Concurrency, err = intField(d.Config, "concurrency", lim.Concurrency, 0, 100000); err != nil {
		return o, err
	}
	o.RequestsPerSecond, err = rateField(d.Config, "requests_per_second", lim.RequestsPerSecond)
	return o, err
}

func rateField(cfg map[string]any, name string, def float64) (float64, error) {
	var r float64
	switch x := cfg[name].(type) {
	case nil:
		return def, nil
	case int:
		r = float64(x)
	case int64:
		r = float64(x)
	case float64:
		r = x
	default:
		return 0, fieldErr("", "config."+name, "want a number, got %T", x)
	}
	if r < 0 || r > 1e6 {
		return 0, fieldErr("", "config."+name, "%v is out of range [0, 1000000]", r)
	}
	return r, nil
}

func intField(cfg map[string]any, name string, def, lo, hi int) (int, error) {
	v, ok := cfg[name]
	if !ok || v == nil {
		return def, nil
	}
	var n int
	switch x := v.(type) {
	case int:
		n = x
	case int64:
		n = int(x)
	case float64:
		if x != float64(int(x)) {
			return 0, fieldErr("", "config."+name, "%v is not a whole number", x)
		}
		n = int(x)
	default:
		return 0, fieldErr("", "config."+name, "want a number, got %T", v)
	}
	if n < lo || n > hi {
		return 0, fieldErr("", "config."+name, "%d is out of range [%d, %d]", n, lo, hi)
	}
	return n, nil
}

func durationField(cfg map[string]any, name string, def time.Duration) (time.Duration, error) {
	v, ok := cfg[name]
	if !ok || v == nil {
		return def, nil
	}
	s, ok := v.(string)
	if !ok {
		return 0, fieldErr("", "config."+name, "want a duration such as \"30s\", got %v", v)
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fieldErr("", "config."+name, "%q is not a positive duration such as \"30s\"", s)
	}
	return d, nil
}
