package devserver

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"

	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/log"
	"go.temporal.io/server/common/metrics"
	"go.temporal.io/server/common/persistence"
	"go.temporal.io/server/common/persistence/sql"
	"go.temporal.io/server/common/persistence/sql/sqlplugin"
	"go.temporal.io/server/common/resolver"
	"go.temporal.io/server/schema"
	sqliteschema "go.temporal.io/server/schema/sqlite"
)

// unversionedSchema is the schema of a database that records no version: the SQLite
// schema of Temporal server v1.32.1, which every wagate release embedded before
// databases recorded their version.
const unversionedSchema = "0.11"

// versionedDir holds the SQLite schema's upgrade steps inside the server's embedded
// schema files: one folder vX.Y per version, each with a manifest naming its SQL files.
const versionedDir = "sqlite/v3/temporal/versioned"

// upgradeSchema brings the database conf names up to the schema of the embedded
// server, the way temporal-sql-tool update-schema does for SQL stores, and records the
// version in the database's schema_version table. A database written by a newer server
// is refused: this server cannot read it safely, and the message says what to do.
// fresh is true when the schema was just created.
func upgradeSchema(conf *config.SQL, fresh bool) error {
	db, err := sql.NewSQLAdminDB(sqlplugin.DbKindUnknown, conf, resolver.NewNoopResolver(), log.NewNoopLogger(), metrics.NoopMetricsHandler)
	if err != nil {
		return fmt.Errorf("devserver: open %s: %w", conf.DatabaseName, err)
	}
	defer db.Close()

	have, err := db.ReadSchemaVersion(conf.DatabaseName)
	if err != nil {
		// No schema_version table: a fresh database, or one from before versions were
		// recorded.
		if err := db.CreateSchemaVersionTables(); err != nil {
			return fmt.Errorf("devserver: create schema version tables in %s: %w", conf.DatabaseName, err)
		}
		have = unversionedSchema
		if fresh {
			have = sqliteschema.Version
		}
		if err := db.UpdateSchemaVersion(conf.DatabaseName, have, have); err != nil {
			return fmt.Errorf("devserver: record schema version in %s: %w", conf.DatabaseName, err)
		}
	}
	want := sqliteschema.Version
	switch c := compareVersions(have, want); {
	case c > 0:
		return fmt.Errorf("devserver: %s was written by a newer Temporal server (SQLite schema %s; this build has %s): "+
			"run the wagate version that wrote it, or move the data folder away to start afresh", conf.DatabaseName, have, want)
	case c == 0:
		return nil
	}
	steps, err := schemaSteps(have, want)
	if err != nil {
		return err
	}
	for _, st := range steps {
		for _, stmt := range st.statements {
			if err := db.Exec(stmt); err != nil {
				return fmt.Errorf("devserver: upgrade %s to SQLite schema %s: %q: %w", conf.DatabaseName, st.version, stmt, err)
			}
		}
		if err := db.UpdateSchemaVersion(conf.DatabaseName, st.version, st.minCompatible); err != nil {
			return fmt.Errorf("devserver: record schema version %s in %s: %w", st.version, conf.DatabaseName, err)
		}
		if err := db.WriteSchemaUpdateLog(have, st.version, "", st.description); err != nil {
			return fmt.Errorf("devserver: log schema update in %s: %w", conf.DatabaseName, err)
		}
		have = st.version
	}
	return nil
}

// schemaStep is one versioned upgrade of the SQLite schema.
type schemaStep struct {
	version, minCompatible, description string
	statements                          []string
}

// schemaSteps reads the upgrade steps after from, up to and including to, in order.
func schemaSteps(from, to string) ([]schemaStep, error) {
	assets := schema.Assets()
	dirs, err := fs.ReadDir(assets, versionedDir)
	if err != nil {
		return nil, fmt.Errorf("devserver: embedded schema upgrades: %w", err)
	}
	var steps []schemaStep
	for _, d := range dirs {
		v := strings.TrimPrefix(d.Name(), "v")
		if !d.IsDir() || compareVersions(v, from) <= 0 || compareVersions(v, to) > 0 {
			continue
		}
		dir := path.Join(versionedDir, d.Name())
		raw, err := fs.ReadFile(assets, path.Join(dir, "manifest.json"))
		if err != nil {
			return nil, fmt.Errorf("devserver: schema upgrade %s: %w", v, err)
		}
		var m struct {
			CurrVersion, MinCompatibleVersion, Description string
			SchemaUpdateCqlFiles                           []string
		}
		if err := json.Unmarshal(raw, &m); err != nil {
			return nil, fmt.Errorf("devserver: schema upgrade %s manifest: %w", v, err)
		}
		st := schemaStep{version: m.CurrVersion, minCompatible: m.MinCompatibleVersion, description: m.Description}
		for _, f := range m.SchemaUpdateCqlFiles {
			body, err := fs.ReadFile(assets, path.Join(dir, f))
			if err != nil {
				return nil, fmt.Errorf("devserver: schema upgrade %s: %w", v, err)
			}
			stmts, err := persistence.LoadAndSplitQueryFromReaders([]io.Reader{bytes.NewReader(body)})
			if err != nil {
				return nil, fmt.Errorf("devserver: schema upgrade %s/%s: %w", v, f, err)
			}
			st.statements = append(st.statements, stmts...)
		}
		steps = append(steps, st)
	}
	slices.SortFunc(steps, func(a, b schemaStep) int { return compareVersions(a.version, b.version) })
	return steps, nil
}

// compareVersions orders dotted version numbers ("0.9" < "0.10"); a part that is not a
// number sorts as 0.
func compareVersions(a, b string) int {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := range max(len(pa), len(pb)) {
		var x, y int
		if i < len(pa) {
			x, _ = strconv.Atoi(pa[i])
		}
		if i < len(pb) {
			y, _ = strconv.Atoi(pb[i])
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}
