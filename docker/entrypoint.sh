#!/bin/sh
# The container's entry point (docs/deployment.md, "Docker"): bring the installation up to date,
# then replace this shell with the server, so that gunicorn is PID 1 and gets the signals.
#
# 1. `soap-service ca finish-rotation`: a CA passphrase rotation that a crash interrupted is
#    finished or undone (nothing happens when there is none);
# 2. `soap-service init`: migrations to the newest schema, the product catalogue, and the CA
#    hierarchy only when the database has none; a second run changes nothing and exits 0;
# 3. `soap-service serve` on 0.0.0.0:8080 (SOAP_SERVICE_BIND to change it), with the
#    container's arguments (--workers, --threads).
#
# SOAP_SERVICE_ENTRYPOINT_DRY_RUN=1 prints the server's command instead of running it (tests).
set -eu

soap-service ca finish-rotation
soap-service init

set -- soap-service serve --bind "${SOAP_SERVICE_BIND:-0.0.0.0:8080}" --quiet "$@"
if [ "${SOAP_SERVICE_ENTRYPOINT_DRY_RUN:-}" = "1" ]; then
    echo "exec $*"
    exit 0
fi
exec "$@"
