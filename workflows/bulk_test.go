package workflows

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/wagate/wagate/shared"
)

// Activity stand-ins with the real names and signatures; each test scripts them.
func uploadMedia(context.Context, shared.UploadMediaInput) (shared.MediaRef, error) {
	return shared.MediaRef{}, nil
}
func sendChunk(context.Context, shared.ChunkInput) (shared.ChunkResult, error) {
	return shared.ChunkResult{}, nil
}
func sendRange(context.Context, shared.RangeInput) (shared.RangeResult, error) {
	return shared.RangeResult{}, nil
}
func finishTask(context.Context, shared.TaskState) error { return nil }

func newEnv(t *testing.T) *testsuite.TestWorkflowEnvironment {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(BulkSend, workflow.RegisterOptions{Name: shared.BulkWorkflowName})
	env.RegisterActivityWithOptions(uploadMedia, activity.RegisterOptions{Name: shared.UploadMediaActivity})
	env.RegisterActivityWithOptions(sendChunk, activity.RegisterOptions{Name: shared.SendChunkActivity})
	env.RegisterActivityWithOptions(sendRange, activity.RegisterOptions{Name: shared.SendRangeActivity})
	env.RegisterActivityWithOptions(finishTask, activity.RegisterOptions{Name: shared.FinishTaskActivity})
	return env
}

// newChunkEnv runs the workflow as a run recorded before continuous dispatch would
// replay: chunk by chunk with SendChunk.
func newChunkEnv(t *testing.T) *testsuite.TestWorkflowEnvironment {
	env := newEnv(t)
	env.OnGetVersion(continuousSendChange, workflow.DefaultVersion, 1).Return(workflow.DefaultVersion)
	// Such a run predates task control too.
	env.OnGetVersion(taskControlChange, workflow.DefaultVersion, 1).Return(workflow.DefaultVersion)
	return env
}

func input(total, workers int, media ...shared.MediaRef) shared.BulkInput {
	return shared.BulkInput{TaskID: "task-1", Kind: "send-bulk", Total: total, MaxWorkers: workers,
		Media: media, CreatedAt: time.Date(2025, 1, 16, 10, 30, 0, 0, time.UTC)}
}

// allSent answers a chunk as fully sent, except indexes in fail.
func allSent(fail map[int]bool) func(context.Context, shared.ChunkInput) (shared.ChunkResult, error) {
	return func(_ context.Context, in shared.ChunkInput) (shared.ChunkResult, error) {
		var r shared.ChunkResult
		for i := in.Offset; i < in.Offset+in.Count; i++ {
			if fail[i] {
				r.Failed++
				r.Errors = append(r.Errors, shared.RecipientError{Index: i, Phone: "573000000000", Error: "(#131026) undeliverable", Code: 131026})
			} else {
				r.Sent++
			}
		}
		return r, nil
	}
}

func TestBulkSendCoversEveryRecipientOnceInOrder(t *testing.T) {
	env := newChunkEnv(t)
	const total, workers = 1234, 10
	var chunks []shared.ChunkInput
	env.OnActivity(shared.SendChunkActivity, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, in shared.ChunkInput) (shared.ChunkResult, error) {
			chunks = append(chunks, in)
			return allSent(map[int]bool{7: true, 1000: true})(ctx, in)
		})
	var finished shared.TaskState
	env.OnActivity(shared.FinishTaskActivity, mock.Anything, mock.Anything).Return(
		func(_ context.Context, st shared.TaskState) error { finished = st; return nil }).Once()

	env.ExecuteWorkflow(shared.BulkWorkflowName, input(total, workers))
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("workflow error: %v", err)
	}
	next := 0
	for _, c := range chunks {
		if c.Offset != next {
			t.Fatalf("chunk starts at %d, want %d", c.Offset, next)
		}
		if c.MaxWorkers != workers {
			t.Errorf("chunk MaxWorkers = %d, want %d", c.MaxWorkers, workers)
		}
		if c.Count > shared.ChunkSize(workers) {
			t.Errorf("chunk of %d recipients, want at most %d", c.Count, shared.ChunkSize(workers))
		}
		next += c.Count
	}
	if next != total {
		t.Fatalf("chunks cover %d recipients, want %d", next, total)
	}
	var res shared.TaskResult
	if err := env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	if res.Sent != total-2 || res.Failed != 2 || res.Total != total || len(res.Errors) != 2 {
		t.Errorf("result = %+v, want sent %d, failed 2, total %d, 2 errors", res, total-2, total)
	}
	if finished.Status != shared.StatusSuccess || finished.CompletedAt == nil || finished.Result.Sent != total-2 {
		t.Errorf("finished state = %+v, want SUCCESS with completed_at and the counts", finished)
	}
}

