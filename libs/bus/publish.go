package bus

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Bus publishes and reads Ebb's messages. It knows the server's largest
// message (read at connect) and sends anything bigger by reference: the
// body goes to the payloads object store and the message carries its name
// in the PayloadHeader header, so no publish ever exceeds the server's max
// payload.
type Bus struct {
	JS jetstream.JetStream
	// payloads holds the bodies of messages too large to travel inline.
	payloads jetstream.ObjectStore
	// maxInline is the largest body published inline.
	maxInline int
}

// PayloadHeader names the object holding a message's body when the body
// was too large to travel inline.
const PayloadHeader = "Ebb-Payload"

// attemptTimeout bounds one publish attempt: a publish the server refuses
// for permissions is never answered, and only a timeout reveals it.
const attemptTimeout = 10 * time.Second

// headroom is what a message's headers (Nats-Msg-Id, PayloadHeader) and
// the protocol may take beside its body.
const headroom = 4 << 10

// Open returns the Bus of a connection whose streams and stores Provision
// created.
func Open(ctx context.Context, js jetstream.JetStream) (*Bus, error) {
	store, err := js.ObjectStore(ctx, ObjectPayloads)
	if err != nil {
		return nil, fmt.Errorf("opening payload store %s: %w", ObjectPayloads, err)
	}
	maxPayload := int(js.Conn().MaxPayload())
	if maxPayload <= 0 {
		maxPayload = 1 << 20 // the server default, if the connection cannot say
	}
	return &Bus{JS: js, payloads: store, maxInline: max(maxPayload-headroom, 1<<10)}, nil
}

// MaxInline is the largest body a message carries inline: the server's max
// payload, less room for headers. Stages size their batches below it.
func (b *Bus) MaxInline() int { return b.maxInline }

// ErrFull is what Publish returns when the subject's buffer (a sync's
// record batches, a destination lane's batches) or the whole stream is
// full. Nothing was stored. The caller hands its own input back with a
// delay and serves other work meanwhile; it never waits in place, which
// would let one slow destination hold a worker every sync shares.
var ErrFull = errors.New("buffer full")

// PermanentError is a publish that can never succeed as it is: the stream
// is missing, the connection may not publish on the subject, the message
// exceeds what the stream accepts. The run it belongs to fails with it.
type PermanentError struct {
	Subject string
	Err     error
}

func (e *PermanentError) Error() string {
	return fmt.Sprintf("publishing to %s can never succeed: %v", e.Subject, e.Err)
}
func (e *PermanentError) Unwrap() error { return e.Err }

// IsPermanent reports whether err is a PermanentError.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}

// Publish stores data on subject with the deterministic message id msgID
// and waits for the stream's acknowledgement. A body larger than MaxInline
// goes by reference. Transient failures (NATS unreachable, a leader
// election, a timeout) are retried with backoff until ctx ends: retrying is
// safe, the id makes it idempotent. A full buffer returns ErrFull at once,
// and a publish that can never succeed a *PermanentError.
func (b *Bus) Publish(ctx context.Context, subject string, data []byte, msgID string) error {
	msg := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{}}
	if len(data) > b.maxInline {
		if err := b.putPayload(ctx, msgID, data); err != nil {
			return fmt.Errorf("publishing %s: %w", subject, err)
		}
		msg.Data = nil
		msg.Header.Set(PayloadHeader, msgID)
	}
	backoff := 50 * time.Millisecond
	for {
		actx, cancel := context.WithTimeout(ctx, attemptTimeout)
		_, err := b.JS.PublishMsg(actx, msg, jetstream.WithMsgID(msgID))
		cancel()
		if err == nil {
			return nil
		}
		switch err = b.classify(ctx, subject, err); {
		case errors.Is(err, ErrFull):
			return fmt.Errorf("publishing %s: %w", subject, err)
		case IsPermanent(err):
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("publishing %s: %w", subject, errors.Join(ctx.Err(), err))
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 2*time.Second)
	}
}

// PublishWaiting is Publish that also waits while the buffer is full, until
// ctx ends. It is for what must follow work already done and cannot be
// handed back without redoing it (a batch's results, after the destination
// took the batch); the stages that read those streams serve every sync
// alike, so their buffers drain whatever a destination does.
func (b *Bus) PublishWaiting(ctx context.Context, subject string, data []byte, msgID string) error {
	backoff := 50 * time.Millisecond
	for {
		err := b.Publish(ctx, subject, data, msgID)
		if !errors.Is(err, ErrFull) {
			return err
		}
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), err)
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, time.Second)
	}
}

