package bqtest

import (
	"context"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	duckdbdriver "github.com/duckdb/duckdb-go/v2"
)

// Load jobs come with their data, through jobs.insert's media upload, POST
// /upload/bigquery/v2/projects/{project}/jobs, as the client sends a load
// from a reader:
//
//   - uploadType=multipart: one multipart/related body, the Job resource
//     (application/json) then the data;
//   - uploadType=resumable: the Job resource alone; the answer's Location
//     header is the session URI, to which the data goes in chunks (POST with
//     Content-Range "bytes a-b/*", the last "bytes a-b/total" or
//     "bytes */total"). Each chunk but the last is answered with 308 Resume
//     Incomplete and a Range header — as 200 with X-HTTP-Status-Code-Override:
//     308 when the client sends X-GUploader-No-308: yes, as Google's Go client
//     does — and the last with the Job.
//
// Chunks are kept in a temporary file, so an upload holds no memory.

// tableRef is a TableReference.
type tableRef struct {
	ProjectID string `json:"projectId"`
	DatasetID string `json:"datasetId"`
	TableID   string `json:"tableId"`
}

// loadConfig is the part of configuration.load the server reads.
type loadConfig struct {
	DestinationTable    *tableRef `json:"destinationTable"`
	SourceFormat        string    `json:"sourceFormat"`
	SourceURIs          []string  `json:"sourceUris"`
	WriteDisposition    string    `json:"writeDisposition"`
	CreateDisposition   string    `json:"createDisposition"`
	Schema              *schema   `json:"schema"`
	Autodetect          bool      `json:"autodetect"`
	Encoding            string    `json:"encoding"`
	FieldDelimiter      string    `json:"fieldDelimiter"`
	Quote               *string   `json:"quote"`
	SkipLeadingRows     int64     `json:"skipLeadingRows"`
	NullMarker          string    `json:"nullMarker"`
	NullMarkers         []string  `json:"nullMarkers"`
	AllowJaggedRows     bool      `json:"allowJaggedRows"`
	AllowQuotedNewlines bool      `json:"allowQuotedNewlines"`
	IgnoreUnknownValues bool      `json:"ignoreUnknownValues"`
	MaxBadRecords       int64     `json:"maxBadRecords"`
}

// loadStats are a load job's statistics.load.
type loadStats struct {
	inputBytes, outputRows, badRecords int64
}

func (l loadStats) resource() map[string]string {
	return map[string]string{
		"inputFiles":     "1",
		"inputFileBytes": strconv.FormatInt(l.inputBytes, 10),
		"outputRows":     strconv.FormatInt(l.outputRows, 10),
		"outputBytes":    "0",
		"badRecords":     strconv.FormatInt(l.badRecords, 10),
	}
}

// upload is a resumable upload session.
type upload struct {
	job  *job
	cfg  loadConfig
	mu   sync.Mutex // chunks of one session come one at a time; guards size
	file *os.File
	size int64 // bytes received
}

func (s *Server) handleUpload(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	switch {
	case q.Get("upload_id") != "":
		s.handleChunk(w, r, q.Get("upload_id"))
	case q.Get("uploadType") == "multipart":
		s.handleMultipart(w, r)
	case q.Get("uploadType") == "resumable":
		s.handleStartResumable(w, r)
	default:
		failUpload(w, r, invalid(fmt.Sprintf("Unsupported uploadType %q: this server takes multipart and resumable uploads", q.Get("uploadType"))))
	}
}

func (s *Server) handleMultipart(w http.ResponseWriter, r *http.Request) {
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/related" {
		failUpload(w, r, invalid("A multipart upload needs a multipart/related body"))
		return
	}
	mr := multipart.NewReader(r.Body, params["boundary"])
	meta, err := mr.NextPart()
	if err != nil {
		failUpload(w, r, invalid("Reading the job resource of the multipart body: "+err.Error()))
		return
	}
	j, cfg, err := s.newLoadJob(meta)
	if err != nil {
		failUpload(w, r, err)
		return
	}
	data, err := mr.NextPart()
	if err != nil {
		failUpload(w, r, invalid("The multipart body has no media part: "+err.Error()))
		return
	}
	s.runLoad(r.Context(), j, cfg, data)
	writeJSON(w, http.StatusOK, s.jobResource(j))
}

