package run

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ebb-etl/ebb/libs/bus"
	"github.com/ebb-etl/ebb/libs/record"
)

// KeyEvent is one outcome of one record in one run: a line of a key's
// history (ebb records find).
type KeyEvent struct {
	// RunID and At are the batch's, left out of each stored event.
	RunID string    `json:"run_id,omitempty"`
	At    time.Time `json:"at,omitzero"`
	Key   string    `json:"key"`
	Op    string    `json:"op"`
	// Status is delivered, failed, vanished or filtered.
	Status string `json:"status"`
	// Response summarises the destination's answer: "ok" or its error.
	Response    string `json:"response"`
	PayloadHash string `json:"payload_hash,omitempty"`
}

// historyBatch is what the history stream keeps of one result batch.
type historyBatch struct {
	RunID  string     `json:"run_id"`
	At     time.Time  `json:"at"`
	Events []KeyEvent `json:"events"`
}

// RecordHistory keeps a result batch's outcomes in the history stream, for
// lookups by key. Republishing the same batch is harmless: its message id
// makes it once.
func RecordHistory(ctx context.Context, b *bus.Bus, rb record.ResultBatch) error {
	hb := historyBatch{RunID: rb.RunID, At: time.Now().UTC(), Events: make([]KeyEvent, len(rb.Results))}
	for i, r := range rb.Results {
		response := "ok"
		if r.Error != "" {
			response = r.Error
		}
		hb.Events[i] = KeyEvent{Key: r.KeyEnc.String(), Op: string(r.Op), Status: string(r.Status),
			Response: response, PayloadHash: r.PayloadHash}
	}
	id := record.MsgID(rb.Sync, rb.RunID, "history", rb.Seq, rb.Partition)
	return publishChunks(ctx, b, bus.History(rb.Sync, rb.RunID), id, hb.Events, func(part []KeyEvent) ([]byte, error) {
		out := hb
		out.Events = part
		return out.encode(), nil
	})
}

// encode writes what encoding/json writes for the batch, without its
// reflection: a run writes one event per record.
func (hb historyBatch) encode() []byte {
	var j record.JSONBuffer
	j.Buf = append(j.Buf, `{"run_id":`...)
	j.String(hb.RunID)
	j.Buf = append(j.Buf, `,"at":`...)
	j.Buf = append(j.Buf, '"')
	j.Buf = hb.At.AppendFormat(j.Buf, time.RFC3339Nano)
	j.Buf = append(j.Buf, `","events":[`...)
	for i, ev := range hb.Events {
		if i > 0 {
			j.Buf = append(j.Buf, ',')
		}
		j.Buf = append(j.Buf, `{"key":`...)
		j.String(ev.Key)
		j.Buf = append(j.Buf, `,"op":`...)
		j.String(ev.Op)
		j.Buf = append(j.Buf, `,"status":`...)
		j.String(ev.Status)
		j.Buf = append(j.Buf, `,"response":`...)
		j.String(ev.Response)
		if ev.PayloadHash != "" {
			j.Buf = append(j.Buf, `,"payload_hash":`...)
			j.String(ev.PayloadHash)
		}
		j.Buf = append(j.Buf, '}')
	}
	j.Buf = append(j.Buf, "]}"...)
	return j.Buf
}

// KeyHistory returns the history of the record of sync whose key values,
// joined by commas, are key: newest first, at most limit. It reads the
// sync's whole history (kept for bus.Limits.HistoryAge), so it takes a
// while on a big sync; it is a debugging tool, not a query engine.
func KeyHistory(ctx context.Context, js jetstream.JetStream, sync, key string, limit int) ([]KeyEvent, error) {
	stream, err := js.Stream(ctx, bus.StreamHistory)
	if err != nil {
		return nil, fmt.Errorf("opening history stream: %w", err)
	}
	filter := bus.History(sync, "*")
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		return nil, fmt.Errorf("reading history of sync %q: %w", sync, err)
	}
	var left uint64
	for _, n := range info.State.Subjects {
		left += n
	}
	if left == 0 {
		return nil, nil
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}})
	if err != nil {
		return nil, fmt.Errorf("reading history of sync %q: %w", sync, err)
	}
	var found []KeyEvent
	for ; left > 0; left-- {
		msg, err := cons.Next(jetstream.FetchMaxWait(10 * time.Second))
		if err != nil {
			return nil, fmt.Errorf("reading history of sync %q: %w", sync, err)
		}
		var hb historyBatch
		if err := json.Unmarshal(msg.Data(), &hb); err != nil {
			continue
		}
		for _, ev := range hb.Events {
			if ev.Key == key {
				ev.RunID, ev.At = hb.RunID, hb.At
				found = append(found, ev)
			}
		}
	}
	slices.Reverse(found)
	if limit > 0 && len(found) > limit {
		found = found[:limit]
	}
	return found, nil
}