func TestBulkSendUploadsEachMediaOnceAndPassesIDs(t *testing.T) {
	env := newChunkEnv(t)
	media := []shared.MediaRef{
		{Type: "image", Link: "http://127.0.0.1/a.jpg"},
		{Type: "document", Link: "http://127.0.0.1/b.pdf"},
	}
	uploads := map[string]int{}
	env.OnActivity(shared.UploadMediaActivity, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in shared.UploadMediaInput) (shared.MediaRef, error) {
			uploads[in.Media.Link]++
			out := in.Media
			out.MediaID = "id-" + in.Media.Type
			return out, nil
		})
	env.OnActivity(shared.SendChunkActivity, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, in shared.ChunkInput) (shared.ChunkResult, error) {
			if len(in.Media) != 2 || in.Media[0].MediaID != "id-image" || in.Media[1].MediaID != "id-document" {
				return shared.ChunkResult{}, temporal.NewNonRetryableApplicationError("media ids missing", "Test", nil)
			}
			return allSent(nil)(ctx, in)
		})
	env.OnActivity(shared.FinishTaskActivity, mock.Anything, mock.Anything).Return(nil)

	env.ExecuteWorkflow(shared.BulkWorkflowName, input(3000, 10, media...))
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("workflow error: %v", err)
	}
	for _, m := range media {
		if uploads[m.Link] != 1 {
			t.Errorf("%s uploaded %d times, want once", m.Link, uploads[m.Link])
		}
	}
}

func TestBulkSendFallsBackToLinkWhenUploadFails(t *testing.T) {
	env := newChunkEnv(t)
	env.OnActivity(shared.UploadMediaActivity, mock.Anything, mock.Anything).Return(
		shared.MediaRef{}, temporal.NewNonRetryableApplicationError("404 from media host", "MediaRejected", nil))
	var sawLinkOnly bool
	env.OnActivity(shared.SendChunkActivity, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, in shared.ChunkInput) (shared.ChunkResult, error) {
			sawLinkOnly = len(in.Media) == 1 && in.Media[0].MediaID == "" && in.Media[0].Link != ""
			return allSent(nil)(ctx, in)
		})
	env.OnActivity(shared.FinishTaskActivity, mock.Anything, mock.Anything).Return(nil)

	env.ExecuteWorkflow(shared.BulkWorkflowName, input(5, 10, shared.MediaRef{Type: "image", Link: "http://127.0.0.1/x.jpg"}))
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("workflow error: %v", err)
	}
	if !sawLinkOnly {
		t.Error("chunk did not get the media by link after the upload failed")
	}
}