// classify sorts a publish error into ErrFull, a *PermanentError, or a
// transient error (returned as it is).
func (b *Bus) classify(ctx context.Context, subject string, err error) error {
	var apiErr *jetstream.APIError
	switch {
	case errors.As(err, &apiErr) && isFull(apiErr):
		return fmt.Errorf("%w: %s", ErrFull, apiErr.Description)
	case errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamMessageExceedsMaximum,
		errors.Is(err, nats.ErrMaxPayload),
		errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount),
		errors.Is(err, jetstream.ErrJetStreamNotEnabled):
		return &PermanentError{Subject: subject, Err: err}
	case errors.Is(err, jetstream.ErrNoStreamResponse):
		// Also what a leader election looks like for a moment: only a
		// stream that is really missing is permanent.
		if _, serr := b.JS.StreamNameBySubject(ctx, subject); errors.Is(serr, jetstream.ErrStreamNotFound) {
			return &PermanentError{Subject: subject, Err: fmt.Errorf("no stream holds the subject: %w", err)}
		}
	case errors.Is(err, nats.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		// A publish the server refuses for permissions is never answered:
		// the refusal arrives on the connection, not as a reply.
		if last := b.JS.Conn().LastError(); errors.Is(last, nats.ErrPermissionViolation) && strings.Contains(last.Error(), `"`+subject+`"`) {
			return &PermanentError{Subject: subject, Err: last}
		}
	}
	return err
}

// isFull reports a stream that refused a message for one of its limits.
// The server answers code 10077 with the limit in the description:
// "maximum messages per subject exceeded", "maximum bytes exceeded",
// "maximum messages exceeded".
func isFull(e *jetstream.APIError) bool {
	return e.ErrorCode == 10077 && strings.Contains(e.Description, "maximum")
}

// putPayload stores a body too large to travel inline under name.
func (b *Bus) putPayload(ctx context.Context, name string, data []byte) error {
	_, err := b.payloads.Put(ctx, jetstream.ObjectMeta{Name: name}, bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("storing payload %s: %w", name, err)
	}
	return nil
}

// Body returns a message's body, reading it from the payload store when
// it travelled by reference.
func (b *Bus) Body(ctx context.Context, msg jetstream.Msg) ([]byte, error) {
	name := refOf(msg)
	if name == "" {
		return msg.Data(), nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute) // a large object, not the 5 s default
	defer cancel()
	guard := GuardStalls(ctx)
	defer guard.Stop()
	var obj jetstream.ObjectResult
	err := guard.Step(func() (err error) {
		obj, err = b.payloads.Get(guard.Context(), name)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("reading payload %s: %w", name, err)
	}
	defer obj.Close()
	data, err := io.ReadAll(guard.Reader(obj))
	if err != nil {
		return nil, fmt.Errorf("reading payload %s: %w", name, err)
	}
	return data, nil
}

// release deletes the payload a consumed message referred to. A failure
// leaves it to DeletePayloads at the end of the run.
func (b *Bus) release(ctx context.Context, msg jetstream.Msg) {
	if name := refOf(msg); name != "" {
		_ = b.payloads.Delete(ctx, name)
	}
}

func refOf(msg jetstream.Msg) string {
	if h := msg.Headers(); h != nil {
		return h.Get(PayloadHeader)
	}
	return ""
}

// DeletePayloads deletes what is left in the payload store under prefix
// (a run's "<sync>/<run>/"): bodies whose message was consumed by a stage
// that died before deleting them, or republished after it was.
func (b *Bus) DeletePayloads(ctx context.Context, prefix string) error {
	lister, err := b.payloads.List(ctx)
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("listing payloads: %w", err)
	}
	for _, info := range lister {
		if strings.HasPrefix(info.Name, prefix) {
			if err := b.payloads.Delete(ctx, info.Name); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
				return fmt.Errorf("deleting payload %s: %w", info.Name, err)
			}
		}
	}
	return nil
}

// IsTransient reports an error of reaching NATS that passes by itself: a
// connection lost or being re-established, a timeout, a stream or leader
// not answering for a moment (an election, a node restarting). Work that
// failed with one is handed back and tried again, never failed.
func IsTransient(err error) bool {
	return errors.Is(err, nats.ErrDisconnected) || errors.Is(err, nats.ErrConnectionClosed) ||
		errors.Is(err, nats.ErrConnectionReconnecting) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, nats.ErrNoServers) ||
		errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, jetstream.ErrNoHeartbeat) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrStalled)
}
