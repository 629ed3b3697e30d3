package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/mapper"
	"github.com/ebb-etl/ebb/libs/record"
	"github.com/ebb-etl/ebb/libs/source"
	"github.com/ebb-etl/ebb/libs/transform"
	adminv1 "github.com/ebb-etl/ebb/proto/ebb/admin/v1"
)

// defaultSamples is TestTransformation's limit when none is given.
const defaultSamples = 10

// errEnough stops a scan once the samples are read.
var errEnough = errors.New("enough rows")

// TestTransformation implements AdminService: the same mapping and
// transformation code as the transformer, on the first rows of the model
// in key order. It sends and records nothing.
func (s *server) TestTransformation(ctx context.Context, req *adminv1.TestTransformationRequest) (*adminv1.TestTransformationResponse, error) {
	if s.d.OpenSource == nil {
		return nil, status.Error(codes.Unimplemented, "this admin server cannot read warehouses: run it in the ebb binary")
	}
	sy, err := s.d.Configs.Sync(ctx, req.GetSync())
	if err != nil {
		return nil, toStatus(err)
	}
	js, err := s.testCode(sy, req)
	if err != nil {
		return nil, err
	}
	m, err := mapper.New(sy.Mapping)
	if err != nil {
		return nil, status.Error(codes.FailedPrecondition, err.Error())
	}
	rows, err := s.sampleRows(ctx, sy, int(req.GetLimit()))
	if err != nil {
		return nil, err
	}
	resp := &adminv1.TestTransformationResponse{Version: js.Version()}
	for _, row := range rows {
		resp.Samples = append(resp.Samples, sample(ctx, sy.Name, m, js, row))
	}
	return resp, nil
}

// testCode compiles the code given, or the sync's.
func (s *server) testCode(sy config.Sync, req *adminv1.TestTransformationRequest) (*transform.Transformation, error) {
	t := sy.Transformation
	if req.GetCode() != "" {
		t = &config.Transformation{File: req.GetFile(), Code: req.GetCode()}
		if sy.Transformation != nil {
			t.TimeoutMS, t.MaxOutputBytes = sy.Transformation.TimeoutMS, sy.Transformation.MaxOutputBytes
		}
	}
	if t == nil {
		return nil, status.Errorf(codes.FailedPrecondition, "sync %q has no transformation: give the code to test", sy.Name)
	}
	opts := t.Options()
	opts.Runtimes = 1
	js, err := transform.New(t.Name(), t.Code, opts)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	return js, nil
}

// row is one sample: its key and data as the transformer would see them.
type row struct {
	key  map[string]any
	data map[string]any
}

// sampleRows reads the first rows of the model, through a JSON round trip
// like the extractor's, so values have the types the transformer sees.
func (s *server) sampleRows(ctx context.Context, sy config.Sync, limit int) ([]row, error) {
	if limit <= 0 {
		limit = defaultSamples
	}
	src, err := s.d.Configs.Source(ctx, sy.Source)
	if err != nil {
		return nil, toStatus(err)
	}
	wh, err := s.d.OpenSource(ctx, src)
	if err != nil {
		return nil, status.Error(codes.FailedPrecondition, err.Error())
	}
	defer wh.Close()
	model := source.Model{SQL: sy.Model.SQL, PrimaryKey: sy.Model.PrimaryKey}
	var rows []row
	err = wh.ScanRows(ctx, model, nil, func(key record.Key, data map[string]any) error {
		k, err := key.Object(sy.Model.PrimaryKey)
		if err != nil {
			return err
		}
		r := row{key: k}
		raw, err := json.Marshal(data)
		if err != nil {
			return err
		}
		if err := record.Decode(raw, &r.data); err != nil {
			return err
		}
		rows = append(rows, r)
		if len(rows) >= limit {
			return errEnough
		}
		return nil
	})
	if err != nil && !errors.Is(err, errEnough) {
		return nil, status.Errorf(codes.FailedPrecondition, "reading the model of sync %q: %v", sy.Name, err)
	}
	return rows, nil
}

// sample maps and transforms one row.
func sample(ctx context.Context, sync string, m *mapper.Mapper, js *transform.Transformation, r row) *adminv1.TransformationSample {
	out := &adminv1.TransformationSample{KeyJson: jsonText(r.key)}
	mapped, err := m.Map(r.data)
	if err != nil {
		out.InputJson, out.Error = jsonText(r.data), err.Error()
		return out
	}
	out.InputJson = jsonText(mapped)
	res := js.Run(ctx, []transform.Input{{Data: mapped, Meta: transform.Metadata{
		Sync: sync, Run: "test", Op: string(record.OpUpsert), Key: r.key,
	}}})[0]
	out.Logs = res.Logs
	if res.Err != nil {
		out.Error = "transformation: " + res.Err.Error()
		return out
	}
	for _, rec := range res.Records {
		out.OutputsJson = append(out.OutputsJson, jsonText(rec))
	}
	return out
}

func jsonText(v any) string {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("(not JSON: %v)", err)
	}
	return string(data)
}
