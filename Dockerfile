# scim-bridge: gunicorn serving scim_bridge.app:create_app() plus the background worker, as a
# non-root user. `scim-bridge serve` runs exactly the gunicorn configuration the tests exercise
# (scim_bridge/gunicorn_conf.py) and supervises the worker beside it.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY scim_bridge ./scim_bridge
RUN pip install '.[postgres]' \
    && useradd --system --uid 10001 --create-home --home-dir /var/lib/scim-bridge scim \
    && rm -rf /src

USER scim
WORKDIR /var/lib/scim-bridge
ENV SCIM_BRIDGE_DATABASE_URL=sqlite:////var/lib/scim-bridge/scim-bridge.db
VOLUME ["/var/lib/scim-bridge"]
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"

CMD ["scim-bridge", "serve", "--host", "0.0.0.0", "--port", "8000"]
