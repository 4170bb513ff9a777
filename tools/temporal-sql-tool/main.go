// Command temporal-sql-tool is Temporal's SQL schema tool, the one the
// temporalio/admin-tools image ships, built from go.temporal.io/server at the version
// in go.mod with only the PostgreSQL plugins. `make prod-check` runs it against a real
// PostgreSQL exactly as docker-compose.yml's schema job does (create-database,
// setup-schema -v 0.0, update-schema -d <versioned dir>). It is not part of the
// production binaries.
package main

import (
	"os"

	// Registers the postgres12 and postgres12_pgx plugins the tool looks up by name.
	_ "go.temporal.io/server/common/persistence/sql/sqlplugin/postgresql"
	"go.temporal.io/server/tools/sql"
)

func main() {
	if err := sql.RunTool(os.Args); err != nil {
		// RunTool has already logged the failure.
		os.Exit(1)
	}
}
