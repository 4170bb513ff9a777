// Package devserver runs an embedded Temporal server (SQLite persistence) and, optionally,
// the Temporal Web UI inside the current process. It backs the dev stack (`make run`) and
// the end-to-end tests; it links the whole Temporal server, so production binaries must
// never import it.
package devserver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	uiserver "github.com/temporalio/ui-server/v2/server"
	uiconfig "github.com/temporalio/ui-server/v2/server/config"
	uiserveroptions "github.com/temporalio/ui-server/v2/server/server_options"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/server/common/authorization"
	"go.temporal.io/server/common/cluster"
	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/dynamicconfig"
	"go.temporal.io/server/common/membership/static"
	sqliteplugin "go.temporal.io/server/common/persistence/sql/sqlplugin/sqlite"
	"go.temporal.io/server/common/primitives"
	sqliteschema "go.temporal.io/server/schema/sqlite"
	"go.temporal.io/server/temporal"

	"github.com/wagate/wagate/shared"
)

const (
	host          = "127.0.0.1"
	clusterName   = "active"
	storeName     = "sqlite-default"
	dbFileName    = "temporal.db"
	readyTimeout  = 60 * time.Second
	uiReadyPeriod = 15 * time.Second
)

// Options configure Start. The zero value runs an in-memory server on free ports with the
// Web UI.
type Options struct {
	// DataDir holds the SQLite file <DataDir>/temporal.db (WAL journal). It is created when
	// missing and reused on restart, so workflows survive; a file written by an older
	// server is upgraded to this server's schema first. "" keeps everything in memory.
	DataDir string
	// Namespace is registered on every start; "default" when empty.
	Namespace string
	// FrontendPort is the gRPC frontend port on 127.0.0.1; 0 picks a free port.
	FrontendPort int
	// UIPort is the Web UI port on 127.0.0.1; 0 picks a free port, -1 disables the UI.
	UIPort int
	// Logger receives the server's logs at Warn and above; slog.Default() when nil.
	Logger *slog.Logger
	// SearchAttributes are custom search attributes registered on the namespace, besides
	// wagate's own (shared.SearchAttributes), which are always registered.
	SearchAttributes map[string]enumspb.IndexedValueType
}

// Server is a running embedded Temporal server. Its methods are safe for concurrent use.
type Server struct {
	srv       temporal.Server
	ui        *uiserver.Server
	uiDone    chan struct{}
	level     *slog.LevelVar
	frontend  string
	uiURL     string
	namespace string
	attrs     map[string]enumspb.IndexedValueType

	stopOnce sync.Once
	stopErr  error
}

// Start starts the server and returns once its frontend answers and the namespace is
// registered, or with an error when ctx ends first. Every port is checked free before
// anything binds: the Web UI exits the process on a bind error.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if opts.Namespace == "" {
		opts.Namespace = "default"
	}
	attrs := shared.SearchAttributes()
	for name, typ := range opts.SearchAttributes {
		attrs[name] = typ
	}
	opts.SearchAttributes = attrs
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.UIPort < -1 || opts.UIPort > 65535 || opts.FrontendPort < 0 || opts.FrontendPort > 65535 {
		return nil, fmt.Errorf("devserver: invalid ports (frontend %d, UI %d)", opts.FrontendPort, opts.UIPort)
	}

	ports, err := allocatePorts(opts)
	if err != nil {
		return nil, err
	}

	sqlConf, err := prepareStore(opts)
	if err != nil {
		return nil, err
	}

	level := &slog.LevelVar{}
	level.Set(slog.LevelWarn)
	logger := newServerLogger(opts.Logger, level)

	srv, err := newTemporalServer(ports, sqlConf, logger)
	if err != nil {
		return nil, err
	}

	s := &Server{
		srv:       srv,
		level:     level,
		frontend:  net.JoinHostPort(host, strconv.Itoa(ports.frontend)),
		namespace: opts.Namespace,
		attrs:     opts.SearchAttributes,
	}

	if ports.ui > 0 {
		ui, err := newUIServer(ports.ui, s.frontend)
		if err != nil {
			return nil, err
		}
		s.ui = ui
		s.uiURL = "http://" + net.JoinHostPort(host, strconv.Itoa(ports.ui))
		s.uiDone = make(chan struct{})
		go func() {
			defer close(s.uiDone)
			// Start blocks until Stop; a bind error exits the process, which the port
			// check above rules out.
			_ = ui.Start()
		}()
	}

	if err := srv.Start(); err != nil {
		s.stopUI()
		return nil, fmt.Errorf("devserver: start temporal: %w", err)
	}
	if err := s.waitReady(ctx); err != nil {
		_ = s.Stop()
		return nil, err
	}
	return s, nil
}

