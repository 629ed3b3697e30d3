package run

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ebb-etl/ebb/libs/metrics"
)

// ErrNotFound is returned for a run that does not exist.
var ErrNotFound = errors.New("run not found")

// ErrActive is returned when a sync already has an active run.
var ErrActive = errors.New("sync already has an active run")

// Store keeps runs in the runs KV bucket: "run.<sync>.<id>" holds the run,
// "active.<sync>" the id of the sync's active run. Creating the active key
// with Create (which fails if it exists) is what makes two active runs of a
// sync impossible.
type Store struct {
	kv jetstream.KeyValue
}

// NewStore wraps the runs bucket.
func NewStore(kv jetstream.KeyValue) *Store { return &Store{kv: kv} }

// OpenStore opens the runs bucket.
func OpenStore(ctx context.Context, js jetstream.JetStream, bucket string) (*Store, error) {
	kv, err := js.KeyValue(ctx, bucket)
	if err != nil {
		return nil, fmt.Errorf("opening runs bucket %s: %w", bucket, err)
	}
	return NewStore(kv), nil
}

func runKey(sync, id string) string { return "run." + sync + "." + id }
func activeKey(sync string) string  { return "active." + sync }

// idKey maps a run id to its sync, so a run is found by id with one read.
// Listing keys instead misses a run that is being updated: with one
// revision kept per key, an update removes the message a lister started
// from.
func idKey(id string) string { return "id." + id }

// indexKey lists a sync's runs for the same reason: "index.<sync>.<id>",
// written once.
func indexKey(sync, id string) string { return "index." + sync + "." + id }

// Create claims the sync's active slot and stores a new pending run.
func (s *Store) Create(ctx context.Context, sync, trigger string) (*Run, error) {
	return s.create(ctx, &Run{ID: NewID(), Sync: sync, State: Pending, Trigger: trigger, CreatedAt: time.Now().UTC()})
}

// CreateDryRun is Create for a dry run (ebb sync plan). The run is a dry
// run from its first write: a crash can never leave behind a run that
// some stage takes for a real one.
func (s *Store) CreateDryRun(ctx context.Context, sync string) (*Run, error) {
	return s.create(ctx, &Run{ID: NewID(), Sync: sync, State: Pending, Trigger: "plan", DryRun: true, CreatedAt: time.Now().UTC()})
}

func (s *Store) create(ctx context.Context, r *Run) (*Run, error) {
	sync := r.Sync
	r.enter(Pending)
	if err := s.claimSlot(ctx, sync, r.ID); err != nil {
		return nil, err
	}
	data, _ := json.Marshal(r)
	if _, err := s.kv.Create(ctx, runKey(sync, r.ID), data); err != nil {
		_ = s.kv.Delete(ctx, activeKey(sync))
		return nil, fmt.Errorf("creating run of sync %q: %w", sync, err)
	}
	// The indexes come after the run, so a run is readable as soon as its
	// sync's active slot names it; Find and List fall back to listing run
	// keys for the moment before they exist.
	for _, k := range []string{idKey(r.ID), indexKey(sync, r.ID)} {
		if _, err := s.kv.Create(ctx, k, []byte(sync)); err != nil {
			return nil, fmt.Errorf("indexing run %s of sync %q: %w", r.ID, sync, err)
		}
	}
	return r, nil
}

// ActiveID returns the id of the sync's active run, or "".
func (s *Store) ActiveID(ctx context.Context, sync string) (string, error) {
	e, err := s.kv.Get(ctx, activeKey(sync))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("reading active run of sync %q: %w", sync, err)
	}
	return string(e.Value()), nil
}

// Get reads a run of a sync.
func (s *Store) Get(ctx context.Context, sync, id string) (*Run, error) {
	r, _, err := s.get(ctx, sync, id)
	return r, err
}

func (s *Store) get(ctx context.Context, sync, id string) (*Run, uint64, error) {
	e, err := s.kv.Get(ctx, runKey(sync, id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, fmt.Errorf("run %s of sync %q: %w", id, sync, ErrNotFound)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("reading run %s: %w", id, err)
	}
	var r Run
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return nil, 0, fmt.Errorf("decoding run %s: %w", id, err)
	}
	return &r, e.Revision(), nil
}

