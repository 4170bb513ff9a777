package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/wagate/wagate/graphapi/sandbox"
	"github.com/wagate/wagate/internal/redisserver"
	"github.com/wagate/wagate/shared"
)

// The Graph API identity the sandbox and wagate share, and the webhook secret.
const (
	phoneNumberID = "100000000000001"
	token         = "prodcheck-token"
	appSecret     = "prodcheck-app-secret"
	namespace     = "default"
	retention     = 72 * time.Hour
)

// check is one run of the production topology.
type check struct {
	o       options
	dir     string
	ps      *procs
	started time.Time
	summary []string

	redis    *redisserver.Server
	pg       *postgres
	temporal client.Client
	consumer *consumer

	temporalAddr string
	sandboxURL   string
	apis         []string // base URLs of the two apiservers
	workerEnv    []string
	workers      []*proc
	metricsURL   map[*proc]string // each worker's /metrics, on its METRICS_ADDR

	http *http.Client
}

func (c *check) say(format string, args ...any) {
	c.summary = append(c.summary, fmt.Sprintf(format, args...))
}

func (c *check) run(ctx context.Context) error {
	c.http = &http.Client{Timeout: 15 * time.Second}
	for _, name := range []string{"apiserver", "worker", "sandbox", "temporal-server", "temporal-sql-tool"} {
		if _, err := os.Stat(filepath.Join(c.o.binDir, name)); err != nil {
			return fmt.Errorf("%s missing in %s (make build prod-check-tools): %w", name, c.o.binDir, err)
		}
	}
	bin, err := filepath.Abs(c.o.binDir)
	if err != nil {
		return err
	}
	c.o.binDir = bin
	if c.o.repoDir, err = filepath.Abs(c.o.repoDir); err != nil {
		return err
	}
	c.logf("working in %s", c.dir)

	steps := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"redis", c.startRedis},
		{"postgresql", c.startPostgres},
		{"schema", c.setupSchema},
		{"temporal", c.startTemporal},
		{"namespace", c.registerNamespace},
		{"wagate", c.startWagate},
		{"task", c.runTask},
		{"metrics", c.checkMetrics},
	}
	for _, s := range steps {
		if err := s.fn(ctx); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		if bad := c.ps.unexpectedExits(); len(bad) > 0 {
			return fmt.Errorf("after %s: processes exited unexpectedly: %s", s.name, strings.Join(bad, ", "))
		}
	}
	return nil
}

// shutdown stops everything the check started, whatever state it is in.
func (c *check) shutdown() {
	c.ps.stopAll(15 * time.Second)
	if c.temporal != nil {
		c.temporal.Close()
	}
	if c.consumer != nil {
		c.consumer.close()
	}
	if c.pg != nil {
		c.pg.stop()
	}
	if c.redis != nil {
		_ = c.redis.Stop()
	}
}

func (c *check) startRedis(ctx context.Context) error {
	dir := filepath.Join(c.dir, "redis")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var err error
	if c.redis, err = redisserver.Start(ctx, dir, 0); err != nil {
		return err
	}
	rc := redis.NewClient(&redis.Options{Addr: c.redis.Addr})
	defer rc.Close()
	conf, err := rc.ConfigGet(ctx, "appendonly").Result()
	if err != nil {
		return err
	}
	if conf["appendonly"] != "yes" {
		return fmt.Errorf("redis appendonly = %q; want yes", conf["appendonly"])
	}
	c.logf("redis on %s, appendonly yes", c.redis.Addr)
	c.say("redis: %s with appendonly yes (appendfsync everysec), as in compose", c.redis.Addr)
	return nil
}

func (c *check) startPostgres(ctx context.Context) error {
	ports, err := freePorts(1)
	if err != nil {
		return err
	}
	if c.pg, err = newPostgres(c.dir, ports[0], c.ps); err != nil {
		return err
	}
	if err := c.pg.initdb(ctx); err != nil {
		return err
	}
	// The port may be taken between choosing and binding it: then another one.
	for attempt := 1; ; attempt++ {
		err := c.pg.start(ctx)
		if err == nil {
			break
		}
		if attempt == 3 || !portTaken(c.pg.logFile) {
			return err
		}
		if ports, err = freePorts(1); err != nil {
			return err
		}
		c.logf("postgresql: port taken; trying %d", ports[0])
		c.pg.port = ports[0]
		_ = os.Truncate(c.pg.logFile, 0)
	}
	runAs := "this user"
	if c.pg.runAs != "" {
		runAs = "user " + c.pg.runAs
	}
	c.logf("%s (%s) on 127.0.0.1:%d as %s", c.pg.version(), c.pg.bin, c.pg.port, runAs)
	c.say("postgresql: %s from %s on 127.0.0.1:%d, run as %s, data in a temporary folder", c.pg.version(), c.pg.bin, c.pg.port, runAs)
	return nil
}

