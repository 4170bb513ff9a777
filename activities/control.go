package activities

import (
	"context"
	"time"

	"github.com/wagate/wagate/redisstore"
	"github.com/wagate/wagate/shared"
)

// controlPoll is how often a SendRange of a controllable task reads its control key: a
// pause or a cancel stops new claims within about this long. A variable for tests.
var controlPoll = 200 * time.Millisecond

// SetTaskControl writes a task's control key, which its running SendRange polls.
func (a *Activities) SetTaskControl(ctx context.Context, in shared.TaskControlInput) error {
	return a.Store.SetTaskControl(ctx, in.TaskID, in.Action)
}

// CountLedger counts the final outcomes among recipients [From, To) of a task, with the
// first failures: what a cancelled task sent above its frontier.
func (a *Activities) CountLedger(ctx context.Context, in shared.CountLedgerInput) (shared.ChunkResult, error) {
	var res shared.ChunkResult
	const page = 1000
	for off := in.From; off < in.To; off += page {
		n := min(page, in.To-off)
		entries, err := a.Store.Ledger(ctx, in.TaskID, off, n)
		if err != nil {
			return res, err
		}
		for i, e := range entries {
			switch e.State {
			case redisstore.LedgerSent:
				res.Sent++
			case redisstore.LedgerFailed:
				res.Failed++
				if len(res.Errors) < shared.MaxTaskErrors {
					re := shared.RecipientError{Index: off + i, Error: e.Error, Code: e.Code}
					if m, err := a.Store.LoadMessages(ctx, in.TaskID, off+i, 1); err == nil && len(m) == 1 {
						re.Phone = m[0].To
					}
					res.Errors = append(res.Errors, re)
				}
			}
		}
	}
	return res, nil
}

// watchControl closes the returned channel once the task's control key asks its send
// activity to stop (a pause or a cancel), polling until ctx ends. Read errors are
// retried at the next poll: a pause must not fail the sends.
func (a *Activities) watchControl(ctx context.Context, taskID string) <-chan struct{} {
	halt := make(chan struct{})
	go func() {
		t := time.NewTicker(controlPoll)
		defer t.Stop()
		for {
			if v, err := a.Store.TaskControl(ctx, taskID); err == nil && v != "" {
				close(halt)
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return halt
}
