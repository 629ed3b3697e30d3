// Package bigquery reads models from Google BigQuery with the official client
// (cloud.google.com/go/bigquery), over the REST API: queries run as jobs and
// their results are read page by page, never whole into memory.
//
// Config fields (see Open): project (required), dataset, location,
// credentials_json, endpoint, snapshot_schema, storage_read and
// storage_endpoint.
//
// By default results come through jobs.getQueryResults pages (JSON), which
// need no extra permission. With storage_read: true, results of more than
// one page are read through the Storage Read API instead (Arrow record
// batches over gRPC), for large models; it needs
// bigquery.readsessions.create on the project (roles/bigquery.readSessionUser).
// The client reads the query's result table in one stream when the query
// is ordered, as every scan is, so rows keep their key order; memory holds
// a few record batches. When a read session cannot be created (no
// permission, say) the client silently falls back to pages.
//
// The warehouse diff engine's tables (see warehouse.go) are written by
// query jobs, and bulk rows by LoadRows, one load job of newline-delimited
// JSON (see load.go).
package bigquery

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	bq "cloud.google.com/go/bigquery"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/ebb-etl/ebb/libs/source"
	"github.com/ebb-etl/ebb/libs/source/internal/query"
)

// Source reads models from one BigQuery project.
type Source struct {
	client   *bq.Client
	project  string
	dataset  string
	location string
	// snapshot is the dataset of the warehouse engine's tables.
	snapshot string
	// member is the IAM member the credentials act as, for the check's
	// fix statements ("" with application default credentials).
	member string
}

var _ source.Source = (*Source)(nil)

// Open creates a client from the config:
//
//	project           the project that runs (and is billed for) the queries; required
//	dataset           default dataset for unqualified table names in models
//	location          where jobs run ("US", "EU", "europe-west1", …); BigQuery infers it when empty
//	credentials_json  a service account key (JSON text); application default
//	                  credentials when empty
//	endpoint          the REST endpoint, for tests against a local server; with
//	                  no credentials_json it is called without authentication
//	snapshot_schema   the dataset of the warehouse diff engine's tables (default "ebb")
//	storage_read      true to read results of more than one page through the
//	                  Storage Read API (default false)
//	storage_endpoint  the Storage Read API's host:port, required with storage_read
//	                  and endpoint (a local server); with no credentials_json it
//	                  is called without authentication or TLS
//
// When a dataset is given, Open reads its metadata, so a wrong project,
// dataset or credential fails here rather than at the first run.
func Open(ctx context.Context, cfg map[string]any) (*Source, error) {
	c, err := parseConfig(cfg)
	if err != nil {
		return nil, err
	}
	snapshot, err := source.SnapshotSchema(cfg)
	if err != nil {
		return nil, fmt.Errorf("bigquery source: %w", err)
	}
	var opts []option.ClientOption
	if c.credentials != "" {
		opts = append(opts, option.WithAuthCredentialsJSON(option.ServiceAccount, []byte(c.credentials)))
	}
	if c.endpoint != "" {
		opts = append(opts, option.WithEndpoint(c.endpoint))
		if c.credentials == "" {
			opts = append(opts, option.WithoutAuthentication())
		}
	}
	client, err := bq.NewClient(ctx, c.project, opts...)
	if err != nil {
		// The client's errors do not quote the key.
		return nil, fmt.Errorf("bigquery source: creating client: %w", err)
	}
	client.Location = c.location
	if c.storageRead {
		if err := client.EnableStorageReadClient(ctx, storageOptions(c)...); err != nil {
			_ = client.Close()
			return nil, fmt.Errorf("bigquery source: enabling the Storage Read API: %w", err)
		}
	}
	s := &Source{client: client, project: c.project, dataset: c.dataset, location: c.location, snapshot: snapshot,
		member: memberOf(c.credentials)}
	if c.dataset != "" {
		if _, err := client.Dataset(c.dataset).Metadata(ctx); err != nil {
			_ = client.Close()
			return nil, s.apiError(fmt.Sprintf("reading dataset %q", c.dataset), err)
		}
	}
	return s, nil
}

type config struct {
	project, dataset, location, credentials, endpoint string
	storageRead                                       bool
	storageEndpoint                                   string
}

// storageOptions are the Storage Read client's options: the credentials,
// and for a local server its endpoint, without TLS when without credentials.
func storageOptions(c config) []option.ClientOption {
	var opts []option.ClientOption
	if c.credentials != "" {
		opts = append(opts, option.WithAuthCredentialsJSON(option.ServiceAccount, []byte(c.credentials)))
	}
	if c.storageEndpoint != "" {
		opts = append(opts, option.WithEndpoint(c.storageEndpoint))
		if c.credentials == "" {
			opts = append(opts, option.WithoutAuthentication(),
				option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())))
		}
	}
	return opts
}

