package bigquery

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	bq "cloud.google.com/go/bigquery"
	"google.golang.org/api/googleapi"
)

// errLoadEnded stops the row writer when the load job ended (in error)
// before it read all the rows.
var errLoadEnded = errors.New("load ended")

// LoadRows appends rows to table (unqualified, in the snapshot dataset) in
// one load job, where INSERT statements would each be a query job.
// next returns each row's values (int64, string or []byte; nil for NULL),
// in the table's column order, false at the end. The rows stream to
// BigQuery as newline-delimited JSON through a pipe, which the client reads
// 16 MiB at a time (googleapi.DefaultUploadChunkSize): a smaller load goes
// in one multipart request, a bigger one as a resumable upload, chunk by
// chunk, so memory stays bounded whatever the row count. No rows, no job.
// It returns the rows BigQuery loaded (statistics.load.outputRows).
func (s *Source) LoadRows(ctx context.Context, table string, next func() ([]any, bool, error)) (int64, error) {
	doing := fmt.Sprintf("loading rows into table %q", s.snapshot+"."+table)
	t := s.client.Dataset(s.snapshot).Table(table)
	md, err := t.Metadata(ctx)
	if err != nil {
		return 0, s.apiError(doing, err)
	}
	first, ok, err := next()
	if err != nil {
		return 0, fmt.Errorf("%s: %w", doing, err)
	}
	if !ok {
		return 0, nil
	}
	pr, pw := io.Pipe()
	written := make(chan error, 1)
	go func() {
		err := writeRows(pw, md.Schema, first, next)
		_ = pw.CloseWithError(err) // nil: the reader sees EOF
		written <- err
	}()
	n, err := s.load(ctx, t, pr)
	_ = pr.CloseWithError(errLoadEnded)
	if werr := <-written; werr != nil && !errors.Is(werr, errLoadEnded) {
		return 0, fmt.Errorf("%s: %w", doing, werr) // the rows' error failed the upload
	}
	if err != nil {
		return 0, s.loadError(doing, err)
	}
	return n, nil
}

// load runs a load job of newline-delimited JSON into an existing table
// (CREATE_NEVER: the engine creates its tables) and waits for it.
func (s *Source) load(ctx context.Context, t *bq.Table, r io.Reader) (int64, error) {
	src := bq.NewReaderSource(r)
	src.SourceFormat = bq.JSON
	l := t.LoaderFrom(src)
	l.WriteDisposition = bq.WriteAppend
	l.CreateDisposition = bq.CreateNever
	// No content sniffing: BigQuery takes any media type.
	l.MediaOptions = []googleapi.MediaOption{googleapi.ContentType("application/octet-stream")}
	job, err := l.Run(ctx)
	if err != nil {
		return 0, err
	}
	status, err := job.Wait(ctx)
	if err != nil {
		return 0, err
	}
	if status.Err() != nil {
		return 0, &jobFailed{status}
	}
	ls, ok := status.Statistics.Details.(*bq.LoadStatistics)
	if !ok {
		return 0, fmt.Errorf("bigquery returned no load statistics for job %s", job.ID())
	}
	return ls.OutputRows, nil
}

// jobFailed is a job that ended in error.
type jobFailed struct{ status *bq.JobStatus }

func (e *jobFailed) Error() string { return e.status.Err().Error() }
func (e *jobFailed) Unwrap() error { return e.status.Err() }

// loadError words a load's error. A failed load job's errorResult often
// says only that the job met too many errors: the rows at fault follow it
// in status.errors, so the message adds the first of them.
func (s *Source) loadError(doing string, err error) error {
	wrappedErr := s.apiError(doing, err)
	var failed *jobFailed
	if !errors.As(err, &failed) {
		return wrappedErr
	}
	var result *bq.Error
	errors.As(err, &result)
	var details []string
	for _, e := range failed.status.Errors {
		if e != nil && e.Message != "" && (result == nil || e.Message != result.Message) && len(details) < 3 {
			details = append(details, e.Message)
		}
	}
	if len(details) == 0 {
		return wrappedErr
	}
	return &wrapped{wrappedErr.Error() + "; " + strings.Join(details, "; "), err}
}

// writeRows writes the rows as newline-delimited JSON objects, checking
// each value against its column's type: a value of another type would
// load as something else (bytes as their base64 text) or fail the whole
// job far from the row at fault.
func writeRows(w io.Writer, schema bq.Schema, first []any, next func() ([]any, bool, error)) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	names := make([][]byte, len(schema))
	for i, f := range schema {
		names[i], _ = json.Marshal(f.Name)
	}
	var line []byte
	vals := first
	for row := int64(1); ; row++ {
		if len(vals) != len(schema) {
			return fmt.Errorf("row %d has %d values for the table's %d columns", row, len(vals), len(schema))
		}
		var err error
		if line, err = appendRow(line[:0], schema, names, vals); err != nil {
			return fmt.Errorf("row %d: %w", row, err)
		}
		if _, err := bw.Write(line); err != nil {
			return err
		}
		var ok bool
		if vals, ok, err = next(); err != nil {
			return err
		}
		if !ok {
			return bw.Flush()
		}
	}
}

// appendRow appends a row as a JSON object and a newline; NULLs are
// left out, which BigQuery loads as NULL.
func appendRow(b []byte, schema bq.Schema, names [][]byte, vals []any) ([]byte, error) {
	b = append(b, '{')
	sep := false
	for i, v := range vals {
		if v == nil {
			continue
		}
		if sep {
			b = append(b, ',')
		}
		sep = true
		b = append(append(b, names[i]...), ':')
		var err error
		if b, err = appendValue(b, schema[i], v); err != nil {
			return nil, err
		}
	}
	return append(b, '}', '\n'), nil
}

// appendValue appends an int64 to an INTEGER column, a string to a
// STRING one, []byte to a BYTES one (base64, as JSON loads take BYTES).
func appendValue(b []byte, f *bq.FieldSchema, v any) ([]byte, error) {
	switch x := v.(type) {
	case int64:
		if f.Type == bq.IntegerFieldType {
			return strconv.AppendInt(b, x, 10), nil
		}
	case string:
		if f.Type == bq.StringFieldType {
			if !utf8.ValidString(x) {
				return nil, fmt.Errorf("column %q: the string is not valid UTF-8", f.Name)
			}
			q, err := json.Marshal(x)
			return append(b, q...), err
		}
	case []byte:
		if f.Type == bq.BytesFieldType {
			b = append(b, '"')
			b = base64.StdEncoding.AppendEncode(b, x)
			return append(b, '"'), nil
		}
	default:
		return nil, fmt.Errorf("column %q: a %T, not an int64, string or []byte", f.Name, v)
	}
	return nil, fmt.Errorf("column %q: a %T for a column of type %s", f.Name, v, typeName(f))
}
