// Package snapshot stores what a sync last sent: every key of the model with
// a hash of its row, sorted by key, as an object in the JetStream object
// store. Change sets (the keys a run must send, with what changed) use the
// same framing. Both are written and read as streams, so memory does not
// grow with the table.
//
// Framing, per entry: uvarint key length, key bytes, then a fixed-size
// payload: the 16-byte row hash for snapshots, one change byte for change
// sets.
package snapshot

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ebb-etl/ebb/libs/bus"
	"github.com/ebb-etl/ebb/libs/record"
)

// HashSize is the size of a row hash.
const HashSize = 16

// Payload sizes of the two kinds of file.
const (
	SnapshotPayload = HashSize
	ChangesPayload  = 1
)

// Writer writes a sorted file into the object store.
type Writer struct {
	name    string
	payload int
	pw      *io.PipeWriter
	bw      *bufio.Writer
	done    chan error
	last    record.Key
	count   int64
	lenBuf  [binary.MaxVarintLen64]byte
}

// Create starts writing object name. Entries must come in strictly
// increasing key order. Close commits the object; Abort drops it.
func Create(ctx context.Context, obs jetstream.ObjectStore, name string, payload int) *Writer {
	pr, pw := io.Pipe()
	w := &Writer{name: name, payload: payload, pw: pw, bw: bufio.NewWriterSize(pw, 256<<10), done: make(chan error, 1)}
	go func() {
		_, err := obs.Put(ctx, jetstream.ObjectMeta{Name: name}, pr)
		pr.CloseWithError(err) // unblock the writer if Put failed early
		w.done <- err
	}()
	return w
}

// Write appends one entry.
func (w *Writer) Write(key record.Key, payload []byte) error {
	if len(payload) != w.payload {
		return fmt.Errorf("writing %s: payload of %d bytes, want %d", w.name, len(payload), w.payload)
	}
	if w.count > 0 && record.Compare(key, w.last) <= 0 {
		return fmt.Errorf("writing %s: key %s is not after %s", w.name, key, w.last)
	}
	n := binary.PutUvarint(w.lenBuf[:], uint64(len(key)))
	if _, err := w.bw.Write(w.lenBuf[:n]); err != nil {
		return fmt.Errorf("writing %s: %w", w.name, err)
	}
	if _, err := w.bw.Write(key); err != nil {
		return fmt.Errorf("writing %s: %w", w.name, err)
	}
	if _, err := w.bw.Write(payload); err != nil {
		return fmt.Errorf("writing %s: %w", w.name, err)
	}
	w.last = append(w.last[:0], key...)
	w.count++
	return nil
}

// Count is the number of entries written.
func (w *Writer) Count() int64 { return w.count }

// Close flushes and waits until the object is stored.
func (w *Writer) Close() error {
	if err := w.bw.Flush(); err != nil {
		w.pw.CloseWithError(err)
		<-w.done
		return fmt.Errorf("writing %s: %w", w.name, err)
	}
	w.pw.Close()
	if err := <-w.done; err != nil {
		return fmt.Errorf("storing %s: %w", w.name, err)
	}
	return nil
}

// Abort stops writing; the object is not stored.
func (w *Writer) Abort(cause error) {
	if cause == nil {
		cause = errors.New("aborted")
	}
	w.pw.CloseWithError(cause)
	<-w.done
}

// Reader reads a sorted file entry by entry.
type Reader struct {
	name    string
	payload int
	rc      io.ReadCloser
	cancel  context.CancelFunc
	br      *bufio.Reader
	key     record.Key
	value   []byte
}

// readLimit bounds one read of an object. The object store's Get applies
// its JetStream context's default timeout (5 s) to the whole read when the
// context has no deadline, and a 10M-row snapshot, read at the pace of the
// diff's merge, takes longer than that: reads failed with "nats: timeout".
// A deadline of our own replaces it.
const readLimit = 24 * time.Hour

