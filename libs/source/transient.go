package source

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
)

// TransientAttempts is how many times the differ and the extractor try a
// run's warehouse work that fails transiently (a timeout, a dropped
// connection, a warehouse restarting or overloaded) before the run fails
// with the warehouse's message. Retries back off 1 s, 2 s, 4 s, 8 s; a
// retried diff starts over (the warehouse engine rebuilds its tables), a
// retried extraction resumes from its checkpoint, and nothing is committed
// before every record has its result.
const TransientAttempts = 5

// TransientClassifier is implemented by sources that know which of their
// warehouse's errors are worth retrying, beyond those IsTransient
// recognises by itself.
type TransientClassifier interface {
	IsTransient(err error) bool
}

// TransientError marks a failure worth retrying.
type TransientError struct{ Err error }

func (e *TransientError) Error() string { return e.Err.Error() }
func (e *TransientError) Unwrap() error { return e.Err }

// MarkTransient wraps err in a TransientError when src (which may be nil)
// or IsTransient classifies it as transient.
func MarkTransient(src Source, err error) error {
	if err == nil {
		return nil
	}
	if c, ok := src.(TransientClassifier); ok && c.IsTransient(err) {
		return &TransientError{err}
	}
	if IsTransient(err) {
		return &TransientError{err}
	}
	return err
}

// IsTransient recognises failures of any warehouse worth retrying: network
// timeouts and dropped connections, a deadline exceeded, and SQLSTATE
// classes 08 (connection exception), 40 (transaction rollback: deadlock,
// serialization), 53 (insufficient resources) and 57 (operator
// intervention: statement timeout, server shutting down) from Postgres and
// Redshift.
func IsTransient(err error) bool {
	var te *TransientError
	if errors.As(err, &te) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, net.ErrClosed) {
		return true
	}
	// Drivers mark failures that happened before a statement reached the
	// server (pgx: a connection that was closed under it, as a server
	// restart does).
	var retry interface{ SafeToRetry() bool }
	if errors.As(err, &retry) && retry.SafeToRetry() {
		return true
	}
	var st interface{ SQLState() string }
	if errors.As(err, &st) {
		switch class := st.SQLState(); {
		case strings.HasPrefix(class, "08"), strings.HasPrefix(class, "40"),
			strings.HasPrefix(class, "53"), strings.HasPrefix(class, "57"):
			return true
		}
	}
	return false
}
