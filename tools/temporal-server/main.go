// Command temporal-server runs a full Temporal server (frontend, history, matching and
// worker services in one process) from go.temporal.io/server at the version in go.mod.
//
// Without -config-file it reads the configuration template embedded in the server
// (common/config/config_template_embedded.yaml), filled from the same environment the
// temporalio/server image reads: DB=postgres12, POSTGRES_SEEDS, DB_PORT,
// POSTGRES_USER, POSTGRES_PWD, BIND_ON_IP, FRONTEND_GRPC_PORT and the other *_PORT
// variables, DYNAMIC_CONFIG_FILE_PATH, LOG_LEVEL. `make prod-check` starts it on a
// local PostgreSQL so that docker-compose.yml's Temporal service is exercised with its
// own settings. It is not part of the production binaries (make deps-check).
package main

import (
	"flag"
	"fmt"
	"os"
	_ "time/tzdata" // schedules and cron need zone data even on a bare image

	"go.temporal.io/server/common/authorization"
	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/log"
	"go.temporal.io/server/common/log/tag"
	// Registers the postgres12 and postgres12_pgx persistence plugins.
	_ "go.temporal.io/server/common/persistence/sql/sqlplugin/postgresql"
	"go.temporal.io/server/temporal"
)

func main() {
	configFile := flag.String("config-file", "", "YAML configuration (default: the server's embedded template filled from the environment)")
	flag.Parse()
	if err := run(*configFile); err != nil {
		fmt.Fprintln(os.Stderr, "temporal-server:", err)
		os.Exit(1)
	}
}

func run(configFile string) error {
	var (
		cfg *config.Config
		err error
	)
	if configFile != "" {
		cfg, err = config.Load(config.WithConfigFile(configFile))
	} else {
		cfg, err = config.Load(config.WithEmbedded())
	}
	if err != nil {
		return fmt.Errorf("load configuration: %w", err)
	}
	logger := log.NewZapLogger(log.BuildZapLogger(cfg.Log))

	authorizer, err := authorization.GetAuthorizerFromConfig(&cfg.Global.Authorization)
	if err != nil {
		return fmt.Errorf("authorizer: %w", err)
	}
	claimMapper, err := authorization.GetClaimMapperFromConfig(&cfg.Global.Authorization, logger)
	if err != nil {
		return fmt.Errorf("claim mapper: %w", err)
	}

	srv, err := temporal.NewServer(
		temporal.ForServices(temporal.DefaultServices),
		temporal.WithConfig(cfg),
		temporal.WithLogger(logger),
		// Start blocks until SIGINT or SIGTERM, then stops every service in order.
		temporal.InterruptOn(temporal.InterruptCh()),
		temporal.WithAuthorizer(authorizer),
		temporal.WithClaimMapper(func(*config.Config) authorization.ClaimMapper { return claimMapper }),
	)
	if err != nil {
		return fmt.Errorf("build server: %w", err)
	}
	if err := srv.Start(); err != nil {
		return fmt.Errorf("start server: %w", err)
	}
	logger.Info("temporal-server stopped", tag.NewStringTag("reason", "interrupt"))
	return nil
}
