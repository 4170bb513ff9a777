package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/wagate/wagate/shared"
)

// templateName is the campaign's template: the sandbox's hello_world in es, two
// positional parameters, as in the contract's send-template.
const templateName = "hello_world"

// compareTemplate measures a template campaign of n recipients at W=w: a plain pool
// sending the same template messages straight to the sandbox, then
// POST /api/send-bulk-template (checked against the sandbox's template registry first)
// through the whole stack.
func (b *bench) compareTemplate(ctx context.Context, w, n int) (row, error) {
	r := row{workers: w, n: n}
	if err := b.startStack(ctx, w); err != nil {
		return r, err
	}
	msg := func(tag string) func(i int) shared.Message {
		return func(i int) shared.Message {
			m, _ := shared.BulkTemplateMessage("", phone(i), templateName, "es",
				shared.TemplateParts{Params: shared.TemplateParams{Positional: []string{fmt.Sprintf("%s %d", tag, i), "Empresa XYZ"}}})
			return m
		}
	}
	campaign := func(tag string, n int) ([]byte, int) {
		recipients := make([]map[string]any, n)
		for i := range recipients {
			recipients[i] = map[string]any{"phone": phone(i), "parameters": []string{fmt.Sprintf("%s %d", tag, i), "Empresa XYZ"}}
		}
		body, _ := json.Marshal(map[string]any{"template_name": templateName, "recipients": recipients})
		return body, n
	}
	if _, err := b.poolOf(ctx, w, min(n, 2*w), msg("warm")); err != nil {
		return r, err
	}
	warm, k := campaign("warm", min(n, 2*w))
	if _, _, err := b.postAndWait(ctx, "/api/send-bulk-template", warm, k); err != nil {
		return r, err
	}
	err := measurePairs(&r, func(k int) (time.Duration, error) {
		return b.poolOf(ctx, w, n, msg(fmt.Sprintf("tpool.%d", k)))
	}, func(k int) (time.Duration, error) {
		body, _ := campaign(fmt.Sprintf("tstack.%d", k), n)
		d, _, err := b.postAndWait(ctx, "/api/send-bulk-template", body, n)
		return d, err
	})
	r.workerRSS, r.apiRS = b.worker.peakRSS(), b.api.peakRSS()
	return r, err
}

// spliceTemplate puts the template campaign's section after the happy-path table.
func spliceTemplate(report string, r row) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "\n## Template campaign (W=%d)\n\n", r.workers)
	fmt.Fprintf(&sb, "(a) plain pool: W goroutines sending the template messages straight to the sandbox. (b) wagate:\n")
	fmt.Fprintf(&sb, "`POST /api/send-bulk-template` with per-recipient parameters, the template checked against the sandbox's\n")
	fmt.Fprintf(&sb, "registry (`WHATSAPP_BUSINESS_ACCOUNT_ID`) before the task starts, every send checked by the sandbox against it.\n\n")
	fmt.Fprintf(&sb, "| W | N | (a) pool sends/s | (b) wagate sends/s | ratio (b)/(a) | worker peak RSS | apiserver peak RSS |\n")
	fmt.Fprintf(&sb, "|---|---|---|---|---|---|---|\n")
	fmt.Fprintf(&sb, "| %d | %d | %.1f | %.1f | **%.3f** | %d MiB | %d MiB |\n", r.workers, r.n, r.poolRate, r.stack, r.ratio(), r.workerRSS/1024, r.apiRS/1024)
	sb.WriteString(pairsText([]row{r}))
	section := sb.String()
	if i := strings.Index(report, "\n## Scale"); i >= 0 {
		return report[:i] + section + report[i:]
	}
	return strings.TrimRight(report, "\n") + "\n" + section
}