// setupSchema runs compose's schema job script twice: the second run must find
// everything in place and change nothing.
func (c *check) setupSchema(ctx context.Context) error {
	schema, err := schemaDir(c.o)
	if err != nil {
		return err
	}
	script := filepath.Join(c.o.repoDir, "deploy", "temporal", "setup-schema.sh")
	env := []string{
		"PATH=" + c.o.binDir + string(os.PathListSeparator) + os.Getenv("PATH"),
		"POSTGRES_SEEDS=127.0.0.1", "DB_PORT=" + strconv.Itoa(c.pg.port),
		"POSTGRES_USER=" + c.pg.user, "SQL_PASSWORD=" + c.pg.pass, "SCHEMA_DIR=" + schema,
	}
	for i := 1; i <= 2; i++ {
		if err := c.ps.run(ctx, "setup-schema", env, "sh", script); err != nil {
			return fmt.Errorf("run %d: %w", i, err)
		}
	}
	b, _ := os.ReadFile(filepath.Join(c.ps.logDir, "setup-schema.log"))
	// The second run finds both schemas at the latest version and applies nothing.
	if n := bytes.Count(b, []byte("found zero updates from current version")); n != 2 {
		return fmt.Errorf("the second run of setup-schema.sh found %d of 2 schemas already up to date", n)
	}
	c.logf("schema set up with temporal-sql-tool (twice) from %s", schema)
	c.say("schema: deploy/temporal/setup-schema.sh with temporal-sql-tool (create-database, setup-schema -v 0.0, update-schema -d %s/postgresql/v12/{temporal,visibility}/versioned), run twice", schema)
	return nil
}

// startTemporal starts the server on free ports, trying other ports when one was
// taken between choosing and binding it.
func (c *check) startTemporal(ctx context.Context) error {
	for attempt := 1; ; attempt++ {
		err := c.startTemporalOnce(ctx)
		if err == nil || attempt == 3 || !errors.Is(err, errPortTaken) {
			return err
		}
		c.logf("temporal-server: %v; trying other ports", err)
	}
}

// errPortTaken marks a child that exited because its port was taken meanwhile.
var errPortTaken = errors.New("port taken")

// portTaken reports whether a log says a bind failed.
func portTaken(logPath string) bool {
	b, _ := os.ReadFile(logPath)
	return bytes.Contains(b, []byte("address already in use")) || bytes.Contains(b, []byte("Address already in use"))
}