// FrontendHostPort is the gRPC address clients dial, 127.0.0.1:port.
func (s *Server) FrontendHostPort() string { return s.frontend }

// UIURL is the base URL of the Web UI, http://127.0.0.1:port, or "" without UI.
func (s *Server) UIURL() string { return s.uiURL }

// Namespace is the namespace registered at start.
func (s *Server) Namespace() string { return s.namespace }

// Stop stops the Web UI and then the server. It is idempotent; later calls return the
// first call's result.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() {
		// Stopping services log canceled calls and broken connections, up to Error;
		// none of it is actionable, and a failed stop is returned below.
		s.level.Set(slog.LevelError + 4)
		s.stopUI()
		if err := s.srv.Stop(); err != nil {
			s.stopErr = fmt.Errorf("devserver: stop temporal: %w", err)
		}
	})
	return s.stopErr
}

func (s *Server) stopUI() {
	if s.ui == nil {
		return
	}
	s.ui.Stop()
	select {
	case <-s.uiDone:
	case <-time.After(5 * time.Second):
	}
}

// waitReady dials the frontend and describes the namespace until both succeed, then
// waits for the UI port to accept connections.
func (s *Server) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()

	quiet := sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler))
	var lastErr error
	for {
		lastErr = s.probe(ctx, quiet)
		if lastErr == nil {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("devserver: frontend %s not ready: %w (last error: %v)", s.frontend, ctx.Err(), lastErr)
		case <-time.After(100 * time.Millisecond):
		}
	}

	if s.ui == nil {
		return nil
	}
	uiCtx, cancelUI := context.WithTimeout(ctx, uiReadyPeriod)
	defer cancelUI()
	for {
		req, _ := http.NewRequestWithContext(uiCtx, http.MethodGet, s.uiURL+"/healthz", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			return nil
		}
		select {
		case <-uiCtx.Done():
			return fmt.Errorf("devserver: web UI %s not ready: %w", s.uiURL, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (s *Server) probe(ctx context.Context, logger sdklog.Logger) error {
	dialCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := client.DialContext(dialCtx, client.Options{
		HostPort:  s.frontend,
		Namespace: s.namespace,
		Logger:    logger,
	})
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err = c.WorkflowService().DescribeNamespace(dialCtx, &workflowservice.DescribeNamespaceRequest{Namespace: s.namespace}); err != nil {
		return err
	}
	// A namespace registered by an older wagate (a data folder from before) lacks the
	// newer search attributes: they are added here, on every start.
	have, err := c.OperatorService().ListSearchAttributes(dialCtx, &operatorservice.ListSearchAttributesRequest{Namespace: s.namespace})
	if err != nil {
		return err
	}
	missing := map[string]enumspb.IndexedValueType{}
	for name, typ := range s.attrs {
		if _, ok := have.GetCustomAttributes()[name]; !ok {
			missing[name] = typ
		}
	}
	if len(missing) == 0 {
		return nil
	}
	_, err = c.OperatorService().AddSearchAttributes(dialCtx, &operatorservice.AddSearchAttributesRequest{
		Namespace: s.namespace, SearchAttributes: missing,
	})
	return err
}

// ports are the TCP ports the server binds, all on 127.0.0.1.
type ports struct {
	frontend, frontendHTTP, history, matching, worker, ui int
}

// allocatePorts checks the requested ports are free and picks free ones for the rest.
// Picked ports are held open until all are chosen so that none is handed out twice.
func allocatePorts(opts Options) (ports, error) {
	var held []net.Listener
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	pick := func(want int, what string) (int, error) {
		l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(want)))
		if err != nil {
			if want != 0 {
				return 0, fmt.Errorf("devserver: %s port %d is not free: %w", what, want, err)
			}
			return 0, fmt.Errorf("devserver: no free port for %s: %w", what, err)
		}
		held = append(held, l)
		return l.Addr().(*net.TCPAddr).Port, nil
	}

	var p ports
	var err error
	if p.frontend, err = pick(opts.FrontendPort, "frontend"); err != nil {
		return p, err
	}
	if opts.UIPort >= 0 {
		if p.ui, err = pick(opts.UIPort, "web UI"); err != nil {
			return p, err
		}
	}
	for _, x := range []struct {
		dst  *int
		what string
	}{{&p.frontendHTTP, "frontend HTTP"}, {&p.history, "history"}, {&p.matching, "matching"}, {&p.worker, "worker"}} {
		if *x.dst, err = pick(0, x.what); err != nil {
			return p, err
		}
	}
	return p, nil
}

// prepareStore returns the SQLite config, creating the schema when the database is new
// and registering the namespace (a no-op when it exists).
func prepareStore(opts Options) (*config.SQL, error) {
	conf := &config.SQL{PluginName: sqliteplugin.PluginName}
	if opts.DataDir == "" {
		name, err := randomName()
		if err != nil {
			return nil, err
		}
		// A shared-cache memory database lives as long as one connection to it; the
		// plugin keeps one open for the server's lifetime.
		conf.DatabaseName = name
		conf.ConnectAttributes = map[string]string{"mode": "memory", "cache": "shared"}
	} else {
		dir, err := filepath.Abs(opts.DataDir)
		if err != nil {
			return nil, fmt.Errorf("devserver: data dir: %w", err)
		}
		opts.DataDir = dir
		if err := os.MkdirAll(opts.DataDir, 0o755); err != nil {
			return nil, fmt.Errorf("devserver: create data dir: %w", err)
		}
		file := filepath.Join(opts.DataDir, dbFileName)
		conf.DatabaseName = file
		// WAL with synchronous=normal survives a process crash (only power loss can drop
		// the last commits) and avoids an fsync per transaction.
		conf.ConnectAttributes = map[string]string{"mode": "rwc", "journal_mode": "wal", "synchronous": "normal"}
		_, err = os.Stat(file)
		fresh := errors.Is(err, os.ErrNotExist)
		switch {
		case fresh:
			if err := sqliteschema.SetupSchema(conf); err != nil {
				// Leave no half-initialized file behind: the next start would skip the schema.
				removeDB(file)
				return nil, fmt.Errorf("devserver: set up schema in %s: %w", file, err)
			}
		case err != nil:
			return nil, fmt.Errorf("devserver: %w", err)
		}
		// A file left by an older server is upgraded in place; one from a newer server
		// is refused before the server touches it.
		if err := upgradeSchema(conf, fresh); err != nil {
			if fresh {
				removeDB(file)
			}
			return nil, err
		}
	}

	ns, err := sqliteschema.NewNamespaceConfig(clusterName, opts.Namespace, false, opts.SearchAttributes)
	if err != nil {
		return nil, fmt.Errorf("devserver: namespace config: %w", err)
	}
	if err := sqliteschema.CreateNamespaces(conf, ns); err != nil {
		return nil, fmt.Errorf("devserver: register namespace %q: %w", opts.Namespace, err)
	}
	return conf, nil
}

func removeDB(file string) {
	for _, suffix := range []string{"", "-wal", "-shm"} {
		_ = os.Remove(file + suffix)
	}
}

func randomName() (string, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("devserver: random database name: %w", err)
	}
	return "wagate-" + hex.EncodeToString(b), nil
}

