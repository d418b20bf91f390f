#!/bin/bash
# The official postgres image's contract, minimal: on an empty $PGDATA, initdb with
# $POSTGRES_PASSWORD for the superuser (scram-sha-256 over TCP, trust on the local socket),
# run /docker-entrypoint-initdb.d/*.sh against a socket-only server, then exec postgres
# as the postgres user.
set -euo pipefail
# as the official image: options only (`-c name=value`, as the K3s StatefulSet passes) run postgres
case "${1:-}" in
  -*) set -- postgres "$@" ;;
esac
if [ "${1:-}" = postgres ] && [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  chown postgres:postgres "$PGDATA" /var/run/postgresql
  chmod 700 "$PGDATA"
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi
if [ "${1:-}" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
  : "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD must be set}"
  pwfile=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
  initdb --username="${POSTGRES_USER:-postgres}" --pwfile="$pwfile" \
    --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 >/dev/null
  rm -f "$pwfile"
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  # as the official image: every address in the file; `-c listen_addresses=...` wins
  echo "listen_addresses = '*'" >>"$PGDATA/postgresql.conf"
  pg_ctl -D "$PGDATA" -w -o "-c listen_addresses='' -p ${PGPORT:-5432}" start >/dev/null
  for f in /docker-entrypoint-initdb.d/*; do
    case "$f" in
      *.sh) echo "docker-entrypoint.sh: running $f"; bash "$f" ;;
      *.sql) echo "docker-entrypoint.sh: running $f"; psql -v ON_ERROR_STOP=1 -U "${POSTGRES_USER:-postgres}" -f "$f" ;;
    esac
  done
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  echo "docker-entrypoint.sh: database initialised"
fi
exec "$@"
