"""The composition root gives the health and certs reconcilers one handshake memory, with the
max age the operator set (MESH_HEALTH_HANDSHAKE_MAX_AGE)."""

from __future__ import annotations

from controller.app import App
from controller.config import Settings

ENV = {
    "NOMAD_ADDR": "http://127.0.0.1:1",
    "VAULT_ADDR": "http://127.0.0.1:1",
    "VAULT_TOKEN": "unused",
    "CONSUL_HTTP_ADDR": "127.0.0.1:1",
}


async def test_health_and_certs_share_one_memory_of_the_configured_age() -> None:
    app = App(Settings.from_env(ENV | {"MESH_HEALTH_HANDSHAKE_MAX_AGE": "90s"}))
    try:
        assert app.health.handshakes is app.certs.handshakes
        assert app.handshakes.max_age == 90.0
    finally:
        await app.close()


async def test_the_default_age_is_five_minutes() -> None:
    app = App(Settings.from_env(ENV))
    try:
        assert app.handshakes.max_age == 300.0
    finally:
        await app.close()