// failUpload answers an upload with an error once its body is read: the
// client is still sending it, and a connection closed under it would hide
// the answer.
func failUpload(w http.ResponseWriter, r *http.Request, err error) {
	_, _ = io.Copy(io.Discard, r.Body)
	writeError(w, err)
}

// handleStartResumable opens a session for the data of the job in the body.
func (s *Server) handleStartResumable(w http.ResponseWriter, r *http.Request) {
	j, cfg, err := s.newLoadJob(r.Body)
	if err != nil {
		failUpload(w, r, err)
		return
	}
	f, err := os.CreateTemp("", "bqtest-upload-*")
	if err != nil {
		failUpload(w, r, err)
		return
	}
	id := fmt.Sprintf("upload_%06d", s.nextUpload.Add(1))
	s.mu.Lock()
	s.uploads[id] = &upload{job: j, cfg: cfg, file: f}
	s.mu.Unlock()
	w.Header().Set("Location", s.http.URL+"/upload/bigquery/v2/projects/"+s.Project+"/jobs?uploadType=resumable&upload_id="+id)
	w.WriteHeader(http.StatusOK)
}

// handleChunk writes a chunk at its offset; with the last one it runs the
// load and answers with the job.
func (s *Server) handleChunk(w http.ResponseWriter, r *http.Request, id string) {
	s.mu.Lock()
	u := s.uploads[id]
	s.mu.Unlock()
	if u == nil {
		failUpload(w, r, notFound("Not found: upload session "+id))
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	total, err := u.write(r)
	if err != nil {
		failUpload(w, r, err)
		return
	}
	if total < 0 || u.size < total {
		resumeIncomplete(w, r, u.size)
		return
	}
	s.mu.Lock()
	delete(s.uploads, id)
	s.mu.Unlock()
	defer u.remove()
	if _, err := u.file.Seek(0, io.SeekStart); err != nil {
		failUpload(w, r, err)
		return
	}
	s.runLoad(r.Context(), u.job, u.cfg, u.file)
	writeJSON(w, http.StatusOK, s.jobResource(u.job))
}

// write stores a chunk at the offset its Content-Range gives (a retried
// chunk overwrites what it sent before) and returns the upload's total size,
// -1 while unknown.
func (u *upload) write(r *http.Request) (int64, error) {
	first, last, total, err := parseContentRange(r.Header.Get("Content-Range"))
	if err != nil {
		return 0, err
	}
	if first < 0 { // "bytes */total": no data
		return total, nil
	}
	if first > u.size {
		return 0, invalid(fmt.Sprintf("Chunk starts at byte %d but only %d bytes were received", first, u.size))
	}
	if _, err := u.file.Seek(first, io.SeekStart); err != nil {
		return 0, err
	}
	n, err := io.Copy(u.file, r.Body)
	if err != nil {
		return 0, err
	}
	if n != last-first+1 {
		return 0, invalid(fmt.Sprintf("Chunk of %d bytes for Content-Range bytes %d-%d", n, first, last))
	}
	u.size = max(u.size, last+1)
	return total, nil
}

func (u *upload) remove() {
	_ = u.file.Close()
	_ = os.Remove(u.file.Name())
}

// parseContentRange reads "bytes a-b/total", "bytes a-b/*" (total -1) and
// "bytes */total" (first -1).
func parseContentRange(h string) (first, last, total int64, err error) {
	bad := invalid(fmt.Sprintf("Invalid Content-Range %q", h))
	spec, ok := strings.CutPrefix(h, "bytes ")
	rng, size, ok2 := strings.Cut(spec, "/")
	if !ok || !ok2 {
		return 0, 0, 0, bad
	}
	total = -1
	if size != "*" {
		if total, err = strconv.ParseInt(size, 10, 64); err != nil {
			return 0, 0, 0, bad
		}
	}
	if rng == "*" {
		if total < 0 {
			return 0, 0, 0, bad
		}
		return -1, -1, total, nil
	}
	a, b, ok := strings.Cut(rng, "-")
	first, err1 := strconv.ParseInt(a, 10, 64)
	last, err2 := strconv.ParseInt(b, 10, 64)
	if !ok || err1 != nil || err2 != nil || first < 0 || last < first || total >= 0 && last >= total {
		return 0, 0, 0, bad
	}
	return first, last, total, nil
}

// resumeIncomplete answers a chunk that is not the last.
func resumeIncomplete(w http.ResponseWriter, r *http.Request, size int64) {
	if size > 0 {
		w.Header().Set("Range", fmt.Sprintf("bytes=0-%d", size-1))
	}
	if r.Header.Get("X-GUploader-No-308") == "yes" {
		w.Header().Set("X-HTTP-Status-Code-Override", "308")
		w.WriteHeader(http.StatusOK)
		return
	}
	w.WriteHeader(http.StatusPermanentRedirect)
}

// newLoadJob reads the Job resource of an upload and checks its load
// configuration: what BigQuery refuses outright fails the request.
func (s *Server) newLoadJob(body io.Reader) (*job, loadConfig, error) {
	var req insertRequest
	if err := json.NewDecoder(body).Decode(&req); err != nil {
		return nil, loadConfig{}, invalid("Invalid JSON payload received. " + err.Error())
	}
	if req.Configuration.Load == nil {
		return nil, loadConfig{}, invalid("An upload's job must be a load job (configuration.load)")
	}
	var cfg loadConfig
	if err := json.Unmarshal(req.Configuration.Load, &cfg); err != nil {
		return nil, cfg, invalid("Invalid JSON payload received. " + err.Error())
	}
	if err := s.checkLoadConfig(&cfg); err != nil {
		return nil, cfg, err
	}
	s.mu.Lock()
	deny := s.denyJobs
	s.mu.Unlock()
	if deny {
		return nil, cfg, accessDenied(fmt.Sprintf("Access Denied: Project %s: User does not have bigquery.jobs.create permission in project %s.", s.Project, s.Project))
	}
	id := ""
	if req.JobReference != nil {
		id = req.JobReference.JobID
	}
	return &job{ref: s.newJobRef(id), load: req.Configuration.Load, created: time.Now()}, cfg, nil
}

// checkLoadConfig refuses what the server does not load, and fills in
// BigQuery's defaults.
func (s *Server) checkLoadConfig(cfg *loadConfig) error {
	d := cfg.DestinationTable
	switch {
	case d == nil || d.DatasetID == "" || d.TableID == "":
		return invalid("Required parameter is missing: configuration.load.destinationTable")
	case d.ProjectID != "" && d.ProjectID != s.Project:
		return invalid(fmt.Sprintf("Project %s of the destination table differs from project %s of the request", d.ProjectID, s.Project))
	case len(cfg.SourceURIs) > 0:
		return invalid("An upload's load job takes no sourceUris")
	case cfg.Autodetect:
		return invalid("This server does not detect schemas (autodetect)")
	case cfg.Encoding != "" && cfg.Encoding != "UTF-8":
		return invalid(fmt.Sprintf("This server loads UTF-8 only, not %s", cfg.Encoding))
	}
	cfg.SourceFormat = withDefault(cfg.SourceFormat, "CSV")
	cfg.WriteDisposition = withDefault(cfg.WriteDisposition, "WRITE_APPEND")
	cfg.CreateDisposition = withDefault(cfg.CreateDisposition, "CREATE_IF_NEEDED")
	switch {
	case cfg.SourceFormat != "CSV" && cfg.SourceFormat != "NEWLINE_DELIMITED_JSON":
		return invalid(fmt.Sprintf("This server loads CSV and NEWLINE_DELIMITED_JSON only, not %s", cfg.SourceFormat))
	case cfg.WriteDisposition != "WRITE_APPEND" && cfg.WriteDisposition != "WRITE_TRUNCATE" && cfg.WriteDisposition != "WRITE_EMPTY":
		return invalid(fmt.Sprintf("Invalid writeDisposition %s", cfg.WriteDisposition))
	case cfg.CreateDisposition != "CREATE_IF_NEEDED" && cfg.CreateDisposition != "CREATE_NEVER":
		return invalid(fmt.Sprintf("Invalid createDisposition %s", cfg.CreateDisposition))
	case cfg.Quote != nil && *cfg.Quote != `"`:
		return invalid(`This server reads CSV quoted with " only`)
	}
	if cfg.SourceFormat == "CSV" {
		if _, err := delimiter(cfg.FieldDelimiter); err != nil {
			return err
		}
	}
	return nil
}

func withDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// runLoad runs a load job: a failure is the job's, as in BigQuery, where
// the insert succeeds and the job ends in error. The data is read to its
// end either way, so the client's upload completes.
func (s *Server) runLoad(ctx context.Context, j *job, cfg loadConfig, data io.Reader) {
	in := &countingReader{r: data}
	stats, err := s.load(ctx, j, cfg, in)
	_, _ = io.Copy(io.Discard, in)
	stats.inputBytes = in.n
	j.loaded = stats
	if err != nil {
		var rows *rowErrors
		if errors.As(err, &rows) {
			j.err, j.errs = rows.result(cfg.SourceFormat), rows.errs
		} else {
			j.err = asAPIError(err)
		}
	}
	s.addJob(j)
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func asAPIError(err error) *apiError {
	var e *apiError
	if errors.As(err, &e) {
		return e
	}
	return &apiError{http.StatusInternalServerError, "INTERNAL", "backendError", err.Error()}
}

// load reads the data into a staging table in the hidden dataset, then appends it to
// the destination in one transaction: a load is all or nothing.
func (s *Server) load(ctx context.Context, j *job, cfg loadConfig, data io.Reader) (loadStats, error) {
	ds, table := cfg.DestinationTable.DatasetID, cfg.DestinationTable.TableID
	fields, err := s.loadFields(ctx, ds, table, cfg.Schema)
	if err != nil {
		return loadStats{}, err
	}
	stage := jobsDataset + "." + quoteIdent("load_"+j.ref.JobID)
	cols := make([]string, len(fields))
	for i, f := range fields {
		cols[i] = quoteIdent(f.Name) + " " + stagingType(f.Type)
	}
	if _, err := s.db.ExecContext(ctx, "CREATE TABLE "+stage+" ("+strings.Join(cols, ", ")+")"); err != nil {
		return loadStats{}, err
	}
	defer func() { _, _ = s.db.ExecContext(context.WithoutCancel(ctx), "DROP TABLE IF EXISTS "+stage) }()

	rows, err := newRowReader(cfg, fields, data)
	if err != nil {
		return loadStats{}, err
	}
	stats, err := s.stage(ctx, "load_"+j.ref.JobID, rows, cfg.MaxBadRecords)
	if err != nil {
		return stats, err
	}
	return stats, s.appendStaged(ctx, cfg, quoteIdent(ds)+"."+quoteIdent(table), stage)
}

// loadFields are the destination table's columns. The server loads into
// existing tables of scalar columns only (a missing table fails the job
// whatever the createDisposition); a schema given with the job must be the
// table's.
func (s *Server) loadFields(ctx context.Context, ds, table string, given *schema) ([]*field, error) {
	s.mu.Lock()
	perm, denied := s.denied[strings.ToLower(ds+"."+table)]
	s.mu.Unlock()
	path := s.Project + ":" + ds + "." + table
	if denied {
		return nil, accessDenied(fmt.Sprintf("Access Denied: Table %s: Permission %s denied on table %s (or it may not exist).", path, perm, path))
	}
	if err := s.checkDataset(ctx, ds); err != nil {
		return nil, err
	}
	sc, err := s.describe(ctx, s.db, fmt.Sprintf("SELECT * FROM %s.%s", quoteIdent(ds), quoteIdent(table)))
	if err != nil {
		if missingTable.MatchString(err.Error()) {
			return nil, notFound("Not found: Table " + path)
		}
		return nil, err
	}
	for _, f := range sc.Fields {
		if f.Type == "RECORD" || f.Mode == "REPEATED" {
			return nil, invalid(fmt.Sprintf("This server loads tables of scalar columns only; column %s of %s is %s %s", f.Name, path, f.Mode, f.Type))
		}
	}
	if given != nil && !sameFields(given.Fields, sc.Fields) {
		return nil, invalid(fmt.Sprintf("Provided Schema does not match Table %s.", path))
	}
	return sc.Fields, nil
}

// sameFields compares names (case-insensitively, as BigQuery does) and
// types, taking the GoogleSQL type names for the REST ones.
func sameFields(a, b []*field) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !strings.EqualFold(a[i].Name, b[i].Name) || restType(a[i].Type) != b[i].Type {
			return false
		}
	}
	return true
}

