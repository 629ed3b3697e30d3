package metrics

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// consumerCollector reads the backlog of every consumer of Ebb's work
// streams from JetStream at scrape time: how much waits in front of each
// stage and destination partition.
type consumerCollector struct {
	js        jetstream.JetStream
	streams   []string
	pending   *prometheus.Desc
	ackPend   *prometheus.Desc
	redeliver *prometheus.Desc
}

// NewConsumerCollector reports ebb_consumer_pending_messages,
// ebb_consumer_ack_pending_messages and ebb_consumer_redelivered_messages
// for every consumer of streams.
func NewConsumerCollector(js jetstream.JetStream, streams ...string) prometheus.Collector {
	labels := []string{"stream", "consumer"}
	return &consumerCollector{
		js: js, streams: streams,
		pending: prometheus.NewDesc("ebb_consumer_pending_messages",
			"Messages not yet delivered to the consumer.", labels, nil),
		ackPend: prometheus.NewDesc("ebb_consumer_ack_pending_messages",
			"Messages delivered and not yet acknowledged (the ack window in use).", labels, nil),
		redeliver: prometheus.NewDesc("ebb_consumer_redelivered_messages",
			"Messages delivered more than once and not yet acknowledged.", labels, nil),
	}
}

func (c *consumerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.pending
	ch <- c.ackPend
	ch <- c.redeliver
}

func (c *consumerCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, name := range c.streams {
		stream, err := c.js.Stream(ctx, name)
		if err != nil {
			continue
		}
		infos := stream.ListConsumers(ctx)
		for info := range infos.Info() {
			gauge := func(d *prometheus.Desc, v int) {
				ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), name, info.Name)
			}
			gauge(c.pending, int(info.NumPending))
			gauge(c.ackPend, info.NumAckPending)
			gauge(c.redeliver, info.NumRedelivered)
		}
	}
}
