// Package logging builds the zerolog logger every service is handed, and
// names the fields Ebb logs, so logs can be queried the same way everywhere.
package logging

import (
	"io"
	"os"
	"time"

	"github.com/rs/zerolog"
)

// Field names.
const (
	FieldService     = "service"
	FieldSync        = "sync"
	FieldRun         = "run_id"
	FieldDestination = "destination"
	FieldSource      = "source"
	FieldBatch       = "batch"
	FieldPartition   = "partition"
	FieldRecords     = "records"
	FieldState       = "state"
	FieldAttempt     = "attempt"
	FieldDuration    = "duration"
)

// New returns a JSON logger at level ("debug", "info", ...); pretty writes
// human-readable lines instead, for a terminal.
func New(w io.Writer, level string, pretty bool) zerolog.Logger {
	lvl, err := zerolog.ParseLevel(level)
	if err != nil || level == "" {
		lvl = zerolog.InfoLevel
	}
	if pretty {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly}
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger()
}

// Stderr is New on standard error.
func Stderr(level string, pretty bool) zerolog.Logger { return New(os.Stderr, level, pretty) }