func (c *check) startTemporalOnce(ctx context.Context) error {
	p, err := freeLowPorts(9)
	if err != nil {
		return err
	}
	c.temporalAddr = "127.0.0.1:" + strconv.Itoa(p[0])
	// The variables docker-compose.yml gives the temporalio/server image, plus the
	// ports, which must be free here.
	env := []string{
		"DB=postgres12", "DB_PORT=" + strconv.Itoa(c.pg.port), "POSTGRES_SEEDS=127.0.0.1",
		"POSTGRES_USER=" + c.pg.user, "POSTGRES_PWD=" + c.pg.pass,
		"BIND_ON_IP=127.0.0.1", "LOG_LEVEL=warn",
		"DYNAMIC_CONFIG_FILE_PATH=" + filepath.Join(c.o.repoDir, "deploy", "temporal", "dynamicconfig.yaml"),
		"FRONTEND_GRPC_PORT=" + strconv.Itoa(p[0]), "FRONTEND_HTTP_PORT=" + strconv.Itoa(p[1]),
		"FRONTEND_MEMBERSHIP_PORT=" + strconv.Itoa(p[2]),
		"HISTORY_GRPC_PORT=" + strconv.Itoa(p[3]), "HISTORY_MEMBERSHIP_PORT=" + strconv.Itoa(p[4]),
		"MATCHING_GRPC_PORT=" + strconv.Itoa(p[5]), "MATCHING_MEMBERSHIP_PORT=" + strconv.Itoa(p[6]),
		"WORKER_GRPC_PORT=" + strconv.Itoa(p[7]), "WORKER_MEMBERSHIP_PORT=" + strconv.Itoa(p[8]),
	}
	proc, err := c.ps.start("temporal-server", filepath.Join(c.o.binDir, "temporal-server"), env)
	if err != nil {
		return err
	}
	if err := waitTCP(ctx, c.temporalAddr, 90*time.Second, proc); err != nil {
		if proc.exited() && portTaken(proc.logPath) {
			proc.killed = true // expected: retried on other ports
			return fmt.Errorf("%w: %v", errPortTaken, err)
		}
		return err
	}
	quiet := sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler))
	dialCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		c.temporal, err = client.DialContext(dialCtx, client.Options{HostPort: c.temporalAddr, Namespace: namespace, Logger: quiet})
		if err == nil {
			break
		}
		if proc.exited() {
			return fmt.Errorf("temporal-server exited: %v", proc.err)
		}
		select {
		case <-dialCtx.Done():
			return fmt.Errorf("temporal frontend %s not healthy: %w", c.temporalAddr, err)
		case <-time.After(500 * time.Millisecond):
		}
	}
	info, err := c.temporal.WorkflowService().GetSystemInfo(ctx, &workflowservice.GetSystemInfoRequest{})
	if err != nil {
		return err
	}
	c.logf("temporal server %s on %s", info.GetServerVersion(), c.temporalAddr)
	c.say("temporal: tools/temporal-server %s (go.temporal.io/server, the image's embedded config template, DB=postgres12) on %s", info.GetServerVersion(), c.temporalAddr)
	return nil
}

// registerNamespace does what compose's namespace job does (temporal operator
// namespace create --retention 72h, left alone when it exists), twice, and waits
// until the frontend serves the namespace.
func (c *check) registerNamespace(ctx context.Context) error {
	nc, err := client.NewNamespaceClient(client.Options{HostPort: c.temporalAddr,
		Logger: sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler))})
	if err != nil {
		return err
	}
	defer nc.Close()
	for range 2 {
		err := nc.Register(ctx, &workflowservice.RegisterNamespaceRequest{
			Namespace:                        namespace,
			WorkflowExecutionRetentionPeriod: durationpb.New(retention),
		})
		var exists *serviceerror.NamespaceAlreadyExists
		if err != nil && !errors.As(err, &exists) {
			return err
		}
	}
	desc, err := nc.Describe(ctx, namespace)
	if err != nil {
		return err
	}
	if got := desc.GetConfig().GetWorkflowExecutionRetentionTtl().AsDuration(); got != retention {
		return fmt.Errorf("namespace retention %v; want %v", got, retention)
	}
	// The frontend learns new namespaces from its cache, refreshed every few seconds.
	waitCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		_, err := c.temporal.CountWorkflow(waitCtx, &workflowservice.CountWorkflowExecutionsRequest{Namespace: namespace})
		if err == nil {
			break
		}
		select {
		case <-waitCtx.Done():
			return fmt.Errorf("namespace %s not served: %w", namespace, err)
		case <-time.After(500 * time.Millisecond):
		}
	}
	// The search attributes of GET /api/tasks, as the namespace job creates them.
	have, err := c.temporal.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		return err
	}
	missing := map[string]enumspb.IndexedValueType{}
	for name, typ := range shared.SearchAttributes() {
		if _, ok := have.GetCustomAttributes()[name]; !ok {
			missing[name] = typ
		}
	}
	if len(missing) > 0 {
		if _, err := c.temporal.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{
			Namespace: namespace, SearchAttributes: missing,
		}); err != nil {
			return fmt.Errorf("add search attributes: %w", err)
		}
	}
	c.logf("namespace %s registered, retention 72h", namespace)
	c.say("namespace: %s registered with retention 72h (a second registration is a no-op)", namespace)
	return nil
}

