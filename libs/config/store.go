package config

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// Kind names a resource type in the store.
type Kind string

const (
	KindSource      Kind = "source"
	KindDestination Kind = "destination"
	KindSync        Kind = "sync"
)

// ErrNotFound is returned for a resource that does not exist.
var ErrNotFound = errors.New("not found")

// Store keeps resources in the config KV bucket as JSON, one key each
// ("<kind>.<name>"). Writes are compare-and-swap on revision.
type Store struct {
	kv jetstream.KeyValue
}

// NewStore wraps the config bucket.
func NewStore(kv jetstream.KeyValue) *Store { return &Store{kv: kv} }

// OpenStore opens the config bucket, which bus.Provision created.
func OpenStore(ctx context.Context, js jetstream.JetStream, bucket string) (*Store, error) {
	kv, err := js.KeyValue(ctx, bucket)
	if err != nil {
		return nil, fmt.Errorf("opening config bucket %s: %w", bucket, err)
	}
	return NewStore(kv), nil
}

func key(kind Kind, name string) string { return string(kind) + "." + name }

// get reads one resource into v and returns its revision.
func (s *Store) get(ctx context.Context, kind Kind, name string, v any) (uint64, error) {
	e, err := s.kv.Get(ctx, key(kind, name))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, fmt.Errorf("%s %q: %w", kind, name, ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("reading %s %q: %w", kind, name, err)
	}
	if err := json.Unmarshal(e.Value(), v); err != nil {
		return 0, fmt.Errorf("decoding %s %q: %w", kind, name, err)
	}
	return e.Revision(), nil
}

// put writes a resource. revision 0 creates it and fails if it exists.
func (s *Store) put(ctx context.Context, kind Kind, name string, v any, revision uint64) (uint64, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return 0, fmt.Errorf("encoding %s %q: %w", kind, name, err)
	}
	var rev uint64
	if revision == 0 {
		rev, err = s.kv.Create(ctx, key(kind, name), data)
	} else {
		rev, err = s.kv.Update(ctx, key(kind, name), data, revision)
	}
	if err != nil {
		return 0, fmt.Errorf("writing %s %q: %w", kind, name, err)
	}
	return rev, nil
}

// Put creates or replaces a resource, whatever its revision.
func (s *Store) Put(ctx context.Context, kind Kind, name string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding %s %q: %w", kind, name, err)
	}
	if _, err := s.kv.Put(ctx, key(kind, name), data); err != nil {
		return fmt.Errorf("writing %s %q: %w", kind, name, err)
	}
	return nil
}

// Delete removes a resource.
func (s *Store) Delete(ctx context.Context, kind Kind, name string) error {
	if _, err := s.kv.Get(ctx, key(kind, name)); errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("%s %q: %w", kind, name, ErrNotFound)
	}
	if err := s.kv.Delete(ctx, key(kind, name)); err != nil {
		return fmt.Errorf("deleting %s %q: %w", kind, name, err)
	}
	return nil
}

// names lists the names of one kind, sorted.
func (s *Store) names(ctx context.Context, kind Kind) ([]string, error) {
	lister, err := s.kv.ListKeysFiltered(ctx, string(kind)+".*")
	if err != nil {
		return nil, fmt.Errorf("listing %ss: %w", kind, err)
	}
	var names []string
	for k := range lister.Keys() {
		names = append(names, strings.TrimPrefix(k, string(kind)+"."))
	}
	sort.Strings(names)
	return names, nil
}

// Source reads a source.
func (s *Store) Source(ctx context.Context, name string) (Source, error) {
	var v Source
	_, err := s.get(ctx, KindSource, name, &v)
	return v, err
}

// Destination reads a destination.
func (s *Store) Destination(ctx context.Context, name string) (Destination, error) {
	var v Destination
	_, err := s.get(ctx, KindDestination, name, &v)
	return v, err
}

// Sync reads a sync.
func (s *Store) Sync(ctx context.Context, name string) (Sync, error) {
	var v Sync
	_, err := s.get(ctx, KindSync, name, &v)
	return v, err
}

// Load reads every resource, as a File.
func (s *Store) Load(ctx context.Context) (File, error) {
	var f File
	names, err := s.names(ctx, KindSource)
	if err != nil {
		return f, err
	}
	for _, n := range names {
		v, err := s.Source(ctx, n)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return f, err
		}
		if err == nil {
			f.Sources = append(f.Sources, v)
		}
	}
	if names, err = s.names(ctx, KindDestination); err != nil {
		return f, err
	}
	for _, n := range names {
		v, err := s.Destination(ctx, n)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return f, err
		}
		if err == nil {
			f.Destinations = append(f.Destinations, v)
		}
	}
	if names, err = s.names(ctx, KindSync); err != nil {
		return f, err
	}
	for _, n := range names {
		v, err := s.Sync(ctx, n)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return f, err
		}
		if err == nil {
			f.Syncs = append(f.Syncs, v)
		}
	}
	return f, nil
}

// Watch signals on the returned channel whenever a resource of kind is
// created, changed or deleted, until ctx ends. Signals coalesce: a slow
// reader sees one signal for many changes.
func (s *Store) Watch(ctx context.Context, kind Kind) (<-chan struct{}, error) {
	w, err := s.kv.Watch(ctx, string(kind)+".*", jetstream.UpdatesOnly())
	if err != nil {
		return nil, fmt.Errorf("watching %ss: %w", kind, err)
	}
	out := make(chan struct{}, 1)
	go func() {
		defer w.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e == nil {
					continue
				}
				select {
				case out <- struct{}{}:
				default:
				}
			}
		}
	}()
	return out, nil
}
