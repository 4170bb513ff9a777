#!/bin/sh
# Creates and upgrades Temporal's PostgreSQL schema with temporal-sql-tool: the schema
# job of docker-compose.yml (temporalio/admin-tools image), also run by `make
# prod-check` with the tool built from go.temporal.io/server. Safe to re-run: an
# existing database is kept, setup-schema -v 0.0 records the base version only when
# none is recorded, and update-schema applies only the versions not applied yet.
#
# Environment: POSTGRES_SEEDS (the host), DB_PORT (5432), POSTGRES_USER, SQL_PASSWORD
# (read by temporal-sql-tool itself), SCHEMA_DIR (/etc/temporal/schema, where the
# admin-tools image keeps the versioned schema directories).
set -eu

: "${POSTGRES_SEEDS:?POSTGRES_SEEDS (the PostgreSQL host) is required}"
: "${POSTGRES_USER:?POSTGRES_USER is required}"
: "${SQL_PASSWORD:?SQL_PASSWORD is required}"
export SQL_PASSWORD
port="${DB_PORT:-5432}"
schema_dir="${SCHEMA_DIR:-/etc/temporal/schema}"

tool() {
	temporal-sql-tool --plugin postgres12 --ep "$POSTGRES_SEEDS" -p "$port" -u "$POSTGRES_USER" "$@"
}

# create-database leaves an existing database alone (the tool ignores PostgreSQL's
# duplicate-database error); a failure here means PostgreSQL is not reachable yet,
# which is retried for a minute.
create() {
	tries=0
	until out=$(tool --db "$1" create-database 2>&1); do
		tries=$((tries + 1))
		if [ "$tries" -ge 30 ]; then
			echo "$out" >&2
			echo "setup-schema: cannot create database $1 on $POSTGRES_SEEDS:$port" >&2
			return 1
		fi
		sleep 2
	done
	echo "database $1 present"
}

for db in temporal:temporal temporal_visibility:visibility; do
	name="${db%%:*}"
	dir="$schema_dir/postgresql/v12/${db#*:}/versioned"
	create "$name"
	tool --db "$name" setup-schema -v 0.0
	tool --db "$name" update-schema -d "$dir"
	echo "database $name at the schema of $dir"
done