func (c *check) startWagate(ctx context.Context) error {
	var err error
	if c.consumer, err = startConsumer(); err != nil {
		return err
	}
	p, err := freePorts(3)
	if err != nil {
		return err
	}
	sandboxAddr := "127.0.0.1:" + strconv.Itoa(p[0])
	c.sandboxURL = "http://" + sandboxAddr
	c.apis = []string{"http://127.0.0.1:" + strconv.Itoa(p[1]), "http://127.0.0.1:" + strconv.Itoa(p[2])}

	common := []string{
		"WHATSAPP_TOKEN=" + token, "WHATSAPP_PHONE_NUMBER_ID=" + phoneNumberID, "WHATSAPP_APP_SECRET=" + appSecret,
	}
	// Meta posts delivery statuses to the webhook; the sandbox does the same, signed.
	sb, err := c.ps.start("sandbox", filepath.Join(c.o.binDir, "sandbox"), append(common,
		"SANDBOX_ADDR="+sandboxAddr, "SANDBOX_PUBLIC_URL="+c.sandboxURL, "SANDBOX_LATENCY="+c.o.latency.String(),
		"SANDBOX_WEBHOOK_URL="+c.apis[1]+"/webhook"))
	if err != nil {
		return err
	}
	if err := waitTCP(ctx, sandboxAddr, 30*time.Second, sb); err != nil {
		return err
	}

	c.workerEnv = append(common,
		"TEMPORAL_ADDRESS="+c.temporalAddr, "TEMPORAL_NAMESPACE="+namespace, "REDIS_URL="+c.redis.URL(),
		"WHATSAPP_API_URL="+c.sandboxURL, "WEBSOCKET_URL="+c.consumer.url, "WEBHOOK_VERIFY_TOKEN=prodcheck",
		"BULK_MAX_WORKERS="+strconv.Itoa(c.o.workers))
	for i := range 2 {
		if _, err := c.startWorker(ctx, fmt.Sprintf("worker-%d", i+1)); err != nil {
			return err
		}
	}
	for i, api := range c.apis {
		addr := strings.TrimPrefix(api, "http://")
		p, err := c.ps.start(fmt.Sprintf("apiserver-%d", i+1), filepath.Join(c.o.binDir, "apiserver"),
			append(c.workerEnv, "HTTP_ADDR="+addr))
		if err != nil {
			return err
		}
		if err := c.waitHealthy(ctx, api, p); err != nil {
			return err
		}
	}
	c.logf("sandbox %s (latency %v), 2 workers (BULK_MAX_WORKERS=%d), apiservers %s", c.sandboxURL, c.o.latency, c.o.workers, strings.Join(c.apis, ", "))
	c.say("wagate: bin/apiserver x2 (%s), bin/worker x2 (BULK_MAX_WORKERS=%d), bin/sandbox with %v latency", strings.Join(c.apis, ", "), c.o.workers, c.o.latency)
	return nil
}

// startWorker starts a bin/worker and waits until it polls.
func (c *check) startWorker(ctx context.Context, name string) (*proc, error) {
	port, err := freePorts(1)
	if err != nil {
		return nil, err
	}
	metricsAddr := "127.0.0.1:" + strconv.Itoa(port[0])
	p, err := c.ps.start(name, filepath.Join(c.o.binDir, "worker"), append(slices.Clip(c.workerEnv), "METRICS_ADDR="+metricsAddr))
	if err != nil {
		return nil, err
	}
	if c.metricsURL == nil {
		c.metricsURL = map[*proc]string{}
	}
	c.metricsURL[p] = "http://" + metricsAddr + "/metrics"
	if err := waitLog(ctx, p, "worker running", 60*time.Second); err != nil {
		return nil, err
	}
	c.workers = append(c.workers, p)
	return p, nil
}

func (c *check) waitHealthy(ctx context.Context, api string, p *proc) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		code, _, err := c.getJSON(ctx, api+"/api/health")
		if err == nil && code == http.StatusOK {
			return nil
		}
		if p.exited() {
			return fmt.Errorf("%s exited (%v)", p.name, p.err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %s/api/health not 200 within 60s (%d, %v)", p.name, api, code, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (c *check) getJSON(ctx context.Context, url string) (int, map[string]any, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	return c.do(req)
}

func (c *check) postJSON(ctx context.Context, url string, body []byte, header map[string]string) (int, map[string]any, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	return c.do(req)
}

func (c *check) do(req *http.Request) (int, map[string]any, error) {
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return resp.StatusCode, nil, err
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		return resp.StatusCode, nil, fmt.Errorf("%s %s answered %d with non-JSON %.200q", req.Method, req.URL, resp.StatusCode, b)
	}
	return resp.StatusCode, out, nil
}