func TestBulkSendContinuesAsNewCarryingCounters(t *testing.T) {
	env := newChunkEnv(t)
	const workers = 10
	total := (maxChunksPerRun + 3) * shared.ChunkSize(workers)
	env.OnActivity(shared.SendChunkActivity, mock.Anything, mock.Anything).Return(allSent(map[int]bool{0: true}))
	env.OnActivity(shared.FinishTaskActivity, mock.Anything, mock.Anything).Return(nil)

	env.ExecuteWorkflow(shared.BulkWorkflowName, input(total, workers))
	err := env.GetWorkflowError()
	var can *workflow.ContinueAsNewError
	if !errors.As(err, &can) {
		t.Fatalf("workflow error = %v, want continue-as-new", err)
	}
	var next shared.BulkInput
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
		t.Fatalf("decode continue-as-new input: %v", err)
	}
	wantCursor := maxChunksPerRun * shared.ChunkSize(workers)
	if next.Cursor != wantCursor || next.Sent+next.Failed != wantCursor || next.Failed != 1 || len(next.Errors) != 1 {
		t.Errorf("carried state: cursor %d sent %d failed %d errors %d, want cursor %d, 1 failure",
			next.Cursor, next.Sent, next.Failed, len(next.Errors), wantCursor)
	}
	if next.TaskID != "task-1" || !next.CreatedAt.Equal(input(1, 1).CreatedAt) {
		t.Errorf("carried identity = %q %v, want task-1 and the original created_at", next.TaskID, next.CreatedAt)
	}

	// The next run picks up from the cursor and finishes with the carried counts.
	env2 := newChunkEnv(t)
	var chunks int
	env2.OnActivity(shared.SendChunkActivity, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, in shared.ChunkInput) (shared.ChunkResult, error) {
			chunks++
			if in.Offset < wantCursor {
				return shared.ChunkResult{}, temporal.NewNonRetryableApplicationError("resent a finished chunk", "Test", nil)
			}
			return allSent(nil)(ctx, in)
		})
	env2.OnActivity(shared.FinishTaskActivity, mock.Anything, mock.Anything).Return(nil)
	env2.ExecuteWorkflow(shared.BulkWorkflowName, next)
	if err := env2.GetWorkflowError(); err != nil {
		t.Fatalf("second run: %v", err)
	}
	var res shared.TaskResult
	_ = env2.GetWorkflowResult(&res)
	if chunks != 3 || res.Sent != total-1 || res.Failed != 1 {
		t.Errorf("second run: %d chunks, result %+v; want 3 chunks, sent %d, failed 1", chunks, res, total-1)
	}
}

func TestBulkSendStatusQueryMovesWhileRunning(t *testing.T) {
	env := newChunkEnv(t)
	const workers = 10
	total := 3 * shared.ChunkSize(workers)
	env.OnActivity(shared.SendChunkActivity, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, in shared.ChunkInput) (shared.ChunkResult, error) {
			return allSent(nil)(ctx, in)
		}).After(time.Minute)
	env.OnActivity(shared.FinishTaskActivity, mock.Anything, mock.Anything).Return(nil)

	var seen []shared.TaskState
	for _, at := range []time.Duration{30 * time.Second, 90 * time.Second, 150 * time.Second} {
		env.RegisterDelayedCallback(func() {
			v, err := env.QueryWorkflow(shared.StatusQuery)
			if err != nil {
				t.Errorf("query: %v", err)
				return
			}
			var st shared.TaskState
			if err := v.Get(&st); err != nil {
				t.Errorf("decode query: %v", err)
			}
			seen = append(seen, st)
		}, at)
	}
	env.ExecuteWorkflow(shared.BulkWorkflowName, input(total, workers))
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 3 {
		t.Fatalf("got %d query answers, want 3", len(seen))
	}
	if seen[0].Status != shared.StatusPending || seen[0].Result.Sent != 0 {
		t.Errorf("before the first chunk: %+v, want PENDING with 0 sent", seen[0])
	}
	for i, want := range []int{shared.ChunkSize(workers), 2 * shared.ChunkSize(workers)} {
		st := seen[i+1]
		if st.Status != shared.StatusStarted || st.Result.Sent != want || st.Result.Total != total || st.CompletedAt != nil {
			t.Errorf("query %d = %+v, want STARTED with %d sent of %d", i+1, st, want, total)
		}
	}
}

func TestBulkSendRejectsBadInput(t *testing.T) {
	env := newChunkEnv(t)
	env.ExecuteWorkflow(shared.BulkWorkflowName, shared.BulkInput{TaskID: "", Total: 1, MaxWorkers: 1})
	var appErr *temporal.ApplicationError
	if err := env.GetWorkflowError(); !errors.As(err, &appErr) || appErr.Type() != "InvalidInput" {
		t.Fatalf("workflow error = %v, want InvalidInput", err)
	}
}
