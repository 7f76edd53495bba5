"""The Flask application factory: ``scim_bridge.app:create_app()`` is the WSGI app gunicorn serves."""

from __future__ import annotations

from flask import Flask
from flask import Response
from flask import jsonify

from scim_bridge.bridge import Bridge
from scim_bridge.metrics import exposition
from scim_bridge.metrics import web as web_metrics
from scim_bridge.scim.lookup_path import LookupPath
from scim_bridge.server.proxies import ForwardedHeaders
from scim_bridge.server.proxies import TrustedProxies
from scim_bridge.settings import Settings
from scim_bridge.settings import load_settings
from scim_bridge.store import migrate


def create_app(settings: Settings | None = None, bridge: Bridge | None = None) -> Flask:
    """Build the app; the schema is migrated (or start-up refused) before the first request."""
    bridge = bridge or Bridge(settings or load_settings())
    app = Flask(__name__)
    app.extensions["scim_bridge"] = bridge
    # Bodies past the limit are refused (413) before they are read.
    app.config["MAX_CONTENT_LENGTH"] = bridge.settings.server.max_body_bytes
    scim = bridge.scim_endpoints()
    # First, so its hooks time everything the blueprints do; routes name the resource type.
    served = {str(kind.endpoint).strip("/") for kind in scim.service.provider.resource_types}
    web_metrics.instrument(app, {"resource_endpoint": served})
    app.register_blueprint(scim.blueprint())
    app.register_blueprint(bridge.token_endpoint().blueprint())

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify(status="ok")

    @app.get("/readyz")
    def readyz() -> tuple[Response, int]:
        try:
            current = migrate.current_revision(bridge.db)
        except Exception:
            return jsonify(status="unavailable", database="unreachable"), 503
        if current != migrate.head_revision():
            return jsonify(status="unavailable", database="not migrated"), 503
        return jsonify(status="ok"), 200

    @app.get("/metrics")
    def metrics() -> Response:
        """Prometheus text format; no credential needed, and no label names a user or an id."""
        return Response(exposition.render(bridge.queue), content_type=exposition.CONTENT_TYPE)

    # Entra's lookups skip Flask's dispatch: the same endpoints, answered from the WSGI layer.
    app.wsgi_app = LookupPath(  # type: ignore[method-assign]
        app.wsgi_app, scim, served, web_metrics.observe
    )
    server = bridge.settings.server
    # The caller's address and scheme as the trusted proxies saw them (audit, rate limits); the
    # headers of any other peer are ignored, so a caller cannot claim another address.
    app.wsgi_app = ForwardedHeaders(  # type: ignore[method-assign]
        app.wsgi_app,
        TrustedProxies(server.trusted_proxies),
        hops=server.proxy_hops,
        trust_host=server.trust_forwarded_host,
    )
    return app