// inbound posts signed text webhooks one at a time, alternating between the
// apiservers, each retried until answered 200 as Meta retries, so that their order
// is defined: the order of the 200s. It goes on until stop is set, so that the
// webhooks span the whole task, the worker kill and the PostgreSQL outage.
type inbound struct {
	stop     atomic.Bool
	posted   []string
	first    []time.Time // when each posted webhook was first tried
	accepted []time.Time // when it was answered 200
	retries  int
	perAPI   []int
	err      error
}

// across counts the webhooks in flight at some point of [from, to]: first tried
// before to and accepted after from.
func (in *inbound) across(from, to time.Time) int {
	n := 0
	for i := range in.accepted {
		if in.first[i].Before(to) && in.accepted[i].After(from) {
			n++
		}
	}
	return n
}

// slowest is the longest time from a webhook's first try to its 200.
func (in *inbound) slowest() time.Duration {
	var d time.Duration
	for i := range in.accepted {
		d = max(d, in.accepted[i].Sub(in.first[i]))
	}
	return d
}

func textWebhook(id, from, body string) []byte {
	return []byte(fmt.Sprintf(`{"object":"whatsapp_business_account","entry":[{"id":"WABA","changes":[{"value":{`+
		`"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550559999","phone_number_id":%q},`+
		`"contacts":[{"profile":{"name":"Cliente %s"},"wa_id":%q}],`+
		`"messages":[{"from":%q,"id":%q,"timestamp":"1705491000","text":{"body":%q},"type":"text"}]},"field":"messages"}]}]}`,
		phoneNumberID, from, from, from, id, body))
}

func (c *check) postInbound(ctx context.Context, in *inbound, every time.Duration) {
	in.perAPI = make([]int, len(c.apis))
	for i := 0; !in.stop.Load(); i++ {
		id := fmt.Sprintf("wamid.PRODCHECK%05d", i)
		body := textWebhook(id, fmt.Sprintf("57300000000%d", i%3), fmt.Sprintf("mensaje %d", i))
		sig := map[string]string{"X-Hub-Signature-256": sandbox.Sign([]byte(appSecret), body)}
		api := i % len(c.apis)
		first := time.Now()
		deadline := first.Add(2 * time.Minute)
		for {
			code, out, err := c.postJSON(ctx, c.apis[api]+"/webhook", body, sig)
			if err == nil && code == http.StatusOK && out["success"] == true {
				break
			}
			// 503 (Redis or Temporal briefly unavailable) and connection errors are
			// what Meta retries; anything else is wrong.
			if err == nil && code != http.StatusServiceUnavailable {
				in.err = fmt.Errorf("POST /webhook %s = %d %v", id, code, out)
				return
			}
			in.retries++
			if time.Now().After(deadline) || ctx.Err() != nil {
				in.err = fmt.Errorf("POST /webhook %s not accepted within 2m: %d %v %v", id, code, out, err)
				return
			}
			time.Sleep(500 * time.Millisecond)
		}
		in.posted = append(in.posted, id)
		in.first = append(in.first, first)
		in.accepted = append(in.accepted, time.Now())
		in.perAPI[api]++
		select {
		case <-ctx.Done():
			in.err = ctx.Err()
			return
		case <-time.After(every):
		}
	}
}

// taskStatus is GET /api/task-status/{id}.
type taskStatus struct {
	Status string `json:"status"`
	Result struct {
		Sent   int `json:"sent"`
		Failed int `json:"failed"`
		Total  int `json:"total"`
	} `json:"result"`
}

func (c *check) status(ctx context.Context, api, taskID string) (taskStatus, int, error) {
	var st taskStatus
	code, out, err := c.getJSON(ctx, api+"/api/task-status/"+taskID)
	if err != nil {
		return st, code, err
	}
	b, _ := json.Marshal(out)
	if err := json.Unmarshal(b, &st); err != nil {
		return st, code, err
	}
	return st, code, nil
}

