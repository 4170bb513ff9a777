package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/wagate/wagate/internal/openapicheck"
	"github.com/wagate/wagate/shared"
)

// chromium finds Debian's Chromium: WAGATE_CHROMIUM, else chromium on PATH. `make
// test` installs it (make chromium). Without it the test fails, in CI always;
// locally WAGATE_SKIP_BROWSER=1 turns the failure into a skip.
func chromium(t *testing.T) string {
	t.Helper()
	names := []string{"chromium", "chromium-browser"}
	if p := os.Getenv("WAGATE_CHROMIUM"); p != "" {
		names = []string{p}
	}
	for _, name := range names {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := fmt.Sprintf("Chromium is not installed (looked for %s): run `make chromium` (apt-get install -y chromium from Debian's packages) or set WAGATE_CHROMIUM to its path",
		strings.Join(names, ", "))
	if os.Getenv("WAGATE_SKIP_BROWSER") == "1" && os.Getenv("CI") == "" {
		t.Skip(msg + "; skipped because WAGATE_SKIP_BROWSER=1")
	}
	t.Fatal(msg)
	return ""
}

// outDir is where the browser tests write their screenshots: WAGATE_TEST_OUT, else
// e2e/testdata/out (ignored by git).
func outDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("WAGATE_TEST_OUT")
	if dir == "" {
		root, err := moduleRoot()
		if err != nil {
			t.Fatal(err)
		}
		dir = filepath.Join(root, "e2e", "testdata", "out")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// page is a headless Chromium tab and what it reported: the URLs it requested and
// the exceptions and console errors of its scripts.
type page struct {
	ctx      context.Context
	mu       sync.Mutex
	requests []string
	problems []string
}

func newPage(t *testing.T, chromiumPath string) *page {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.NoSandbox, // CI runs as root, where Chromium's sandbox cannot start
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1400, 1000),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	p := &page{ctx: ctx}
	err := chromedp.Listen(ctx, func(ev any) {
		p.mu.Lock()
		defer p.mu.Unlock()
		switch ev := ev.(type) {
		case *network.EventRequestWillBeSent:
			p.requests = append(p.requests, ev.Request.URL)
		case *runtime.EventExceptionThrown:
			p.problems = append(p.problems, "exception: "+ev.ExceptionDetails.Text+" "+exceptionText(ev.ExceptionDetails))
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError {
				var args []string
				for _, a := range ev.Args {
					args = append(args, string(a.Value)+a.Description)
				}
				p.problems = append(p.problems, "console.error: "+strings.Join(args, " "))
			}
		}
	})
	if err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	return p
}

func exceptionText(d *runtime.ExceptionDetails) string {
	if d.Exception != nil {
		return d.Exception.Description
	}
	return ""
}

// open navigates to url and waits until expr (JavaScript) is true.
func (p *page) open(t *testing.T, url, expr string, timeout time.Duration) {
	t.Helper()
	if err := chromedp.Do(p.ctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	p.wait(t, url, expr, timeout)
}

// openUntil is open, loading url again every 10 s until expr holds or timeout passes.
func (p *page) openUntil(t *testing.T, url, expr string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if err := chromedp.Do(p.ctx, chromedp.Navigate(url)); err != nil {
			t.Fatalf("open %s: %v", url, err)
		}
		_, err := chromedp.Run(p.ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(10*time.Second), chromedp.WithPollingInterval(100*time.Millisecond)))
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			p.wait(t, url, expr, time.Second) // fails, showing the page
			return
		}
	}
}

func (p *page) wait(t *testing.T, what, expr string, timeout time.Duration) {
	t.Helper()
	if _, err := chromedp.Run(p.ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(timeout), chromedp.WithPollingInterval(100*time.Millisecond))); err != nil {
		text, _ := chromedp.Run(p.ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
		t.Fatalf("%s: %s never held (%v); the page shows:\n%s", what, expr, err, head(text, 4000))
	}
}

