package contract

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCopyMatchesTheSeed keeps the embedded copy identical to the seed contract, which
// sits in shared/seed beside the repository's folder (here and in CI).
func TestCopyMatchesTheSeed(t *testing.T) {
	seed := os.Getenv("WAGATE_CONTRACT")
	if seed == "" {
		root, err := filepath.Abs("../..")
		if err != nil {
			t.Fatal(err)
		}
		seed = filepath.Join(filepath.Dir(root), "shared", "seed", "api-spec.md")
	}
	want, err := os.ReadFile(seed)
	if os.IsNotExist(err) {
		t.Skipf("no seed contract at %s (set WAGATE_CONTRACT to its path): the embedded copy is not compared", seed)
	}
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(Spec, want) {
		t.Fatalf("internal/contract/api-spec.md differs from %s: copy the seed over it", seed)
	}
}

func TestExamplesCoverEveryBlock(t *testing.T) {
	exs, err := Examples()
	if err != nil {
		t.Fatal(err)
	}
	// Every fenced block after the introduction is an example, and every curl is one.
	blocks := strings.Count(string(Spec), "\n```") / 2
	if len(exs) != blocks {
		t.Errorf("%d examples from %d code blocks", len(exs), blocks)
	}
	curls, kinds := 0, map[Kind]int{}
	for _, e := range exs {
		kinds[e.Kind]++
		if e.Target != "" {
			curls++
			if !strings.HasPrefix(e.Target, e.Path[:strings.IndexAny(e.Path+"{", "{")]) {
				t.Errorf("%s: curl target %s outside its path", e.Name(), e.Target)
			}
		}
		if e.Method == "" || !strings.HasPrefix(e.Path, "/") {
			t.Errorf("%s: no operation", e.Name())
		}
	}
	if want := strings.Count(string(Spec), "curl -X"); curls != want {
		t.Errorf("%d curls parsed, the contract has %d", curls, want)
	}
	t.Logf("%d examples: %d requests (%d curls), %d responses, %d fragments",
		len(exs), kinds[Request], curls, kinds[Response], kinds[Fragment])

	// The operations whose examples the contract shows in a shape worth pinning here.
	want := map[string]string{
		"§8. Estado de Tarea GET /api/task-status/{task_id} [Curl]": "/api/task-status/12345678-1234-1234-1234-123456789abc",
		"§21. Webhook de WhatsApp GET /webhook [Verificación GET]":  "/webhook?hub.mode=subscribe&hub.verify_token=hola&hub.challenge=123456",
	}
	for _, e := range exs {
		if target, ok := want[e.Name()]; ok {
			if e.Target != target {
				t.Errorf("%s: target %q, want %q", e.Name(), e.Target, target)
			}
			delete(want, e.Name())
		}
		if e.Section == "21. Webhook de WhatsApp" && e.Kind == Response && (e.Method != "GET" || string(e.Body) != "123456" || e.JSON) {
			t.Errorf("the challenge answer is %s %s %q (JSON %v), want GET /webhook's text 123456", e.Method, e.Path, e.Body, e.JSON)
		}
	}
	for name := range want {
		t.Errorf("no example %s", name)
	}
}
