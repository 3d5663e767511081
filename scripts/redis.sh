#!/usr/bin/env bash
# Start a throwaway Redis for the shared-state tests and benchmarks; print its URL.
# Idempotent: installs Debian's redis-server if missing, reuses a running server.
# Listens on 127.0.0.1 only, on its own port, with its files in a throwaway folder.
set -euo pipefail

PORT=${PINFACTORY_REDIS_PORT:-56379}
DIR=${PINFACTORY_REDIS_DIR:-/tmp/pinfactory-redis-$PORT}

if ! command -v redis-server >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server >/dev/null
fi

if ! redis-cli -h 127.0.0.1 -p "$PORT" ping >/dev/null 2>&1; then
    mkdir -p "$DIR"
    redis-server --bind 127.0.0.1 --port "$PORT" --dir "$DIR" --daemonize yes \
        --save "" --appendonly no --protected-mode yes \
        --logfile "$DIR/redis.log" --pidfile "$DIR/redis.pid" >/dev/null
    for _ in $(seq 1 100); do
        redis-cli -h 127.0.0.1 -p "$PORT" ping >/dev/null 2>&1 && break
        sleep 0.1
    done
    redis-cli -h 127.0.0.1 -p "$PORT" ping >/dev/null
fi
echo "redis://127.0.0.1:$PORT/0"
