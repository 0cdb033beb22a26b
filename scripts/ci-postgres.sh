#!/usr/bin/env bash
# Makes the local PostgreSQL (127.0.0.1:5432, trust auth for everything on this machine)
# check the password of one dedicated role, so a test can prove a wrong password is refused:
#   role trellis_pw, LOGIN PASSWORD 'trellis-right', and at the top of pg_hba.conf
#   "host all trellis_pw 127.0.0.1/32 scram-sha-256". Idempotent; reloads the config.
# Environment: PGHOST (default 127.0.0.1), PGPORT (5432), PGSUPERUSER (postgres).
set -euo pipefail

PGHOST="${PGHOST:-127.0.0.1}"
PGPORT="${PGPORT:-5432}"
SUPERUSER="${PGSUPERUSER:-postgres}"
ROLE=trellis_pw
PASSWORD=trellis-right
HBA_LINE="host all $ROLE 127.0.0.1/32 scram-sha-256"

say() { echo "ci-postgres: $*"; }
die() { echo "ci-postgres: error: $*" >&2; exit 1; }

command -v psql >/dev/null || die "psql not found: install postgresql-client"
sql() { psql -h "$PGHOST" -p "$PGPORT" -U "$SUPERUSER" -d postgres -v ON_ERROR_STOP=1 -qtAX "$@"; }

sql -c 'select 1' >/dev/null \
  || die "cannot reach PostgreSQL as $SUPERUSER at $PGHOST:$PGPORT; check that it runs (pg_lsclusters) and trusts $SUPERUSER"

# The role, with its password set every time (scram-sha-256, the server's password_encryption).
sql <<EOF
SET password_encryption = 'scram-sha-256';
DO \$\$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$ROLE') THEN
    CREATE ROLE $ROLE LOGIN PASSWORD '$PASSWORD';
  ELSE
    ALTER ROLE $ROLE LOGIN PASSWORD '$PASSWORD';
  END IF;
END
\$\$;
EOF

hba="$(sql -c 'show hba_file')"
[ -f "$hba" ] || die "pg_hba.conf not found at '$hba' (from show hba_file); is PostgreSQL on this machine?"
if grep -qxF "$HBA_LINE" "$hba"; then
  say "$hba already checks $ROLE's password"
else
  [ -w "$hba" ] || die "cannot write $hba; run as root or as the postgres user"
  tmp="$(mktemp)"
  { echo "$HBA_LINE"; cat "$hba"; } >"$tmp"
  cat "$tmp" >"$hba" # rewrite in place: keeps the file's owner and mode
  rm -f "$tmp"
  say "added '$HBA_LINE' at the top of $hba"
fi

[ "$(sql -c 'select pg_reload_conf()')" = t ] || die "pg_reload_conf() failed; check the PostgreSQL server log"
errors="$(sql -c 'select line_number || $$: $$ || error from pg_hba_file_rules where error is not null')"
[ -z "$errors" ] || die "PostgreSQL rejects lines of $hba: $errors"

# pg_reload_conf() only signals the server: wait (bounded) until a wrong password is refused.
for _ in $(seq 1 20); do
  out="$(PGPASSWORD=not-the-password psql -h "$PGHOST" -p "$PGPORT" -U "$ROLE" -d postgres -w -qtAX -c 'select 1' 2>&1 || true)"
  if grep -q 'password authentication failed' <<<"$out"; then
    PGPASSWORD="$PASSWORD" psql -h "$PGHOST" -p "$PGPORT" -U "$ROLE" -d postgres -w -qtAX -c 'select 1' >/dev/null \
      || die "$ROLE is refused even with its right password; check $hba and the PostgreSQL log"
    say "role $ROLE now logs in to $PGHOST:$PGPORT only with its password"
    exit 0
  fi
  sleep 0.5
done
die "PostgreSQL still lets $ROLE in with a wrong password ($out); check that no line above ours in $hba matches it"
