#!/usr/bin/env bash
# Entrypoint of the local PostgreSQL image (lift/postgres:15, built by scripts/build-postgres-image.sh).
#
# Behaves like the official `postgres` image's entrypoint, as far as Lift's tests rely on it:
# - honours POSTGRES_USER (default postgres), POSTGRES_PASSWORD, POSTGRES_DB (default: the user),
#   POSTGRES_HOST_AUTH_METHOD (default scram-sha-256; `trust` needs no password),
#   POSTGRES_INITDB_ARGS and PGDATA (default /var/lib/postgresql/data);
# - on first start: initdb, listen_addresses='*', pg_hba.conf allowing host connections from any
#   address with the chosen method, creates the database, runs /docker-entrypoint-initdb.d/*
#   (*.sh, *.sql, *.sql.gz) in a temporary server that listens on no TCP address;
# - arguments starting with '-' are postgres options (`-c fsync=off`), other commands run as given.
#
# Readiness: the final server's "database system is ready to accept connections" line appears on
# stderr (the server's log) AND on stdout, on every start, because testcontainers-modules'
# Postgres image waits for that line on both streams. The temporary init server's log is printed
# with that phrase reworded, so nothing signals readiness before the real server is up.
set -Eeuo pipefail

READY='database system is ready to accept connections'
: "${PGDATA:=/var/lib/postgresql/data}"
export PGDATA

log() { printf '[entrypoint] %s\n' "$*"; }

if [ "$#" -eq 0 ] || [ "${1:0:1}" = '-' ]; then
    set -- postgres "$@"
fi
if [ "$1" != 'postgres' ]; then
    exec "$@"
fi

# Started as root (e.g. `--user root`, or a root-owned volume): fix ownership, drop to postgres.
if [ "$(id -u)" = '0' ]; then
    mkdir -p "$PGDATA" /var/run/postgresql
    chown -R postgres:postgres "$PGDATA" /var/run/postgresql
    chmod 700 "$PGDATA"
    exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

mkdir -p "$PGDATA"
chmod 700 "$PGDATA" 2>/dev/null || true

# Print the temporary server's log without the readiness phrase.
print_init_log() {
    [ -f "$1" ] && sed "s/$READY/started (temporary init server)/" "$1"
    rm -f "$1"
}

init_database() {
    : "${POSTGRES_USER:=postgres}"
    : "${POSTGRES_DB:=$POSTGRES_USER}"
    : "${POSTGRES_PASSWORD:=}"
    : "${POSTGRES_HOST_AUTH_METHOD:=}"
    : "${POSTGRES_INITDB_ARGS:=}"

    if [ -z "$POSTGRES_PASSWORD" ] && [ "$POSTGRES_HOST_AUTH_METHOD" != 'trust' ]; then
        echo >&2 "[entrypoint] error: the database is uninitialized and POSTGRES_PASSWORD is not set."
        echo >&2 "[entrypoint]   Set POSTGRES_PASSWORD, or POSTGRES_HOST_AUTH_METHOD=trust to allow all connections without a password."
        exit 1
    fi
    local auth="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"

    log "initializing database in $PGDATA (user '$POSTGRES_USER', database '$POSTGRES_DB', host auth '$auth')"
    local pwfile
    pwfile="$(mktemp)"
    printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
    # A server started with fsync=off (testcontainers' default) needs no synced initdb either.
    local nosync=''
    case " $* " in *'fsync=off'*) nosync='--no-sync' ;; esac
    # shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a list of words, as in the official image
    initdb --username="$POSTGRES_USER" --pwfile="$pwfile" --auth-local=trust \
        --encoding=UTF8 --locale=C.UTF-8 $nosync $POSTGRES_INITDB_ARGS -D "$PGDATA"
    rm -f "$pwfile"

    printf "\n# lift entrypoint\nlisten_addresses = '*'\n" >>"$PGDATA/postgresql.conf"
    if [ "$auth" = 'md5' ]; then
        echo "password_encryption = md5" >>"$PGDATA/postgresql.conf"
    fi
    printf '\n# lift entrypoint: any address, any user, any database\nhost all all all %s\n' "$auth" >>"$PGDATA/pg_hba.conf"

    local init_log
    init_log="$(mktemp)"
    # The temporary server gets the same options as the real one (as in the official image),
    # but listens on no TCP address, so clients cannot reach it.
    local opts
    opts="-c listen_addresses='' -p 5432"
    if [ "$#" -gt 1 ]; then
        opts="$(printf '%q ' "${@:2}")$opts"
    fi
    if ! pg_ctl -D "$PGDATA" -o "$opts" -l "$init_log" -w start >/dev/null; then
        print_init_log "$init_log" >&2
        echo >&2 "[entrypoint] error: the temporary init server did not start"
        exit 1
    fi

    local psql=(psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc)
    if [ "$POSTGRES_DB" != 'postgres' ]; then
        echo 'CREATE DATABASE :"db";' | "${psql[@]}" --dbname postgres --set db="$POSTGRES_DB"
    fi

    local f
    for f in /docker-entrypoint-initdb.d/*; do
        [ -e "$f" ] || continue
        case "$f" in
            *.sh)
                log "running $f"
                # shellcheck disable=SC1090 # init scripts are the user's, sourced as in the official image
                if [ -x "$f" ]; then "$f"; else . "$f"; fi
                ;;
            *.sql)
                log "running $f"
                "${psql[@]}" --dbname "$POSTGRES_DB" -f "$f"
                ;;
            *.sql.gz)
                log "running $f"
                gunzip -c "$f" | "${psql[@]}" --dbname "$POSTGRES_DB"
                ;;
            *) log "ignoring $f" ;;
        esac
    done

    pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
    print_init_log "$init_log"
    log "initialization complete; starting postgres"
}

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    init_database "$@"
fi

# Server log to stderr as usual; the readiness line is copied to stdout as well.
tee_ready() {
    local line
    while IFS= read -r line || [ -n "$line" ]; do
        printf '%s\n' "$line" >&2
        case "$line" in
            *"$READY"*) printf '%s\n' "$line" ;;
        esac
    done
}
exec "$@" 2> >(tee_ready)
