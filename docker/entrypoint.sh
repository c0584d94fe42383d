#!/bin/sh
# Container roles (CONTRACT §0.1, §8.1). The first argument names the role; anything else runs as given.
#   serve     all-in-one (SQLite in /data unless DATABASE_URL is set)
#   migrate   apply migrations once, then exit (run it before web/worker/beat/watcher)
#   web       daphne serving hsi.asgi:application on HSI_HOST:HSI_PORT
#   worker    celery worker on every queue (or the queues given as arguments: worker -Q detection)
#   beat      celery beat, exactly one
#   watcher   manage.py watch_cameras, one per storage host
#   manage    any manage.py command: manage createsuperuser, manage create_api_key NAME, ...
set -eu

role="${1:-serve}"
[ $# -gt 0 ] && shift

case "$role" in
    serve)
        exec python manage.py serve "$@"
        ;;
    migrate)
        exec python manage.py migrate --noinput "$@"
        ;;
    web)
        exec daphne --bind "${HSI_HOST:-0.0.0.0}" --port "${HSI_PORT:-8000}" "$@" hsi.asgi:application
        ;;
    worker)
        if [ $# -eq 0 ]; then
            set -- -Q detection,analysis,notifications,default
        fi
        exec celery -A hsi worker --loglevel "${LOG_LEVEL:-info}" "$@"
        ;;
    beat)
        exec celery -A hsi beat --loglevel "${LOG_LEVEL:-info}" --schedule "${HSI_DATA_DIR:-/data}/celerybeat-schedule" "$@"
        ;;
    watcher)
        exec python manage.py watch_cameras "$@"
        ;;
    manage)
        exec python manage.py "$@"
        ;;
    *)
        exec "$role" "$@"
        ;;
esac
