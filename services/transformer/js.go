package transformer

import (
	"fmt"
	"sync"

	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/transform"
)

// A transformation that fails every record of the first probeBatches
// batches, or of the first probeRecords records, stops its run.
const (
	probeBatches = 3
	probeRecords = 1000
)

// compiled returns the transformation of a version, compiling it once.
func (s *service) compiled(t *config.Transformation) (*transform.Transformation, error) {
	version := t.Version
	if version == "" {
		version = transform.Version(t.Code)
	}
	key := fmt.Sprintf("%s/%d/%d", version, t.TimeoutMS, t.MaxOutputBytes)
	s.mu.Lock()
	js, ok := s.code[key]
	s.mu.Unlock()
	if ok {
		return js, nil
	}
	js, err := transform.New(t.Name(), t.Code, t.Options())
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if len(s.code) > 64 {
		s.code = map[string]*transform.Transformation{}
	}
	s.code[key] = js
	s.mu.Unlock()
	return js, nil
}

// probe watches the start of a run: while every record the transformation
// was given has failed, it counts them, and past the thresholds it returns
// the verdict that stops the run. One success ends the watch.
type probe struct {
	mu      sync.Mutex
	healthy bool
	batches int
	records int
}

func (p *probe) observe(records, failed int, firstErr string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.healthy {
		return ""
	}
	if failed < records {
		p.healthy = true
		return ""
	}
	p.batches++
	p.records += records
	if p.batches < probeBatches && p.records < probeRecords {
		return ""
	}
	return fmt.Sprintf("the transformation failed all %d records of the first %d batches; first error: %s",
		p.records, p.batches, firstErr)
}

// codeError is a transformation that cannot be loaded (its top level
// throws, or it defines no function): every batch would fail, so the run
// stops.
type codeError struct{ err error }

func (e *codeError) Error() string { return e.err.Error() }
func (e *codeError) Unwrap() error { return e.err }
