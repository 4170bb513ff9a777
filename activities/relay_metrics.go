package activities

import (
	"time"

	"github.com/wagate/wagate/internal/metrics"
)

// countRelay counts one chunk of a relay batch: the items at confirmed were confirmed
// by the consumer now (their delivery lag is observed), dropped of them were dropped.
func countRelay(items []relayItem, confirmed []int, dropped int) {
	now := time.Now()
	for _, i := range confirmed {
		metrics.Relayed(items[i].accepted, now)
	}
	if dropped > 0 {
		metrics.RelayDropped(dropped)
	}
}