func (c *check) runTask(ctx context.Context) error {
	n := c.o.recipients
	phones := make([]string, n)
	recipients := make([]map[string]string, n)
	for i := range n {
		phones[i] = fmt.Sprintf("5731%08d", i)
		recipients[i] = map[string]string{"phone": phones[i], "message": fmt.Sprintf("prod-check %d", i)}
	}
	body, _ := json.Marshal(map[string]any{"recipients": recipients, "use_queue": true})
	t0 := time.Now()
	code, out, err := c.postJSON(ctx, c.apis[0]+"/api/send-bulk", body, nil)
	if err != nil {
		return err
	}
	taskID, _ := out["task_id"].(string)
	if code != http.StatusOK && code != http.StatusAccepted || out["success"] != true || taskID == "" {
		return fmt.Errorf("POST /api/send-bulk = %d %v", code, out)
	}
	c.logf("task %s: %d recipients accepted by %s in %v", taskID, n, c.apis[0], time.Since(t0).Round(time.Millisecond))

	// Inbound webhooks flow during the whole task, through both apiservers, across
	// the worker kill and the PostgreSQL restart.
	in := &inbound{}
	defer in.stop.Store(true)
	var inWG sync.WaitGroup
	inWG.Add(1)
	go func() {
		defer inWG.Done()
		c.postInbound(ctx, in, c.o.inboundEvery)
	}()

	var (
		killedAt, restartedAt = -1, -1
		killedName            string
		killedRunning         int
		pollErrors            int
		last                  taskStatus
		polls                 = []int{0, 0}
		restartTook           time.Duration
		pgRestarted           = make(chan restartResult, 1)
	)
	deadline := time.Now().Add(c.o.timeout)
	for i := 0; ; i++ {
		if ctx.Err() != nil || time.Now().After(deadline) {
			return fmt.Errorf("task %s not SUCCESS in time: last %+v", taskID, last)
		}
		api := i % len(c.apis)
		st, code, err := c.status(ctx, c.apis[api], taskID)
		if err != nil || code != http.StatusOK {
			// A PostgreSQL restart makes Temporal briefly unavailable; the API says 503.
			pollErrors++
			if pollErrors > 200 {
				return fmt.Errorf("task-status failing: %d %v", code, err)
			}
			time.Sleep(300 * time.Millisecond)
			continue
		}
		polls[api]++
		last = st
		if st.Status == "FAILURE" {
			return fmt.Errorf("task %s FAILURE: %+v", taskID, st)
		}
		if st.Status == "SUCCESS" {
			break
		}
		if killedAt < 0 && st.Result.Sent >= n/5 {
			killedAt = st.Result.Sent
			victim, running := c.busyWorker(ctx, taskID)
			victim.kill()
			killedName, killedRunning = victim.name, running
			c.logf("SIGKILL %s (running %d send activity attempt(s) of the task) at %d/%d sent", victim.name, running, st.Result.Sent, n)
			// compose restarts a dead worker (restart: unless-stopped); so does the check,
			// after the other worker has had time to take over.
			go func() {
				time.Sleep(5 * time.Second)
				if _, err := c.startWorker(ctx, victim.name+"-restarted"); err != nil {
					c.logf("restarting %s: %v", victim.name, err)
				}
			}()
		}
		if restartedAt < 0 && killedAt >= 0 && st.Result.Sent >= n/2 {
			restartedAt = st.Result.Sent
			c.logf("PostgreSQL stop -m %s at %d/%d sent", c.o.restartMode, st.Result.Sent, n)
			// Polls and webhooks go on while PostgreSQL is down.
			go func() {
				t := time.Now()
				err := c.pg.restart(ctx, c.o.restartMode, c.o.pgDown)
				c.logf("PostgreSQL up again after %v", time.Since(t).Round(time.Millisecond))
				pgRestarted <- restartResult{t, time.Now(), err}
			}()
		}
		time.Sleep(300 * time.Millisecond)
	}
	var pgOutage restartResult
	if restartedAt >= 0 {
		pgOutage = <-pgRestarted
		if pgOutage.err != nil {
			return fmt.Errorf("restart PostgreSQL: %w", pgOutage.err)
		}
		restartTook = pgOutage.up.Sub(pgOutage.down)
	}
	took := time.Since(t0)
	c.logf("task %s SUCCESS after %v: %+v", taskID, took.Round(time.Millisecond), last.Result)

	var failures []string
	fail := func(format string, args ...any) { failures = append(failures, fmt.Sprintf(format, args...)) }
	if killedAt < 0 || restartedAt < 0 {
		fail("the task finished before the faults (worker killed at %d, PostgreSQL restarted at %d): raise -latency", killedAt, restartedAt)
	}
	if last.Result.Sent != n || last.Result.Failed != 0 || last.Result.Total != n {
		fail("task result %+v; want sent %d, failed 0, total %d", last.Result, n, n)
	}
	// The Web UI lists tasks from the visibility store, temporal_visibility in
	// PostgreSQL: the finished task must be there, closed as completed.
	var visible string
	for end := time.Now().Add(30 * time.Second); ; {
		resp, err := c.temporal.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Namespace: namespace, Query: fmt.Sprintf("WorkflowId = '%s'", taskID)})
		if err == nil {
			for _, e := range resp.GetExecutions() {
				if e.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED {
					visible = e.GetType().GetName()
				}
			}
		}
		if visible != "" || time.Now().After(end) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if visible == "" {
		fail("task %s is not listed as completed in the visibility store", taskID)
	}
	for _, api := range c.apis {
		st, code, err := c.status(ctx, api, taskID)
		if err != nil || code != http.StatusOK || st.Status != "SUCCESS" || st.Result != last.Result {
			fail("%s task-status = %d %+v %v; want SUCCESS %+v", api, code, st, err, last.Result)
		}
	}
	c.say("task %s: %d recipients posted to apiserver-1, status polled %d/%d times via apiserver-1/-2; SUCCESS sent %d failed %d total %d in %v (%.0f/s)",
		taskID, n, polls[0], polls[1], last.Result.Sent, last.Result.Failed, last.Result.Total, took.Round(100*time.Millisecond), float64(n)/took.Seconds())
	if visible != "" {
		c.say("visibility: %s %s listed as Completed in temporal_visibility (what the Web UI lists)", visible, taskID)
	}
	if killedRunning == 0 {
		fail("the killed worker ran none of the task's activities: the kill proved nothing")
	}
	c.say("faults: SIGKILL %s while it ran %d send activity attempt(s) of the task, at %d/%d sent (restarted 5 s later); PostgreSQL stopped -m %s at %d/%d sent, back after %v; %d task-status polls failed meanwhile",
		killedName, killedRunning, killedAt, n, c.o.restartMode, restartedAt, n, restartTook.Round(time.Millisecond), pollErrors)

	// Every recipient got its message from the sandbox's point of view (Meta's), and
	// repeats stayed within the sends in flight of the killed worker.
	repeats, missing, err := c.sandboxDeliveries(ctx, phones)
	if err != nil {
		return err
	}
	var sbStats struct {
		Accepted   int64          `json:"accepted"`
		Rejected   int64          `json:"rejected"`
		Duplicates int64          `json:"duplicates"`
		ByCode     map[string]int `json:"by_code"`
	}
	if code, out, err := c.getJSON(ctx, c.sandboxURL+"/_sandbox/stats"); err != nil || code != http.StatusOK {
		return fmt.Errorf("GET /_sandbox/stats = %d %v", code, err)
	} else {
		b, _ := json.Marshal(out)
		_ = json.Unmarshal(b, &sbStats)
	}
	if len(missing) > 0 {
		fail("%d recipients never reached the sandbox, e.g. %v", len(missing), missing[:min(5, len(missing))])
	}
	if repeats > c.o.workers {
		fail("%d repeated sends at the sandbox; want at most W=%d", repeats, c.o.workers)
	}
	if sbStats.Accepted != int64(n+repeats) {
		fail("sandbox accepted %d sends; want %d recipients + %d repeats", sbStats.Accepted, n, repeats)
	}
	codes := ""
	if len(sbStats.ByCode) > 0 {
		codes = fmt.Sprintf(" (by Meta code %v)", sbStats.ByCode)
	}
	c.say("sandbox (Meta): %d/%d recipients received their message, %d repeats (at most W=%d), accepted %d, rejected %d%s",
		n-len(missing), n, repeats, c.o.workers, sbStats.Accepted, sbStats.Rejected, codes)

	// Inbound: all posted events reach the consumer, in order.
	in.stop.Store(true)
	inWG.Wait()
	if in.err != nil {
		fail("inbound: %v", in.err)
	}
	waitUntil := time.Now().Add(2 * time.Minute)
	for {
		got, _ := c.consumer.received()
		if v := judgeRelay(in.posted, got); len(v.missing) == 0 || time.Now().After(waitUntil) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // a late repeat would show up now
	got, bad := c.consumer.received()
	v := judgeRelay(in.posted, got)
	switch {
	case len(v.missing) > 0:
		fail("inbound: %d of %d events never reached the WebSocket consumer, e.g. %v", len(v.missing), len(in.posted), v.missing[:min(5, len(v.missing))])
	case v.outOfOrd > 0:
		fail("inbound: %d events relayed out of order", v.outOfOrd)
	case len(v.unknown) > 0 || len(bad) > 0:
		fail("inbound: unexpected frames: %v %v", v.unknown, bad)
	case v.repeats > c.o.workers:
		fail("inbound: %d repeated frames; want at most %d", v.repeats, c.o.workers)
	}
	duringOutage := in.across(pgOutage.down, pgOutage.up)
	if duringOutage == 0 {
		fail("inbound: no webhook was in flight during the PostgreSQL outage")
	}
	c.say("inbound: %d signed webhooks posted every %v for the whole task (%d via apiserver-1, %d via apiserver-2); %d in flight during the PostgreSQL outage, %d retries after 503 or a refused connection, slowest 200 after %v; %d frames relayed: %d distinct in posting order, %d repeats",
		len(in.posted), c.o.inboundEvery, in.perAPI[0], in.perAPI[1], duringOutage, in.retries, in.slowest().Round(time.Millisecond), len(got), len(got)-v.repeats, v.repeats)

	// The relay queue drains, as seen through both apiservers.
	for _, api := range c.apis {
		var pending any
		for end := time.Now().Add(30 * time.Second); ; {
			code, out, err := c.getJSON(ctx, api+"/api/queue/status")
			if err == nil && code == http.StatusOK {
				if ql, ok := out["queue_lengths"].(map[string]any); ok {
					pending = ql["pending"]
					if pending == 0.0 {
						break
					}
				}
			}
			if time.Now().After(end) {
				fail("%s /api/queue/status pending = %v after the relay; want 0", api, pending)
				break
			}
			time.Sleep(300 * time.Millisecond)
		}
	}
	if len(failures) > 0 {
		return errors.New(strings.Join(failures, "; "))
	}
	return nil
}

