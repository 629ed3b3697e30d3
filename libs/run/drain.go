package run

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// A stopped run drains before its sync may run again (see Cancelling): no
// request of it may still be on its way to the destination when the next
// run delivers, or an old value could land after a newer one, or bring
// back a row the next run deleted.
//
// Each delivery copy keeps a Member record in the state bucket, renewed
// every second, naming the runs it has requests in flight for. A delivery
// copy registers a request as in flight before it checks that the run is
// still live (through a Gate of at most DeliveryGateTTL), and removes it
// when the request has ended. So once every live copy has reported, later
// than the stop plus that TTL, without the run, none of its requests is in
// flight and none can start: the run is drained.

// DeliveryGateTTL is how stale delivery's view of a run may be when it
// starts a request.
const DeliveryGateTTL = 250 * time.Millisecond

// clockSkew is the difference between hosts' clocks a drain allows for.
const clockSkew = time.Second

// MemberPrefix starts the state bucket keys of live delivery copies.
const MemberPrefix = "member.delivery."

// Member is what a delivery copy reports about itself.
type Member struct {
	// Until is when the copy stops counting as live unless it reports
	// again.
	Until time.Time `json:"until"`
	// At is when it wrote this report.
	At time.Time `json:"at"`
	// Inflight lists the runs it has requests in flight for.
	Inflight []string `json:"inflight,omitempty"`
}

// PutMember writes a delivery copy's report.
func PutMember(ctx context.Context, state jetstream.KeyValue, id string, m Member) (uint64, error) {
	data, _ := json.Marshal(m)
	rev, err := state.Put(ctx, MemberPrefix+id, data)
	if err != nil {
		return 0, fmt.Errorf("reporting delivery copy %s: %w", id, err)
	}
	return rev, nil
}

// Members reads the live delivery copies' reports. Keys of copies that
// died without removing them are purged, by revision, so a copy renewing
// its key at the same moment keeps it.
func Members(ctx context.Context, state jetstream.KeyValue) (map[string]Member, error) {
	keys, err := state.ListKeysFiltered(ctx, MemberPrefix+"*")
	if err != nil {
		return nil, fmt.Errorf("listing delivery copies: %w", err)
	}
	now := time.Now()
	out := map[string]Member{}
	for k := range keys.Keys() {
		e, err := state.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading delivery copy %s: %w", k, err)
		}
		var m Member
		if json.Unmarshal(e.Value(), &m) == nil && now.Before(m.Until) {
			out[k[len(MemberPrefix):]] = m
			continue
		}
		_ = state.Purge(ctx, k, jetstream.LastRevision(e.Revision()))
	}
	return out, nil
}

// Drained reports whether a stopping run has no request in flight and
// none can start any more, so it can Finish. maxRequest bounds one
// request (the destination's timeout): once that has passed since the
// stop, the run is drained whatever the reports say.
func Drained(ctx context.Context, state jetstream.KeyValue, r *Run, maxRequest time.Duration) (bool, error) {
	if !r.State.Stopping() {
		return false, nil
	}
	settled := r.StoppedAt.Add(DeliveryGateTTL + clockSkew)
	if time.Now().After(settled.Add(maxRequest)) {
		return true, nil
	}
	members, err := Members(ctx, state)
	if err != nil {
		return false, err
	}
	for _, m := range members {
		if m.At.Before(settled) || slices.Contains(m.Inflight, r.ID) {
			return false, nil
		}
	}
	return time.Now().After(settled), nil
}
