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

// Delivery reads the delivery settings from the destination's config.
func (d Destination) Delivery() (DeliveryOptions, error) {
	o := DeliveryOptions{
		BatchSize:    DefaultBatchSize,
		Partitions:   DefaultPartitions,
		AckWindow:    DefaultAckWindow,
		Timeout:      DefaultTimeout,
		RetryFor:     DefaultRetryFor,
		MaxAttempts:  DefaultAttempts,
		RetryBackoff: DefaultBackoff,
	}
	var err error
	if o.BatchSize, err = intField(d.Config, "batch_size", o.BatchSize, 1, 10000); err != nil {
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
	if o.Burst, err = intField(d.Config, "burst", 1, 1, 100000); err != nil {
		return o, err
	}
	if o.Concurrency, err = intField(d.Config, "concurrency", 0, 0, 100000); err != nil {
		return o, err
	}
	o.RequestsPerSecond, err = rateField(d.Config, "requests_per_second")
	return o, err
}

func rateField(cfg map[string]any, name string) (float64, error) {
	var r float64
	switch x := cfg[name].(type) {
	case nil:
		return 0, nil
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