func parseConfig(cfg map[string]any) (config, error) {
	c, err := parseStrings(cfg)
	if err != nil {
		return c, err
	}
	if v, ok := cfg["storage_read"]; ok && v != nil {
		if c.storageRead, ok = v.(bool); !ok {
			return c, fmt.Errorf("bigquery source: config field %q must be true or false, not %T", "storage_read", v)
		}
	}
	switch {
	case c.storageEndpoint != "" && !c.storageRead:
		return c, errors.New(`bigquery source: config field "storage_endpoint" needs "storage_read": true`)
	case c.storageRead && c.endpoint != "" && c.storageEndpoint == "":
		// The client would reach Google's Storage Read API, not the local server.
		return c, errors.New(`bigquery source: config field "storage_endpoint" is required with "endpoint" when "storage_read" is true`)
	}
	return c, nil
}

func parseStrings(cfg map[string]any) (config, error) {
	var c config
	fields := []struct {
		name     string
		dst      *string
		required bool
	}{
		{"project", &c.project, true},
		{"dataset", &c.dataset, false},
		{"location", &c.location, false},
		{"credentials_json", &c.credentials, false},
		{"endpoint", &c.endpoint, false},
		{"storage_endpoint", &c.storageEndpoint, false},
	}
	for _, f := range fields {
		v, ok := cfg[f.name]
		if !ok || v == nil {
			if f.required {
				return c, fmt.Errorf("bigquery source: config field %q is required", f.name)
			}
			continue
		}
		s, ok := v.(string)
		if !ok {
			return c, fmt.Errorf("bigquery source: config field %q must be a string, not %T", f.name, v)
		}
		if s == "" && f.required {
			return c, fmt.Errorf("bigquery source: config field %q is required", f.name)
		}
		*f.dst = s
	}
	return c, nil
}

// Close closes the client.
func (s *Source) Close() error { return s.client.Close() }

// Columns dry-runs the model, which BigQuery plans without reading (or
// billing) any data, and returns its columns.
func (s *Source) Columns(ctx context.Context, sql string) ([]source.Column, error) {
	schema, err := s.schema(ctx, sql)
	if err != nil {
		return nil, err
	}
	cols := make([]source.Column, len(schema))
	for i, f := range schema {
		cols[i] = source.Column{Name: f.Name, Type: typeName(f), Int: f.Type == bq.IntegerFieldType}
	}
	return cols, nil
}

// schema dry-runs the model wrapped as the scans wrap it.
func (s *Source) schema(ctx context.Context, sql string) (bq.Schema, error) {
	q := s.query("SELECT * FROM " + query.Wrap(sql))
	q.DryRun = true
	job, err := q.Run(ctx)
	if err != nil {
		return nil, s.modelError(err)
	}
	st := job.LastStatus()
	if err := st.Err(); err != nil {
		return nil, s.modelError(err)
	}
	qs, ok := st.Statistics.Details.(*bq.QueryStatistics)
	if !ok || qs.Schema == nil {
		return nil, fmt.Errorf("running model: bigquery returned no schema for the dry run of job %s", job.ID())
	}
	return qs.Schema, nil
}

func (s *Source) query(sql string, params ...bq.QueryParameter) *bq.Query {
	q := s.client.Query(sql)
	q.DefaultProjectID = s.project
	q.DefaultDatasetID = s.dataset
	q.Location = s.location
	q.Parameters = params
	return q
}

// modelError wraps an error of a query as a model error.
func (s *Source) modelError(err error) error { return s.apiError("running model", err) }

// apiError words BigQuery's errors. Access denied says so, with the
// project and BigQuery's own message, which names the missing permission
// (bigquery.jobs.create, bigquery.tables.getData, …).
func (s *Source) apiError(doing string, err error) error {
	var ge *googleapi.Error
	if errors.As(err, &ge) {
		reason := ""
		if len(ge.Errors) > 0 {
			reason = ge.Errors[0].Reason
		}
		msg := ge.Message
		if msg == "" && len(ge.Errors) > 0 {
			msg = ge.Errors[0].Message
		}
		if ge.Code == http.StatusForbidden || reason == "accessDenied" {
			return s.denied(doing, msg, reason, err)
		}
		return &wrapped{fmt.Sprintf("%s: %s (bigquery %s, HTTP %d)", doing, msg, reason, ge.Code), err}
	}
	var be *bq.Error
	if errors.As(err, &be) {
		if be.Reason == "accessDenied" {
			return s.denied(doing, be.Message, be.Reason, err)
		}
		return &wrapped{fmt.Sprintf("%s: %s (bigquery %s)", doing, be.Message, be.Reason), err}
	}
	return fmt.Errorf("%s: %w", doing, err)
}

func (s *Source) denied(doing, msg, reason string, err error) error {
	return &wrapped{fmt.Sprintf("%s: bigquery source (project %s) was denied access: %s (%s)", doing, s.project, msg, reason), err}
}

// wrapped rewords an error of the client and keeps it for errors.As (the
// HTTP code tells retryable errors from permanent ones).
type wrapped struct {
	msg string
	err error
}

func (e *wrapped) Error() string { return e.msg }
func (e *wrapped) Unwrap() error { return e.err }
