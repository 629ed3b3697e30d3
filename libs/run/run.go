// Package run is the state of one execution of a sync, kept in the runs KV
// bucket and changed only by compare-and-swap on revision.
package run

import (
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/source"
)

// State is where a run is in the pipeline.
type State string

const (
	Pending    State = "pending"
	Diffing    State = "diffing"
	Extracting State = "extracting"
	Delivering State = "delivering"
	Committing State = "committing"
	Succeeded  State = "succeeded"
	Failed     State = "failed"
	Cancelled  State = "cancelled"
	// Paused: stages stop at their next batch boundary until resumed;
	// PausedFrom remembers the state to return to.
	Paused State = "paused"
	// AwaitingApproval: the diff tripped a safety stop (see config.Safety);
	// nothing is sent until `ebb runs approve` or a cancel.
	AwaitingApproval State = "awaiting_approval"
	// Cancelling and Failing: the run was cancelled or failed while its
	// records may be on their way to the destination. Every stage drops
	// its batches, and the run keeps its sync's active slot until no
	// delivery copy has a request of it in flight (see Drained): the next
	// run never delivers while an older one still writes. Then it ends as
	// Cancelled or Failed.
	Cancelling State = "cancelling"
	Failing    State = "failing"
)

// Terminal reports whether a run in state s is over.
func (s State) Terminal() bool { return s == Succeeded || s == Failed || s == Cancelled }

// Stopping reports whether a run in state s is draining towards its end:
// nothing of it may be sent any more.
func (s State) Stopping() bool { return s == Cancelling || s == Failing }

// Over reports whether a run in state s sends nothing more: it ended or is
// draining.
func (s State) Over() bool { return s.Terminal() || s.Stopping() }

// Planned counts the records a run's change set asks to send, by what the
// differ found, after the sync's mode has filtered it.
type Planned struct {
	Adds    int64 `json:"adds"`
	Changes int64 `json:"changes"`
	Deletes int64 `json:"deletes"`
}

// Total is the number of records the run must account for.
func (p Planned) Total() int64 { return p.Adds + p.Changes + p.Deletes }

// Outcome counts final results.
type Outcome struct {
	Delivered int64 `json:"delivered"`
	Failed    int64 `json:"failed"`
	Vanished  int64 `json:"vanished"`
	// Filtered counts records the sync's transformation dropped.
	Filtered int64 `json:"filtered,omitempty"`
}

