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
}

// Delivery defaults.
const (
	DefaultBatchSize  = 100
	DefaultPartitions = 4
	DefaultAckWindow  = 4
	DefaultTimeout    = 30 * time.Second
	DefaultRetryFor   = 15 * time.Minute
)

// Delivery reads the delivery settings from the destination's config.
func (d Destination) Delivery() (DeliveryOptions, error) {
	o := DeliveryOptions{
		BatchSize:  DefaultBatchSize,
		Partitions: DefaultPartitions,
		AckWindow:  DefaultAckWindow,
		Timeout:    DefaultTimeout,
		RetryFor:   DefaultRetryFor,
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
	return o, nil
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