// Find reads a run by id alone.
func (s *Store) Find(ctx context.Context, id string) (*Run, error) {
	if strings.ContainsAny(id, ".*> ") || id == "" {
		return nil, fmt.Errorf("run id %q is malformed", id)
	}
	if e, err := s.kv.Get(ctx, idKey(id)); err == nil {
		return s.Get(ctx, string(e.Value()), id)
	} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, fmt.Errorf("looking up run %s: %w", id, err)
	}
	// Runs created before the id index existed.
	lister, err := s.kv.ListKeysFiltered(ctx, "run.*."+id)
	if err != nil {
		return nil, fmt.Errorf("looking up run %s: %w", id, err)
	}
	var found string
	for k := range lister.Keys() {
		found = k
	}
	if found == "" {
		return nil, fmt.Errorf("run %s: %w", id, ErrNotFound)
	}
	parts := strings.Split(found, ".")
	return s.Get(ctx, parts[1], id)
}

// List returns a sync's runs, newest first, at most limit (0: all).
func (s *Store) List(ctx context.Context, sync string, limit int) ([]*Run, error) {
	filter := "run.*.*"
	if sync != "" {
		filter = "run." + sync + ".*"
	}
	lister, err := s.kv.ListKeysFiltered(ctx, filter)
	if err != nil {
		return nil, fmt.Errorf("listing runs: %w", err)
	}
	type ref struct{ sync, id string }
	var refs []ref
	seen := map[string]bool{}
	for k := range lister.Keys() {
		parts := strings.Split(k, ".")
		refs = append(refs, ref{parts[1], parts[2]})
		seen[parts[2]] = true
	}
	// A run being updated can be missing from that listing (see idKey);
	// the index, never updated, has it.
	indexFilter := "index.*.*"
	if sync != "" {
		indexFilter = "index." + sync + ".*"
	}
	index, err := s.kv.ListKeysFiltered(ctx, indexFilter)
	if err != nil {
		return nil, fmt.Errorf("listing runs: %w", err)
	}
	for k := range index.Keys() {
		parts := strings.Split(k, ".")
		if !seen[parts[2]] {
			refs = append(refs, ref{parts[1], parts[2]})
			seen[parts[2]] = true
		}
	}
	sort.Slice(refs, func(i, j int) bool { return refs[i].id > refs[j].id })
	if limit > 0 && len(refs) > limit {
		refs = refs[:limit]
	}
	runs := make([]*Run, 0, len(refs))
	for _, rf := range refs {
		r, err := s.Get(ctx, rf.sync, rf.id)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		runs = append(runs, r)
	}
	return runs, nil
}

// ErrSkip, returned by an Update function, leaves the run unchanged.
var ErrSkip = errors.New("skip update")

// Update applies fn to the run and writes it back with compare-and-swap,
// retrying fn on a conflicting write. When fn moves the run to a terminal
// state, the sync's active slot is released.
func (s *Store) Update(ctx context.Context, sync, id string, fn func(*Run) error) (*Run, error) {
	for attempt := 0; ; attempt++ {
		r, rev, err := s.get(ctx, sync, id)
		if err != nil {
			return nil, err
		}
		wasTerminal, was := r.State.Terminal(), r.State
		if err := fn(r); err != nil {
			if errors.Is(err, ErrSkip) {
				return r, nil
			}
			return r, err
		}
		if r.State.Terminal() && r.FinishedAt.IsZero() {
			r.FinishedAt = time.Now().UTC()
		}
		if r.State != was {
			r.enter(r.State)
		}
		data, err := json.Marshal(r)
		if err != nil {
			return nil, fmt.Errorf("encoding run %s: %w", id, err)
		}
		if _, err := s.kv.Update(ctx, runKey(sync, id), data, rev); err != nil {
			if isConflict(err) && attempt < 1000 && ctx.Err() == nil {
				continue
			}
			return nil, fmt.Errorf("updating run %s: %w", id, err)
		}
		if r.State.Terminal() && !wasTerminal {
			metrics.Runs.WithLabelValues(sync, string(r.State)).Inc()
			metrics.RunSeconds.WithLabelValues(sync).Observe(r.FinishedAt.Sub(r.CreatedAt).Seconds())
			if err := s.release(ctx, sync, id); err != nil {
				return r, err
			}
		}
		return r, nil
	}
}

// claimSlot makes id the sync's active run, or fails with ErrActive
// naming the run that holds the slot.
func (s *Store) claimSlot(ctx context.Context, sync, id string) error {
	_, err := s.kv.Create(ctx, activeKey(sync), []byte(id))
	for attempt := 0; errors.Is(err, jetstream.ErrKeyExists); attempt++ {
		// A run that just ended frees its slot right after its final
		// Update, and a crash between the two leaves the slot naming a run
		// that is over, which would refuse every later run of the sync:
		// free such a slot, or see it freed meanwhile, and claim again.
		active, freed, ferr := s.releaseEnded(ctx, sync)
		slotFree := freed || errors.Is(ferr, jetstream.ErrKeyNotFound)
		if !slotFree || attempt == 3 {
			return fmt.Errorf("sync %q: %w (%s)", sync, ErrActive, active)
		}
		_, err = s.kv.Create(ctx, activeKey(sync), []byte(id))
	}
	if err != nil {
		return fmt.Errorf("claiming active slot of sync %q: %w", sync, err)
	}
	return nil
}