// restartResult is how a PostgreSQL restart went.
type restartResult struct {
	down, up time.Time
	err      error
}

// busyWorker returns the worker process running most of the task's pending
// activities (Temporal records the identity, pid@host, of the worker that took each),
// and how many it runs, so that the kill interrupts sends in flight.
func (c *check) busyWorker(ctx context.Context, taskID string) (*proc, int) {
	byPid := map[string]*proc{}
	for _, w := range c.workers {
		if !w.exited() {
			byPid[strconv.Itoa(w.cmd.Process.Pid)] = w
		}
	}
	counts := map[*proc]int{}
	for range 20 {
		desc, err := c.temporal.DescribeWorkflowExecution(ctx, taskID, "")
		if err == nil {
			for _, a := range desc.GetPendingActivities() {
				pid, _, _ := strings.Cut(a.GetLastWorkerIdentity(), "@")
				if w := byPid[pid]; w != nil && a.GetState() == enumspb.PENDING_ACTIVITY_STATE_STARTED {
					counts[w]++
				}
			}
		}
		if len(counts) > 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	best := c.workers[0]
	for w, n := range counts {
		if n > counts[best] {
			best = w
		}
	}
	return best, counts[best]
}

// sandboxDeliveries asks the sandbox what each recipient received: the number of
// accepted sends beyond one per recipient, and the recipients whose message never
// arrived (or arrived with another text).
func (c *check) sandboxDeliveries(ctx context.Context, phones []string) (repeats int, missing []string, err error) {
	type result struct {
		i          int
		deliveries int
		ok         bool
		err        error
	}
	jobs := make(chan int)
	results := make(chan result)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				var r struct {
					Deliveries int `json:"deliveries"`
					Messages   []struct {
						Text struct {
							Body string `json:"body"`
						} `json:"text"`
					} `json:"messages"`
				}
				res := result{i: i}
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.sandboxURL+"/_sandbox/messages?to="+phones[i], nil)
				resp, err := c.http.Do(req)
				if err == nil {
					err = json.NewDecoder(resp.Body).Decode(&r)
					resp.Body.Close()
				}
				res.err, res.deliveries = err, r.Deliveries
				for _, m := range r.Messages {
					if m.Text.Body == fmt.Sprintf("prod-check %d", i) {
						res.ok = true
					}
				}
				results <- res
			}
		}()
	}
	go func() {
		for i := range phones {
			jobs <- i
		}
		close(jobs)
		wg.Wait()
		close(results)
	}()
	for r := range results {
		switch {
		case r.err != nil:
			err = r.err
		case !r.ok || r.deliveries < 1:
			missing = append(missing, phones[r.i])
		default:
			repeats += r.deliveries - 1
		}
	}
	return repeats, missing, err
}
