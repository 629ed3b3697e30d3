package run

import "context"

// Hold claims a sync's active slot for work that is not a run, such as
// `ebb sync reset` dropping the committed snapshot: no run of the sync
// starts while it is held, so none diffs against a snapshot being dropped
// or commits over its removal. It fails with ErrActive when the sync has
// an active run. release frees the slot.
//
// The slot names an id that no run has: if the holder dies, the scheduler
// frees it after its stale time, as it frees the slot of a run whose
// record a crash never wrote (see ReleaseOrphan).
func (s *Store) Hold(ctx context.Context, sync string) (release func(context.Context) error, err error) {
	id := NewID()
	if err := s.claimSlot(ctx, sync, id); err != nil {
		return nil, err
	}
	return func(ctx context.Context) error { return s.release(ctx, sync, id) }, nil
}
