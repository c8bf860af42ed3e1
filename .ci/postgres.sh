#!/usr/bin/env bash
# Start a PostgreSQL server on loopback for the feedback-store tests and print the URL to use.
# Idempotent: installs Debian's postgresql when missing, makes a cluster when there is none,
# starts it, and creates the `helpdesk` role and `helpdesk_test` database once. The cluster runs
# as the postgres user (initdb refuses root), so this works when CI runs as root.
# Usage: export HELPDESK_TEST_POSTGRES_URL="$(bash .ci/postgres.sh)"
set -euo pipefail
PASSWORD=helpdesk-test  # loopback-only throwaway test database
if ! command -v pg_lsclusters >/dev/null; then
  apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
fi
if [ -z "$(pg_lsclusters -h)" ]; then
  version="$(ls /usr/lib/postgresql | sort -V | tail -1)"
  pg_createcluster "$version" main >&2
fi
read -r version cluster port status _ < <(pg_lsclusters -h | head -1)
if [ "$status" != "online" ]; then
  pg_ctlcluster "$version" "$cluster" start >&2
fi
as_postgres() { su postgres -s /bin/sh -c "psql -p $port -v ON_ERROR_STOP=1 -qAt $*"; }
if [ "$(as_postgres "-c \"SELECT 1 FROM pg_roles WHERE rolname = 'helpdesk'\"")" != "1" ]; then
  as_postgres "-c \"CREATE ROLE helpdesk LOGIN PASSWORD '$PASSWORD'\"" >&2
fi
if [ "$(as_postgres "-c \"SELECT 1 FROM pg_database WHERE datname = 'helpdesk_test'\"")" != "1" ]; then
  as_postgres "-c \"CREATE DATABASE helpdesk_test OWNER helpdesk\"" >&2
fi
echo "postgresql+psycopg://helpdesk:$PASSWORD@127.0.0.1:$port/helpdesk_test"
