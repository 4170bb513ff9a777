package shared

// Temporal names shared by the API server, the worker and the tests.
const (
	// TaskQueue carries every wagate workflow and activity.
	TaskQueue = "wagate"

	// BulkWorkflowName is the workflow behind every bulk, broadcast and queued single send.
	BulkWorkflowName = "BulkSend"
	// StatusQuery answers a TaskState from a BulkSend workflow.
	StatusQuery = "status"

	// RelayWorkflowName is the long-running inbound relay workflow.
	RelayWorkflowName = "InboundRelay"
	// RelayWorkflowID is the one relay workflow per namespace.
	RelayWorkflowID = "wagate-inbound-relay"
	// InboundSignal carries one InboundEvent into the relay workflow.
	InboundSignal = "inbound"
	// PendingQuery answers the relay's QueueInfo.
	PendingQuery = "pending"
	// ClearUpdate drops every queued event and answers how many were dropped.
	ClearUpdate = "clear"

	// MemoKind, MemoTotal, MemoSent, MemoFailed and MemoProgress are the memo fields that
	// the Temporal Web UI shows for each task.
	MemoKind     = "kind"
	MemoTotal    = "total"
	MemoSent     = "sent"
	MemoFailed   = "failed"
	MemoProgress = "progress"
	// MemoWaiting says, while it is not empty, what the task waits on (the Graph API
	// circuit of its number is open) and since when.
	MemoWaiting = "waiting"
	// MemoDelivered and MemoRead are the task's delivery counts (status webhooks), as of
	// its last send activity.
	MemoDelivered = "delivered"
	MemoRead      = "read"
)

// Activity names of the bulk workflow; the activities are methods of the same names on
// activities.Activities.
const (
	UploadMediaActivity = "UploadMedia"
	SendChunkActivity   = "SendChunk" // workflows before continuous dispatch
	SendRangeActivity   = "SendRange"
	FinishTaskActivity  = "FinishTask"
)