// get opens object name for one read, with the read's own deadline, and
// guarded against a read that stalls (see bus.GuardStalls).
func get(ctx context.Context, obs jetstream.ObjectStore, name string) (io.ReadCloser, context.CancelFunc, error) {
	ctx, limit := context.WithTimeout(ctx, readLimit)
	guard := bus.GuardStalls(ctx)
	cancel := func() { guard.Stop(); limit() }
	var res jetstream.ObjectResult
	err := guard.Step(func() (err error) {
		res, err = obs.Get(guard.Context(), name)
		return err
	})
	if err != nil {
		cancel()
		return nil, nil, fmt.Errorf("opening %s: %w", name, err)
	}
	return readCloser{Reader: guard.Reader(res), Closer: res}, cancel, nil
}

type readCloser struct {
	io.Reader
	io.Closer
}

// Open reads object name. An empty name reads as an empty file (a sync that
// has never committed a snapshot).
func Open(ctx context.Context, obs jetstream.ObjectStore, name string, payload int) (*Reader, error) {
	r := &Reader{name: name, payload: payload, value: make([]byte, payload)}
	if name == "" {
		return r, nil
	}
	res, cancel, err := get(ctx, obs, name)
	if err != nil {
		return nil, err
	}
	r.rc, r.cancel = res, cancel
	r.br = bufio.NewReaderSize(res, 256<<10)
	return r, nil
}

// OpenLocal reads object name from a copy in a temporary file, removed on
// Close. A reader paced by a slow consumer (the extractor, waiting on
// backpressure from delivery) must not hold the object store's stream open:
// the store's reader times out when it is not read for a while, and a
// retry would start the object over. Copying first reads it at full speed.
func OpenLocal(ctx context.Context, obs jetstream.ObjectStore, name string, payload int) (*Reader, error) {
	if name == "" {
		return Open(ctx, obs, name, payload)
	}
	res, cancel, err := get(ctx, obs, name)
	if err != nil {
		return nil, err
	}
	defer cancel()
	defer res.Close()
	f, err := os.CreateTemp("", "ebb-snapshot-*")
	if err != nil {
		return nil, fmt.Errorf("copying %s: %w", name, err)
	}
	// Unlinked at once: the open file lives until Close, and nothing is
	// left behind by a crash.
	_ = os.Remove(f.Name())
	if _, err := io.Copy(f, res); err != nil {
		f.Close()
		return nil, fmt.Errorf("copying %s: %w", name, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("copying %s: %w", name, err)
	}
	return &Reader{name: name, payload: payload, value: make([]byte, payload), rc: f, br: bufio.NewReaderSize(f, 256<<10)}, nil
}

// Next advances to the next entry; it returns false at the end (err nil) or
// on a read error.
func (r *Reader) Next() (bool, error) {
	if r.br == nil {
		return false, nil
	}
	n, err := binary.ReadUvarint(r.br)
	if errors.Is(err, io.EOF) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading %s: %w", r.name, err)
	}
	if n > 1<<20 {
		return false, fmt.Errorf("reading %s: key of %d bytes: file is corrupt", r.name, n)
	}
	if uint64(cap(r.key)) < n {
		r.key = make(record.Key, n)
	}
	r.key = r.key[:n]
	if _, err := io.ReadFull(r.br, r.key); err != nil {
		return false, fmt.Errorf("reading %s: %w", r.name, err)
	}
	if _, err := io.ReadFull(r.br, r.value); err != nil {
		return false, fmt.Errorf("reading %s: %w", r.name, err)
	}
	return true, nil
}

// Key is the current entry's key, valid until the next call to Next.
func (r *Reader) Key() record.Key { return r.key }

// Value is the current entry's payload, valid until the next call to Next.
func (r *Reader) Value() []byte { return r.value }

// Close releases the object.
func (r *Reader) Close() error {
	if r.cancel != nil {
		defer r.cancel()
	}
	if r.rc == nil {
		return nil
	}
	return r.rc.Close()
}
