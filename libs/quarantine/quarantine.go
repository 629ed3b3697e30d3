// Package quarantine tracks records that keep failing. A record that fails
// in a number of runs in a row is quarantined: the differ stops planning it,
// and the committed snapshot keeps its old state, until someone releases it
// (`ebb sync retry`), when the next run sends it again.
package quarantine

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ebb-etl/ebb/libs/record"
)

// Entry is a key's failure streak, kept under
// "quarantine.<sync>.<hex key>" in the state bucket.
type Entry struct {
	Key         record.Key `json:"key"`
	Streak      int        `json:"streak"`
	Quarantined bool       `json:"quarantined"`
	LastError   string     `json:"last_error"`
	LastRun     string     `json:"last_run"`
	Since       time.Time  `json:"since,omitzero"`
}

// Store keeps entries in the state bucket.
type Store struct{ kv jetstream.KeyValue }

// New wraps the state bucket.
func New(kv jetstream.KeyValue) *Store { return &Store{kv: kv} }

func entryKey(sync string, key record.Key) string {
	return "quarantine." + sync + "." + hex.EncodeToString(key)
}

// List returns a sync's entries, quarantined or on a streak, by key.
func (s *Store) List(ctx context.Context, sync string) ([]Entry, error) {
	lister, err := s.kv.ListKeysFiltered(ctx, "quarantine."+sync+".*")
	if err != nil {
		return nil, fmt.Errorf("listing quarantine of sync %q: %w", sync, err)
	}
	var out []Entry
	for k := range lister.Keys() {
		e, err := s.kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", k, err)
		}
		var en Entry
		if err := json.Unmarshal(e.Value(), &en); err != nil {
			return nil, fmt.Errorf("decoding %s: %w", k, err)
		}
		out = append(out, en)
	}
	sort.Slice(out, func(i, j int) bool { return record.Compare(out[i].Key, out[j].Key) < 0 })
	return out, nil
}

// Quarantined returns the set of a sync's quarantined keys.
func (s *Store) Quarantined(ctx context.Context, sync string) (map[string]bool, error) {
	entries, err := s.List(ctx, sync)
	if err != nil {
		return nil, err
	}
	set := map[string]bool{}
	for _, e := range entries {
		if e.Quarantined {
			set[string(e.Key)] = true
		}
	}
	return set, nil
}

// Record updates streaks after a run: each failed key's streak grows, and
// reaching threshold (> 0) quarantines it; keys on a streak that did not
// fail this run start over. It returns how many keys it quarantined. It is
// idempotent per run: a run recorded twice counts once.
func (s *Store) Record(ctx context.Context, sync, runID string, failed []record.Result, threshold int) (int, error) {
	entries, err := s.List(ctx, sync)
	if err != nil {
		return 0, err
	}
	known := map[string]Entry{}
	for _, e := range entries {
		known[string(e.Key)] = e
	}
	quarantined := 0
	failedNow := map[string]bool{}
	for _, f := range failed {
		if f.Status != record.Failed {
			continue
		}
		failedNow[string(f.KeyEnc)] = true
		e := known[string(f.KeyEnc)]
		if e.LastRun == runID {
			continue
		}
		e.Key, e.LastRun, e.LastError = f.KeyEnc, runID, f.Error
		e.Streak++
		if threshold > 0 && e.Streak >= threshold && !e.Quarantined {
			e.Quarantined, e.Since = true, time.Now().UTC()
			quarantined++
		}
		if err := s.put(ctx, sync, e); err != nil {
			return quarantined, err
		}
	}
	for k, e := range known {
		if !failedNow[k] && !e.Quarantined && e.LastRun != runID {
			if err := s.kv.Delete(ctx, entryKey(sync, e.Key)); err != nil {
				return quarantined, fmt.Errorf("clearing streak: %w", err)
			}
		}
	}
	return quarantined, nil
}

func (s *Store) put(ctx context.Context, sync string, e Entry) error {
	data, _ := json.Marshal(e)
	if _, err := s.kv.Put(ctx, entryKey(sync, e.Key), data); err != nil {
		return fmt.Errorf("saving quarantine entry: %w", err)
	}
	return nil
}

// Release lifts the quarantine of a sync's keys: all of them when key is
// empty, else the one whose text form (record.Key.String) is key. It
// returns how many were released.
func (s *Store) Release(ctx context.Context, sync, key string) (int, error) {
	entries, err := s.List(ctx, sync)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range entries {
		if key != "" && strings.TrimSpace(key) != e.Key.String() {
			continue
		}
		if err := s.kv.Delete(ctx, entryKey(sync, e.Key)); err != nil {
			return n, fmt.Errorf("releasing %s: %w", e.Key, err)
		}
		if e.Quarantined {
			n++
		}
	}
	return n, nil
}
