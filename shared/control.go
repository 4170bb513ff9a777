package shared

import (
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
)

// StatusRevoked is a task a client cancelled (Celery's word for it): no recipient that
// had not started was sent, the sends in flight finished and are counted.
const StatusRevoked = "REVOKED"

// WaitPausedByClient is the reason of a task a client paused with task-pause: it stays
// PAUSED, sending nothing, until task-resume.
const WaitPausedByClient = "paused_by_client"

// MaxSendAtAhead bounds send_at: a task scheduled further ahead is refused.
const MaxSendAtAhead = 35 * 24 * time.Hour

// ControlUpdate is the workflow update that cancels, pauses or resumes a BulkSend task.
// It answers the TaskState once the change has taken effect: for a cancel or a pause,
// once no send of the task is in flight any more.
const ControlUpdate = "control"

// Actions of ControlUpdate.
const (
	ActionCancel = "cancel"
	ActionPause  = "pause"
	ActionResume = "resume"
)

// ControlRequest is the argument of ControlUpdate.
type ControlRequest struct {
	Action string `json:"action"`
}

// Failure types a ControlUpdate is refused with, for the API's status code.
const (
	// ErrTypeTaskFinished refuses a control of a task that has finished (or was
	// cancelled): 409.
	ErrTypeTaskFinished = "TaskFinished"
	// ErrTypeBadAction refuses an unknown action: 400.
	ErrTypeBadAction = "BadAction"
)

// Activities of task control.
const (
	// SetTaskControlActivity writes what a task's running SendRange must do (stop for a
	// pause or a cancel, or nothing) where the activity polls it.
	SetTaskControlActivity = "SetTaskControl"
	// CountLedgerActivity counts the final outcomes of a range of a task's recipients.
	CountLedgerActivity = "CountLedger"
)

// TaskControlInput is the argument of SetTaskControlActivity; Action "" clears.
type TaskControlInput struct {
	TaskID string `json:"task_id"`
	Action string `json:"action"`
}

// CountLedgerInput asks for the outcomes of recipients [From, To) of a task.
type CountLedgerInput struct {
	TaskID string `json:"task_id"`
	From   int    `json:"from"`
	To     int    `json:"to"`
}

// MemoSendAt is the memo field of a scheduled task's send_at, for the Web UI.
const MemoSendAt = "send_at"

// Search attributes of BulkSend workflows, which GET /api/tasks filters and pages on.
// They must be registered on the namespace (the dev stack does; see README for a
// production cluster).
var (
	SearchKind      = temporal.NewSearchAttributeKeyKeyword("WagateKind")
	SearchStatus    = temporal.NewSearchAttributeKeyKeyword("WagateStatus")
	SearchCreatedAt = temporal.NewSearchAttributeKeyTime("WagateCreatedAt")
	SearchSendAt    = temporal.NewSearchAttributeKeyTime("WagateSendAt")
)

// SearchAttributes are the custom search attributes wagate needs, with their types.
func SearchAttributes() map[string]enumspb.IndexedValueType {
	return map[string]enumspb.IndexedValueType{
		SearchKind.GetName():      enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		SearchStatus.GetName():    enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		SearchCreatedAt.GetName(): enumspb.INDEXED_VALUE_TYPE_DATETIME,
		SearchSendAt.GetName():    enumspb.INDEXED_VALUE_TYPE_DATETIME,
	}
}
