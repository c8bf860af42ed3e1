"""Run the scoring app under uvicorn with the connection guard: what `helpdesk-scorer serve`
does once its settings are read."""

from __future__ import annotations

import uvicorn

from serving.core.scorer import verify_folder
from serving.http.app import create_app
from serving.http.connections import BACKLOG, connection_cap, guarded_protocol, shared_port_socket
from serving.http.observability import configure_logging, log
from serving.http.settings import Settings

__all__ = ["LOOPBACK", "run_server"]

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def run_server(settings: Settings) -> bool:
    """Serve until SIGTERM; False when it never started (the lifespan refused the model, or
    the port was taken). Without API keys it binds loopback only: no auth, no exposure."""
    configure_logging(settings.log_level)
    verify_folder(settings.model_dir)  # the model loads in the lifespan: fail fast here
    if not settings.api_keys:
        log(
            "no API keys configured: serving on loopback only, without auth",
            requested_host=settings.host,
        )
        if settings.host not in LOOPBACK:
            settings.host = "127.0.0.1"
    app = create_app(settings)  # validates the policy and phrase files
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=int(settings.drain_seconds),
        timeout_keep_alive=settings.timeout_keep_alive_seconds,
        loop=settings.event_loop,
        backlog=BACKLOG,
        http=guarded_protocol(
            settings.timeout_header_seconds, connection_cap(settings.max_connections)
        ),
    )
    shared = [shared_port_socket(settings.host, settings.port)] if settings.reuse_port else None
    server = uvicorn.Server(config)
    server.run(sockets=shared)
    return bool(server.started)