func restType(t string) string {
	switch t = strings.ToUpper(t); t {
	case "INT64":
		return "INTEGER"
	case "FLOAT64":
		return "FLOAT"
	case "BOOL":
		return "BOOLEAN"
	}
	return t
}

// stagingType holds a column's values as the row readers convert them;
// DuckDB casts the text of the other types when the rows are appended.
func stagingType(restType string) string {
	switch restType {
	case "INTEGER":
		return "BIGINT"
	case "FLOAT":
		return "DOUBLE"
	case "BOOLEAN":
		return "BOOLEAN"
	case "BYTES":
		return "BLOB"
	}
	return "VARCHAR"
}

// stage appends the rows to the staging table with DuckDB's appender,
// skipping up to maxBad rows in error.
func (s *Server) stage(ctx context.Context, table string, rows rowReader, maxBad int64) (loadStats, error) {
	var stats loadStats
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return stats, err
	}
	defer conn.Close()
	bad := &rowErrors{}
	err = conn.Raw(func(dc any) error {
		a, err := duckdbdriver.NewAppenderFromConn(dc.(driver.Conn), jobsDataset, table)
		if err != nil {
			return err
		}
		stats.outputRows, err = appendRows(a, rows, bad, maxBad)
		if cerr := a.Close(); err == nil {
			err = cerr
		}
		return err
	})
	stats.badRecords = int64(len(bad.errs))
	return stats, err
}

