# scim-bridge: gunicorn serving scim_bridge.app:create_app() plus the background worker, as a
# non-root user. `scim-bridge serve` runs exactly the gunicorn configuration the tests exercise
# (scim_bridge/gunicorn_conf.py) and supervises the worker beside it.
#
#   docker build -t scim-bridge .
#   docker run -d -p 8000:8000 -v scim-bridge-data:/var/lib/scim-bridge \
#     -e SCIM_BRIDGE_GITLAB_URL=https://gitlab.example.com -e SCIM_BRIDGE_GITLAB_TOKEN=glpat-... \
#     scim-bridge
#
# One container on its SQLite file in the volume; several on PostgreSQL: docker-compose.yml and
# docs/operator-guide.md.

# -- build: the bridge and its dependencies, PostgreSQL driver included, in a virtualenv ------
FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN python -m venv /opt/scim-bridge
WORKDIR /src
COPY pyproject.toml README.md ./
COPY scim_bridge ./scim_bridge
RUN /opt/scim-bridge/bin/pip install '.[postgres]'

# -- run: only the virtualenv is copied over (no sources, no build tools) ---------------------
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/scim-bridge/bin:$PATH

COPY --from=build /opt/scim-bridge /opt/scim-bridge
RUN useradd --system --user-group --uid 10001 --create-home \
      --home-dir /var/lib/scim-bridge --shell /usr/sbin/nologin scim

USER scim
WORKDIR /var/lib/scim-bridge
# SQLite by default, in the volume; docker-compose.yml points it at PostgreSQL instead.
ENV SCIM_BRIDGE_DATABASE_URL=sqlite:////var/lib/scim-bridge/scim-bridge.db \
    SCIM_BRIDGE_SERVER_PORT=8000
VOLUME ["/var/lib/scim-bridge"]
EXPOSE 8000

# /healthz needs no token; python's urllib, since the slim image has no curl.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('SCIM_BRIDGE_SERVER_PORT', '8000'), timeout=4)"]

# The port comes from SCIM_BRIDGE_SERVER_PORT (8000), so the health check follows a change of it.
CMD ["scim-bridge", "serve", "--host", "0.0.0.0"]
