// Package worker builds the Temporal worker that runs wagate's workflows and activities.
package worker

import (
	"context"
	"fmt"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/wagate/wagate/activities"
	"github.com/wagate/wagate/shared"
	"github.com/wagate/wagate/workflows"
)

// New returns a worker on shared.TaskQueue with every workflow and activity registered.
// It is not started.
func New(c client.Client, acts *activities.Activities) sdkworker.Worker {
	w := sdkworker.New(c, shared.TaskQueue, sdkworker.Options{
		WorkerStopTimeout: 30e9,
	})
	Register(w, acts)
	return w
}

// Register registers wagate's workflows and activities on any registry (a worker, a
// replayer or a test environment).
func Register(r interface {
	RegisterWorkflowWithOptions(any, workflow.RegisterOptions)
	RegisterActivityWithOptions(any, activity.RegisterOptions)
}, acts *activities.Activities) {
	r.RegisterWorkflowWithOptions(workflows.BulkSend, workflow.RegisterOptions{Name: shared.BulkWorkflowName})
	r.RegisterWorkflowWithOptions(workflows.InboundRelay, workflow.RegisterOptions{Name: shared.RelayWorkflowName})
	r.RegisterActivityWithOptions(acts, activity.RegisterOptions{})
}

// EnsureRelay starts the inbound relay workflow unless it already runs, so the queue
// endpoints report a running processor before the first webhook arrives.
func EnsureRelay(ctx context.Context, c client.Client) error {
	_, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                       shared.RelayWorkflowID,
		TaskQueue:                shared.TaskQueue,
		WorkflowIDConflictPolicy: enums.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
	}, shared.RelayWorkflowName, shared.RelayState{})
	if err != nil {
		return fmt.Errorf("start the inbound relay workflow: %w", err)
	}
	return nil
}