// releaseEnded frees the sync's active slot if the run it names is over,
// and reports the run it named and whether it freed it. The delete is
// compare-and-swap on the slot's revision, so it never frees a slot
// claimed meanwhile.
func (s *Store) releaseEnded(ctx context.Context, sync string) (active string, freed bool, err error) {
	e, err := s.kv.Get(ctx, activeKey(sync))
	if err != nil {
		return "", false, err
	}
	active = string(e.Value())
	r, _, err := s.get(ctx, sync, active)
	if err != nil || !r.State.Terminal() {
		return active, false, err
	}
	if err := s.kv.Delete(ctx, activeKey(sync), jetstream.LastRevision(e.Revision())); err != nil {
		return active, false, err
	}
	return active, true, nil
}

// release frees the sync's active slot if this run holds it.
func (s *Store) release(ctx context.Context, sync, id string) error {
	e, err := s.kv.Get(ctx, activeKey(sync))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading active run of sync %q: %w", sync, err)
	}
	if string(e.Value()) != id {
		return nil
	}
	if err := s.kv.Delete(ctx, activeKey(sync), jetstream.LastRevision(e.Revision())); err != nil && !isConflict(err) {
		return fmt.Errorf("releasing active run of sync %q: %w", sync, err)
	}
	return nil
}

// isConflict reports a compare-and-swap failure.
func isConflict(err error) bool {
	// On a replicated (R>1) bucket the server reports a conflict as error
	// 10164, not 10071; nats.go maps both to ErrKeyRevisionMismatch for
	// Update and Delete. Without this check, on a cluster every concurrent
	// update of a run failed instead of retrying.
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return true
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence {
		return true
	}
	return errors.Is(err, jetstream.ErrKeyExists)
}

// ReleaseOrphan frees a sync's active slot that names run id when that run
// does not exist and the slot is older than grace: a crash between the two
// writes of Create left it behind.
func (s *Store) ReleaseOrphan(ctx context.Context, sync, id string, grace time.Duration) error {
	e, err := s.kv.Get(ctx, activeKey(sync))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading active run of sync %q: %w", sync, err)
	}
	if string(e.Value()) != id || time.Since(e.Created()) < grace {
		return nil
	}
	if _, _, err := s.get(ctx, sync, id); !errors.Is(err, ErrNotFound) {
		return err
	}
	if err := s.kv.Delete(ctx, activeKey(sync), jetstream.LastRevision(e.Revision())); err != nil && !isConflict(err) {
		return fmt.Errorf("releasing orphaned active slot of sync %q: %w", sync, err)
	}
	return nil
}

// Prune deletes runs that ended before cutoff and returns how many: run
// history is kept for a configured time.
func (s *Store) Prune(ctx context.Context, cutoff time.Time) (int, error) {
	runs, err := s.List(ctx, "", 0)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, r := range runs {
		if !r.State.Terminal() || r.FinishedAt.IsZero() || !r.FinishedAt.Before(cutoff) {
			continue
		}
		if err := s.kv.Purge(ctx, runKey(r.Sync, r.ID)); err != nil {
			return n, fmt.Errorf("pruning run %s: %w", r.ID, err)
		}
		_ = s.kv.Purge(ctx, idKey(r.ID))
		_ = s.kv.Purge(ctx, indexKey(r.Sync, r.ID))
		n++
	}
	return n, nil
}

// Watch sends every run as it is written, starting with the runs stored
// now, until ctx ends. A slow reader delays the watch, never the writers.
func (s *Store) Watch(ctx context.Context) (<-chan *Run, error) {
	w, err := s.kv.Watch(ctx, "run.>")
	if err != nil {
		return nil, fmt.Errorf("watching runs: %w", err)
	}
	out := make(chan *Run, 64)
	go func() {
		defer close(out)
		defer func() { _ = w.Stop() }()
		for {
			var e jetstream.KeyValueEntry
			select {
			case <-ctx.Done():
				return
			case e = <-w.Updates():
			}
			if e == nil || e.Operation() != jetstream.KeyValuePut {
				continue // nil marks the end of the stored runs
			}
			var r Run
			if json.Unmarshal(e.Value(), &r) != nil {
				continue
			}
			select {
			case out <- &r:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}
