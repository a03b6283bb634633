# syntax=docker/dockerfile:1
# The Partner Order API under gunicorn (docs/deployment.md). Build from the repository root:
#   docker build -t soap-service .
#   docker run -p 8080:8080 -v soap-data:/var/lib/soap_service \
#     -e SOAP_SERVICE_DATABASE_URL=postgresql+psycopg://... soap-service
# Without SOAP_SERVICE_DATABASE_URL the service keeps a SQLite database in the data volume
# (one container only: SQLite is not shared between hosts).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SOAP_SERVICE_DATA_DIR=/var/lib/soap_service

# The service's own user (not root); its data directory must be its own (soap_service.datadir
# refuses one another user owns), so the volume's mount point is made here, 0700, for it.
RUN useradd --system --uid 10001 --user-group --home-dir /home/soap --create-home \
        --shell /usr/sbin/nologin soap \
    && install -d -o soap -g soap -m 0700 /var/lib/soap_service

WORKDIR /src
COPY pyproject.toml README.md ./
COPY soap_service ./soap_service
COPY migrations ./migrations
# A regular (not editable) install. soap_service.storage.schema finds the Alembic migrations
# beside the package's directory (MIGRATIONS = <package>/../migrations): they go next to the
# installed package, in site-packages. The sources are removed afterwards.
RUN pip install . \
    && cp -r migrations "$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/migrations" \
    && cd / && rm -rf /src

COPY --chmod=0755 docker/entrypoint.sh /usr/local/bin/soap-service-entrypoint

USER soap
WORKDIR /home/soap
# badkeys's blocklist of published compromised keys (Debian weak keys among them), into
# ~/.cache/badkeys (the image's, not the data volume); the service refuses to start without it.
RUN badkeys --update-bl
ENV SOAP_SERVICE_REQUIRE_KEY_BLOCKLIST=yes

VOLUME ["/var/lib/soap_service"]
EXPOSE 8080
# GET /healthz: the process answers (no database query); slim images have no curl.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4).status == 200 else 1)"]

# The entry point finishes an interrupted CA passphrase rotation, runs `soap-service init`
# (idempotent: migrations, catalogue, the CA hierarchy only once) and execs the server.
ENTRYPOINT ["soap-service-entrypoint"]
CMD ["--workers", "2", "--threads", "4"]