// eval evaluates expr in the page.
func eval[T any](t *testing.T, p *page, expr string) T {
	t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// screenshot writes the whole page to dir/name.png.
func (p *page) screenshot(t *testing.T, dir, name string) {
	t.Helper()
	png, err := chromedp.Run(p.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(dir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot %s (%d KB)", path, len(png)/1024)
}

func (p *page) seen() (requests, problems []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.requests), slices.Clone(p.problems)
}

// TestBrowserDocsPageAndTemporalUI opens the dev stack's pages in headless Chromium:
// the docs page must render every operation of the API's document from the
// apiserver's own files, and the Temporal Web UI must list a bulk task under its
// task_id with its kind and progress.
func TestBrowserDocsPageAndTemporalUI(t *testing.T) {
	browser := chromium(t) // first, so that a missing browser fails (or skips) at once
	out := outDir(t)
	s := NewStack(t, StackOptions{WebUI: true, APIKey: "clave-del-navegador"})
	if s.Dev.UIURL() == "" {
		t.Fatal("the stack serves no Temporal Web UI")
	}

	t.Run("docs", func(t *testing.T) {
		p := newPage(t, browser)
		// Swagger UI draws one .opblock per operation once it has loaded the document.
		p.open(t, s.API+"/docs", `document.querySelectorAll(".opblock").length > 0`, time.Minute)
		rendered := eval[[]string](t, p, `[...document.querySelectorAll(".opblock")].map(o =>
			o.querySelector(".opblock-summary-method").textContent.trim() + " " +
			o.querySelector(".opblock-summary-path").getAttribute("data-path"))`)
		p.screenshot(t, out, "docs")

		doc := send(t, s, "GET", "/api/openapi.json", nil)
		c, err := openapicheck.New(doc.body)
		if err != nil {
			t.Fatal(err)
		}
		for _, op := range c.Operations() {
			if !slices.Contains(rendered, op) {
				t.Errorf("the docs page does not show %s", op)
			}
		}
		if len(rendered) != len(c.Operations()) {
			t.Errorf("the docs page shows %d operations, the document has %d:\n%v", len(rendered), len(c.Operations()), rendered)
		}
		title := eval[string](t, p, `document.querySelector(".info .title") ? document.querySelector(".info .title").textContent : ""`)
		if !strings.Contains(title, "wagate") {
			t.Errorf("the docs page's title is %q, want the document's", title)
		}

		// Open one operation: its contract example is shown.
		p.wait(t, "expand send-message", `(document.querySelector("#operations-Mensajes-sendMessage .opblock-summary-control") || {click(){}}).click() || true`, 5*time.Second)
		p.wait(t, "send-message example", `document.querySelector("#operations-Mensajes-sendMessage") &&
			document.querySelector("#operations-Mensajes-sendMessage").innerText.includes("Hola, este es un mensaje de prueba")`, 20*time.Second)
		p.screenshot(t, out, "docs-send-message")

		// Try it out: with the key given to Authorize, the page calls the apiserver it
		// came from (the document's server is "/") and shows the answer.
		click := func(what, sel string) {
			t.Helper()
			if err := chromedp.Do(p.ctx, chromedp.Click(chromedp.CSS(sel))); err != nil {
				t.Fatalf("click %s (%s): %v", what, sel, err)
			}
		}
		click("Authorize", ".auth-wrapper .authorize")
		if err := chromedp.Do(p.ctx, chromedp.SendKeys(chromedp.CSS(".modal-ux input[type=text], .modal-ux input[type=password]"), "clave-del-navegador")); err != nil {
			t.Fatalf("type the API key: %v", err)
		}
		click("the modal's Authorize", ".modal-ux .auth-btn-wrapper .authorize")
		click("close the modal", ".modal-ux .btn-done")
		op := `[id^="operations-"][id$="-listNumbers"]`
		p.wait(t, "the numbers operation", fmt.Sprintf(`!!document.querySelector(%q)`, op), 5*time.Second)
		click("open GET /api/numbers", op+" .opblock-summary-control")
		click("Try it out", op+" .try-out__btn")
		click("Execute", op+" .execute")
		// The live answer: the empty cache (the example shows Juan Pérez), fetched from
		// this apiserver with the key.
		p.wait(t, "the live answer of GET /api/numbers", fmt.Sprintf(`(() => {
			const t = document.querySelector(%q).innerText;
			return t.includes("Server response") && t.includes(%q) && t.includes("X-API-Key: clave-del-navegador") &&
				/"numbers": \[\]/.test(t); })()`, op, s.API+"/api/numbers"), 20*time.Second)
		p.screenshot(t, out, "docs-try-it-out")

		requests, problems := p.seen()
		for _, u := range requests {
			if !strings.HasPrefix(u, s.API+"/") && !strings.HasPrefix(u, "data:") {
				t.Errorf("the docs page requested %s, outside the apiserver", u)
			}
		}
		if !slices.Contains(requests, s.API+"/api/openapi.json") {
			t.Errorf("the docs page did not load /api/openapi.json; it requested %v", requests)
		}
		for _, pr := range problems {
			t.Errorf("the docs page reported %s", pr)
		}
		t.Logf("the docs page shows %d operations from %d requests to the apiserver", len(rendered), len(requests))
	})

	t.Run("temporal-ui", func(t *testing.T) {
		// The task is accepted while no worker runs, so the Web UI first shows it
		// running with the memo the apiserver starts it with, then finished.
		const n = 3
		s.StopWorker()
		id := queueBulk(t, s, n)
		p := newPage(t, browser)
		p.checkTask(t, s, out, id, "running", "RUNNING", fmt.Sprintf("0/%d (0%%)", n))

		s.StartWorker(t)
		if st := s.WaitTask(t, id, time.Minute); st["status"] != shared.StatusSuccess {
			t.Fatalf("task %s = %v", id, st)
		}
		p.checkTask(t, s, out, id, "completed", "COMPLETED", fmt.Sprintf("%d/%d (100%%)", n, n))
		_, problems := p.seen()
		for _, pr := range problems {
			t.Logf("the Web UI reported %s", pr)
		}
	})
}

// checkTask finds task id in the Web UI's workflow list with status, then opens it and
// finds its kind and progress in the memo the bulk workflow keeps. Screenshots of both
// pages are named after state.
func (p *page) checkTask(t *testing.T, s *Stack, out, id, state, status, progress string) {
	t.Helper()
	ns := s.Config.TemporalNamespace
	// The list is read once per load, and visibility may trail the workflow: reload
	// until the task shows with its status.
	list := fmt.Sprintf("%s/namespaces/%s/workflows", s.Dev.UIURL(), ns)
	rowJS := fmt.Sprintf(`(() => {
		const a = [...document.querySelectorAll("a")].find(a => a.textContent.includes(%q));
		let r = a; while (r && r.tagName !== "TR" && r.getAttribute("role") !== "row") r = r.parentElement;
		return r ? r.innerText : ""; })()`, id)
	p.openUntil(t, list, fmt.Sprintf(`%s.toUpperCase().includes(%q)`, rowJS, status), time.Minute)
	p.screenshot(t, out, "temporal-ui-workflows-"+state)
	if row := eval[string](t, p, rowJS); !strings.Contains(row, shared.BulkWorkflowName) {
		t.Errorf("the Web UI's row of %s does not show the workflow type %s:\n%s", id, shared.BulkWorkflowName, row)
	}

	desc, err := s.Temporal.DescribeWorkflowExecution(context.Background(), id, "")
	if err != nil {
		t.Fatal(err)
	}
	run := desc.GetWorkflowExecutionInfo().GetExecution().GetRunId()
	memoTab := `[...document.querySelectorAll("button, a, [role=tab]")].find(e => e.textContent.trim() === "Memo")`
	p.open(t, fmt.Sprintf("%s/namespaces/%s/workflows/%s/%s/history", s.Dev.UIURL(), ns, id, run), "!!"+memoTab, time.Minute)
	p.wait(t, "open the Memo tab", memoTab+".click() || true", 5*time.Second)
	p.wait(t, "the task's memo", fmt.Sprintf(`document.body.innerText.includes('"send-bulk"') && document.body.innerText.includes(%q)`, progress), 20*time.Second)
	p.screenshot(t, out, "temporal-ui-task-memo-"+state)
	text := eval[string](t, p, `document.body.innerText`)
	for _, field := range []string{shared.MemoKind, shared.MemoProgress, shared.MemoSent, shared.MemoFailed, shared.MemoTotal} {
		if !strings.Contains(text, `"`+field+`"`) {
			t.Errorf("the memo of %s (%s) in the Web UI has no %q", id, state, field)
		}
	}
}

// head is s cut to at most n bytes, for logs.
func head(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
