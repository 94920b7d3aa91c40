"""The devstack OpenBao runner against the real `bao` binary: start, health, seal, stop."""

from __future__ import annotations

import os

import hvac
import psutil
import pytest

from devstack.vault import OpenBao, start_openbao

pytestmark = pytest.mark.timeout(60)


def _exists(path: str) -> bool:
    return os.path.exists(path)


def test_session_openbao_is_healthy_and_token_works(openbao: OpenBao) -> None:
    status, body = openbao.health()
    assert status == 200
    assert body["sealed"] is False
    client = hvac.Client(url=openbao.addr, token=openbao.root_token)
    assert client.is_authenticated()
    assert openbao.addr.startswith("http://127.0.0.1:")
    assert openbao.root_token not in repr(openbao)


async def test_seal_and_unseal_for_real(tmp_path) -> None:
    bao = await start_openbao(data_dir=str(tmp_path))
    try:
        await bao.seal()
        status, body = bao.health()
        assert status == 503
        assert body["sealed"] is True
        client = hvac.Client(url=bao.addr, token=bao.root_token)
        with pytest.raises(hvac.exceptions.VaultDown):
            client.secrets.pki.read_ca_certificate_chain()
        await bao.unseal()
        assert bao.health()[0] == 200
    finally:
        await bao.stop()


async def test_stop_leaves_no_process_and_no_token_file(tmp_path) -> None:
    bao = await start_openbao(data_dir=str(tmp_path))
    pid = bao.pid
    assert psutil.pid_exists(pid)
    await bao.stop()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not _exists(os.path.join(bao.home, ".vault-token"))
    await bao.stop()  # idempotent


async def test_owned_temp_dir_is_removed_on_stop() -> None:
    bao = await start_openbao()
    home = bao.home
    assert _exists(home)
    await bao.stop()
    assert not _exists(home)


def test_openbao_dies_with_the_process_that_started_it(tmp_path) -> None:
    """A parent killed with SIGKILL (no cleanup) still leaves no OpenBao behind."""
    import signal
    import subprocess
    import sys
    import time

    script = (
        "import asyncio, sys\n"
        "from devstack.vault import start_openbao\n"
        "async def main():\n"
        f"    bao = await start_openbao(data_dir={str(tmp_path)!r})\n"
        "    print(bao.pid, flush=True)\n"
        "    await asyncio.sleep(60)\n"
        "asyncio.run(main())\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        bao_pid = int(parent.stdout.readline())
        assert psutil.pid_exists(bao_pid)
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    deadline = time.monotonic() + 10
    while psutil.pid_exists(bao_pid) and psutil.Process(bao_pid).status() != "zombie":
        assert time.monotonic() < deadline, "OpenBao outlived its parent"
        time.sleep(0.05)
