#!/usr/bin/env bash
# Start a local PostgreSQL server for the multi-worker tuning test and print its URL.
# Needs root (it installs Debian's postgresql package when missing). Used by `make test-db` and CI:
#   export LEGO_VAE_TEST_POSTGRES_URL=$(make -s test-db) && make test
set -euo pipefail
USER_NAME=lego_vae
DB_NAME=lego_vae_test
PASSWORD=lego_vae
{
  if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql
  fi
  version=$(ls /usr/lib/postgresql | sort -n | tail -n 1)
  if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -qx "$version main"; then
    pg_createcluster "$version" main
  fi
  pg_ctlcluster "$version" main start || pg_lsclusters -h | grep -q online
  for _ in $(seq 30); do
    su postgres -c "pg_isready -q -h 127.0.0.1" && break
    sleep 1
  done
  su postgres -c "psql -q -tc \"SELECT 1 FROM pg_roles WHERE rolname='$USER_NAME'\"" | grep -q 1 \
    || su postgres -c "psql -q -c \"CREATE ROLE $USER_NAME LOGIN PASSWORD '$PASSWORD'\""
  su postgres -c "psql -q -tc \"SELECT 1 FROM pg_database WHERE datname='$DB_NAME'\"" | grep -q 1 \
    || su postgres -c "createdb -O $USER_NAME $DB_NAME"
} >&2
echo "postgresql://$USER_NAME:$PASSWORD@127.0.0.1:5432/$DB_NAME"