func appendRows(a *duckdbdriver.Appender, rows rowReader, bad *rowErrors, maxBad int64) (int64, error) {
	var n int64
	for {
		vals, err := rows.next()
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		var re *rowError
		if errors.As(err, &re) {
			if bad.add(re, rows.count()); int64(len(bad.errs)) > maxBad {
				return n, bad
			}
			continue
		}
		if err != nil {
			return n, err
		}
		if err := a.AppendRow(vals...); err != nil {
			return n, err
		}
		n++
	}
}

// appendStaged moves the staged rows to the destination, casting the text
// of the types the readers left as text; a value that does not cast fails
// the job.
func (s *Server) appendStaged(ctx context.Context, cfg loadConfig, dest, stage string) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	switch cfg.WriteDisposition {
	case "WRITE_TRUNCATE":
		if _, err := tx.ExecContext(ctx, "DELETE FROM "+dest); err != nil {
			return err
		}
	case "WRITE_EMPTY":
		var n int64
		if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM "+dest).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			d := cfg.DestinationTable
			return &apiError{http.StatusConflict, "ALREADY_EXISTS", "duplicate", fmt.Sprintf("Already Exists: Table %s:%s.%s", s.Project, d.DatasetID, d.TableID)}
		}
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO "+dest+" SELECT * FROM "+stage); err != nil {
		first, _, _ := strings.Cut(err.Error(), "\n")
		return invalid("Error while reading data, error message: " + first)
	}
	return tx.Commit()
}

// rowError is a row the load could not read.
type rowError struct{ msg string }

func (e *rowError) Error() string { return e.msg }

// rowErrors are the rows in error of a load that met too many.
type rowErrors struct {
	errs []*apiError
	rows int64 // rows read when the load gave up
}

func (e *rowErrors) Error() string { return fmt.Sprintf("%d rows in error", len(e.errs)) }

func (e *rowErrors) add(re *rowError, rows int64) {
	e.errs = append(e.errs, invalid("Error while reading data, error message: "+re.msg))
	e.rows = rows
}

// result is errorResult as BigQuery words it: the rows at fault are in
// errors[].
func (e *rowErrors) result(format string) *apiError {
	kind := "CSV"
	if format == "NEWLINE_DELIMITED_JSON" {
		kind = "JSON"
	}
	return invalid(fmt.Sprintf("Error while reading data, error message: %s table encountered too many errors, giving up. "+
		"Rows: %d; errors: %d. Please look into the errors[] collection for more details.", kind, e.rows, len(e.errs)))
}
