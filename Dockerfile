# The Partner Order API under gunicorn. Build from the repository root:
#   docker build -t soap-service . && docker run -p 8080:8080 -e SOAP_SERVICE_DATABASE_URL=... soap-service
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SOAP_SERVICE_DATA_DIR=/var/lib/soap_service

RUN useradd --system --home-dir /var/lib/soap_service --create-home soap
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY soap_service ./soap_service
COPY migrations ./migrations
COPY wsdl ./wsdl
COPY schemas ./schemas
RUN pip install --no-cache-dir -e .

USER soap
# badkeys's blocklist of published compromised keys (Debian weak keys among them), into ~/.cache/badkeys.
RUN badkeys --update-bl
ENV SOAP_SERVICE_REQUIRE_KEY_BLOCKLIST=yes
EXPOSE 8080
# `init` is idempotent: it migrates the schema and creates the CA hierarchy only once.
CMD ["sh", "-c", "soap-service init >/dev/null && exec soap-service serve --bind 0.0.0.0:8080"]