// newTemporalServer builds a single-process server with all four services. NewServer
// panics on some bad configurations, which become errors here.
func newTemporalServer(p ports, sqlConf *config.SQL, logger serverLogger) (srv temporal.Server, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("devserver: build temporal server: %v", r)
		}
	}()

	addr := func(port int) string { return net.JoinHostPort(host, strconv.Itoa(port)) }
	service := func(port, httpPort int) config.Service {
		return config.Service{RPC: config.RPC{GRPCPort: port, HTTPPort: httpPort, BindOnIP: host}}
	}

	conf := &config.Config{}
	conf.Global.Membership.MaxJoinDuration = 30 * time.Second
	conf.Global.Membership.BroadcastAddress = host
	conf.Persistence.DefaultStore = storeName
	conf.Persistence.VisibilityStore = storeName
	conf.Persistence.NumHistoryShards = 1
	conf.Persistence.DataStores = map[string]config.DataStore{storeName: {SQL: sqlConf}}
	conf.ClusterMetadata = &cluster.Config{
		EnableGlobalNamespace:    false,
		FailoverVersionIncrement: 10,
		MasterClusterName:        clusterName,
		CurrentClusterName:       clusterName,
		ClusterInformation: map[string]cluster.ClusterInformation{
			clusterName: {
				Enabled:                true,
				InitialFailoverVersion: 1,
				RPCAddress:             addr(p.frontend),
				HTTPAddress:            addr(p.frontendHTTP),
			},
		},
	}
	conf.DCRedirectionPolicy.Policy = "noop"
	conf.Services = map[string]config.Service{
		string(primitives.FrontendService): service(p.frontend, p.frontendHTTP),
		string(primitives.HistoryService):  service(p.history, 0),
		string(primitives.MatchingService): service(p.matching, 0),
		string(primitives.WorkerService):   service(p.worker, 0),
	}
	conf.Archival.History.State = "disabled"
	conf.Archival.Visibility.State = "disabled"
	conf.NamespaceDefaults.Archival.History.State = "disabled"
	conf.NamespaceDefaults.Archival.Visibility.State = "disabled"
	conf.PublicClient.HostPort = addr(p.frontend)

	authorizer, err := authorization.GetAuthorizerFromConfig(&conf.Global.Authorization)
	if err != nil {
		return nil, fmt.Errorf("devserver: authorizer: %w", err)
	}
	claimMapper, err := authorization.GetClaimMapperFromConfig(&conf.Global.Authorization, logger)
	if err != nil {
		return nil, fmt.Errorf("devserver: claim mapper: %w", err)
	}

	// The values `temporal server start-dev` uses: a small host cache, more visibility
	// RPS for the UI, search attributes and Nexus endpoints visible at once, and
	// persistence limits far above SQLite's real throughput.
	dyn := dynamicconfig.StaticClient{
		dynamicconfig.HistoryCacheHostLevelMaxSize.Key():                 8096,
		dynamicconfig.FrontendMaxNamespaceVisibilityRPSPerInstance.Key(): 100,
		dynamicconfig.ForceSearchAttributesCacheRefreshOnRead.Key():      true,
		dynamicconfig.ForceNexusEndpointRefreshOnRead.Key():              true,
		dynamicconfig.FrontendPersistenceMaxQPS.Key():                    10000,
		dynamicconfig.HistoryPersistenceMaxQPS.Key():                     45000,
	}

	srv, err = temporal.NewServer(
		temporal.WithConfig(conf),
		temporal.ForServices(temporal.DefaultServices),
		temporal.WithStaticHosts(map[primitives.ServiceName]static.Hosts{
			primitives.FrontendService: static.SingleLocalHost(addr(p.frontend)),
			primitives.HistoryService:  static.SingleLocalHost(addr(p.history)),
			primitives.MatchingService: static.SingleLocalHost(addr(p.matching)),
			primitives.WorkerService:   static.SingleLocalHost(addr(p.worker)),
		}),
		temporal.WithLogger(logger),
		temporal.WithAuthorizer(authorizer),
		temporal.WithClaimMapper(func(*config.Config) authorization.ClaimMapper { return claimMapper }),
		temporal.WithDynamicConfigClient(dyn),
	)
	if err != nil {
		return nil, fmt.Errorf("devserver: build temporal server: %w", err)
	}
	return srv, nil
}

// newUIServer builds the Web UI against the frontend. NewServer panics on bad
// configuration, which becomes an error here.
func newUIServer(port int, frontend string) (ui *uiserver.Server, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("devserver: build web UI: %v", r)
		}
	}()
	return uiserver.NewServer(uiserveroptions.WithConfigProvider(&uiconfig.Config{
		Host:                host,
		Port:                port,
		TemporalGRPCAddress: frontend,
		EnableUI:            true,
		CORS:                uiconfig.CORS{CookieInsecure: true},
		HideLogs:            true,
		DisableNewsFetch:    true,
	})), nil
}