// Run is one execution of a sync.
type Run struct {
	ID    string `json:"id"`
	Sync  string `json:"sync"`
	State State  `json:"state"`
	// PausedFrom is the state a paused run resumes in.
	PausedFrom State `json:"paused_from,omitempty"`
	// Resumes counts resumptions; it keeps their announcements distinct.
	Resumes int `json:"resumes,omitempty"`
	// Claim names the one worker that owns the run's current phase (a
	// differ diffing, an extractor extracting), until its lease runs out.
	// Any other worker handed the run meanwhile hands it back.
	Claim *Claim `json:"claim,omitempty"`
	// Claims counts the claims taken; each diff attempt names its objects
	// with it, so an attempt that lost its claim never touches the
	// winner's.
	Claims int `json:"claims,omitempty"`
	// StoppedAt is when a run was cancelled or failed while it could be
	// delivering: its drain (see Cancelling) is measured from it.
	StoppedAt time.Time `json:"stopped_at,omitzero"`
	// DeletesDone records that every delete of a mirror run that also
	// adds or changes records had its result before those were extracted:
	// a run's deletes reach the destination before its other records.
	DeletesDone bool   `json:"deletes_done,omitempty"`
	Trigger     string `json:"trigger"`
	// DryRun runs (ebb sync plan) go through every stage but delivery,
	// which records what it would send instead, and commit nothing.
	DryRun bool   `json:"dry_run,omitempty"`
	Error  string `json:"error,omitempty"`
	// SafetyStop says why the run waits for approval, and stays on an
	// approved run for the record.
	SafetyStop string    `json:"safety_stop,omitempty"`
	ApprovedAt time.Time `json:"approved_at,omitzero"`

	// ModelRows is the number of rows the model returned, and
	// PreviousRows the number in the snapshot it was diffed against.
	ModelRows    int64   `json:"model_rows"`
	PreviousRows int64   `json:"previous_rows"`
	Planned      Planned `json:"planned"`
	// Sent breaks the outcome down by what was planned.
	Adds    Outcome `json:"adds"`
	Changes Outcome `json:"changes"`
	Deletes Outcome `json:"deletes"`
	// Quarantined counts changes left out because their key is quarantined.
	Quarantined int64 `json:"quarantined,omitempty"`
	// Extracted counts records read from the warehouse and published.
	Extracted int64 `json:"extracted"`
	// Fanout counts the records a transformation added by fanning a record
	// out into several: their results are counted like any other, so
	// Final subtracts them. All the copies of a record travel in one
	// batch and have their results in one result batch, where the copies
	// after the first are marked Extra: reporting counts them with the
	// results, so the run never looks complete while some are on their way.
	Fanout int64 `json:"fanout,omitempty"`
	// Retries counts requests delivery retried (transient failures, 429s).
	Retries int64 `json:"retries,omitempty"`
	// Entered is when the run first entered each state: the durations of
	// its phases.
	Entered map[State]time.Time `json:"entered,omitempty"`

	// Spec is the sync as it was when the run started: every stage of the
	// run follows this copy, so editing a sync never changes a run halfway.
	Spec config.Sync `json:"spec"`
	// BatchSize is how many change-set entries each extracted batch covers.
	BatchSize int `json:"batch_size,omitempty"`
	// Engine is the diff engine the run used, "local" or "warehouse" (the
	// sync's engine: auto resolves to one of them when the run diffs).
	Engine string `json:"engine,omitempty"`
	// Columns are the model's columns and types as the run diffed them:
	// its commit records them with the snapshot, for the next run to
	// compare (snapshot.TypeChanges).
	Columns []source.Column `json:"columns,omitempty"`
	// TypeChanges says which columns changed type since the committed
	// snapshot, and that the run therefore sends every row again.
	TypeChanges []string `json:"type_changes,omitempty"`
	// Snapshot objects: the model as diffed (the candidate) and the change set.
	Candidate string `json:"candidate,omitempty"`
	ChangeSet string `json:"change_set,omitempty"`
	// DiffAttempt is the claim number of the diff whose objects the run
	// uses (see snapshot.AttemptName).
	DiffAttempt int `json:"diff_attempt,omitempty"`
	// QuarantineSet names the object of the keys the diff left out as
	// quarantined: the commit keeps their old snapshot entries.
	QuarantineSet string `json:"quarantine_set,omitempty"`
	// Partitions is the destination's partition count when the run started;
	// with the batch sequence it numbers result batches for DoneBatches.
	Partitions int `json:"partitions"`
	// Batches is how many record batches the extractor published.
	Batches int `json:"batches"`
	// DoneBatches is a bitmap of the result batches already counted, so a
	// result redelivered after a crash is not counted twice.
	DoneBatches []byte `json:"done_batches,omitempty"`

	CreatedAt  time.Time `json:"created_at"`
	StartedAt  time.Time `json:"started_at,omitzero"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
}

// NewID returns a new run id: a ULID, so ids sort by creation time.
func NewID() string { return ulid.Make().String() }

// enter records when the run first entered state s.
func (r *Run) enter(s State) {
	if _, ok := r.Entered[s]; ok {
		return
	}
	if r.Entered == nil {
		r.Entered = map[State]time.Time{}
	}
	r.Entered[s] = time.Now().UTC()
}

// Durations returns how long the run spent in each pipeline phase it went
// through, in order; a phase still running counts until now.
func (r *Run) Durations() []PhaseDuration {
	order := []State{Pending, Diffing, Extracting, Delivering, Committing}
	var out []PhaseDuration
	for i, s := range order {
		start, ok := r.Entered[s]
		if !ok {
			continue
		}
		end := time.Now().UTC()
		if !r.FinishedAt.IsZero() {
			end = r.FinishedAt
		}
		for _, next := range order[i+1:] {
			if t, ok := r.Entered[next]; ok {
				end = t
				break
			}
		}
		out = append(out, PhaseDuration{Phase: s, Duration: end.Sub(start)})
	}
	return out
}

// PhaseDuration is the time a run spent in one phase, pauses included.
type PhaseDuration struct {
	Phase    State
	Duration time.Duration
}

// Claim is a worker's hold on a run's phase.
type Claim struct {
	Owner string    `json:"owner"`
	Phase State     `json:"phase"`
	Until time.Time `json:"until"`
}

// heldByOther reports whether the claim is live and someone else's.
func (c *Claim) heldByOther(owner string, now time.Time) bool {
	return c != nil && c.Owner != owner && now.Before(c.Until)
}

// Phase is the pipeline state of the run, looking through a pause.
func (r *Run) Phase() State {
	if r.State == Paused {
		return r.PausedFrom
	}
	return r.State
}

// Final is the number of planned records with a final result: a record a
// transformation fanned out into n counts once, when all n have theirs.
func (r *Run) Final() int64 {
	n := -r.Fanout
	for _, o := range []Outcome{r.Adds, r.Changes, r.Deletes} {
		n += o.Delivered + o.Failed + o.Vanished + o.Filtered
	}
	return n
}

// Filtered counts records the transformation dropped.
func (r *Run) Filtered() int64 { return r.Adds.Filtered + r.Changes.Filtered + r.Deletes.Filtered }

// FailedRecords counts records that failed for this run.
func (r *Run) FailedRecords() int64 { return r.Adds.Failed + r.Changes.Failed + r.Deletes.Failed }

// MarkBatch records that result batch i was counted. It returns false if it
// already was.
func (r *Run) MarkBatch(i int) bool { return mark(&r.DoneBatches, i) }

// mark sets bit i of a bitmap and reports whether it was clear.
func mark(bits *[]byte, i int) bool {
	for len(*bits) <= i/8 {
		*bits = append(*bits, 0)
	}
	bit := byte(1) << (i % 8)
	if (*bits)[i/8]&bit != 0 {
		return false
	}
	(*bits)[i/8] |= bit
	return true
}

// Summary is what people read about a run: its state, what it sent, and
// what failed.
func (r *Run) Summary() string {
	s := string(r.State)
	s += " · adds " + itoa(r.Adds.Delivered) + "/" + itoa(r.Planned.Adds)
	s += " · changes " + itoa(r.Changes.Delivered) + "/" + itoa(r.Planned.Changes)
	s += " · deletes " + itoa(r.Deletes.Delivered) + "/" + itoa(r.Planned.Deletes)
	s += " · failed " + itoa(r.FailedRecords())
	if n := r.Filtered(); n > 0 {
		s += " · filtered " + itoa(n)
	}
	if r.Error != "" {
		s += " · " + r.Error
	}
	return s
}

func itoa(n int64) string {
	var b [20]byte
	i := len(b)
	neg := n < 0
	if neg {
		n = -n
	}
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}
