package workflows

import (
	"context"
	"testing"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/workflow"

	"github.com/wagate/wagate/shared"
)

// The memo carries the delivery counts each SendRange read from Redis (version 1 of
// delivery-memo); a run replaying from before that version writes none.
func TestBulkMemoCarriesDeliveryCounts(t *testing.T) {
	for _, tt := range []struct {
		name    string
		version workflow.Version
		want    bool
	}{{"delivery-memo", 1, true}, {"before delivery-memo", workflow.DefaultVersion, false}} {
		t.Run(tt.name, func(t *testing.T) {
			env := newEnv(t)
			env.OnGetVersion(deliveryMemoChange, workflow.DefaultVersion, 1).Return(tt.version)
			calls := 0
			env.OnActivity(shared.SendRangeActivity, mock.Anything, mock.Anything).Return(
				func(_ context.Context, in shared.RangeInput) (shared.RangeResult, error) {
					calls++
					end := min(in.Offset+3, in.End)
					return shared.RangeResult{Frontier: end, Sent: end - in.Offset, Delivered: 2 * calls, Read: calls}, nil
				})
			var memos []map[string]any
			env.OnUpsertMemo(mock.Anything).Run(func(args mock.Arguments) {
				memos = append(memos, args.Get(0).(map[string]any))
			}).Return(nil)
			env.ExecuteWorkflow(BulkSend, input(6, 3))
			if err := env.GetWorkflowError(); err != nil {
				t.Fatal(err)
			}
			if len(memos) != 2 {
				t.Fatalf("%d memo upserts, want 2", len(memos))
			}
			last := memos[1]
			_, has := last[shared.MemoDelivered]
			if has != tt.want {
				t.Fatalf("memo %v: delivered present %v, want %v", last, has, tt.want)
			}
			if tt.want && (last[shared.MemoDelivered] != 4 || last[shared.MemoRead] != 2) {
				t.Errorf("memo %v, want delivered 4 read 2 from the last SendRange", last)
			}
		})
	}
}
