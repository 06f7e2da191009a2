"""The serve verb: the OpenAI-compatible API and the web page over one loaded base model."""

from enum import Enum
from typing import Annotated, Optional

import typer

from t2l.errors import T2LError
from t2l_cli.console import err, errors_to_exit
from t2l_cli.server.service import ServeSettings

app = typer.Typer()
MAX_BODY_MB = 8.0  # the server's default limit on a request body (t2l_cli.server.api.MAX_BODY_BYTES, in MB)


class Engine(str, Enum):
    t2l = "t2l"
    vllm = "vllm"


@app.command()
@errors_to_exit
def serve(
    host: Annotated[
        str,
        typer.Option(
            help="Address to listen on; 0.0.0.0 opens it to the network (then "
            "--api-key is needed, or --allow-no-key-on-network)."
        ),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    api_key: Annotated[
        Optional[str],
        typer.Option(
            envvar="T2L_API_KEY",
            show_default=False,
            help="Require 'Authorization: Bearer KEY' on every route but "
            "/health and the page's files (or set T2L_API_KEY).",
        ),
    ] = None,
    base: Annotated[
        Optional[str], typer.Option(help="Base model (default: the hypernetwork's own).")
    ] = ServeSettings.base,
    hypernet: Annotated[
        str,
        typer.Option(
            help="Hypernetwork for t2l:<description> models and POST /v1/adapters: "
            "'default', a hypernetwork folder, or a registered name or id."
        ),
    ] = ServeSettings.hypernet,
    device: Annotated[
        str, typer.Option(help="auto (a GPU when there is one), cpu, cuda or cuda:N.")
    ] = ServeSettings.device,
    max_batch: Annotated[
        int,
        typer.Option(
            min=1,
            help="Answers generated together, one row of the batch each (a "
            "request with n > 1 takes n); more wait, first come first served.",
        ),
    ] = ServeSettings.max_batch,
    threads: Annotated[
        Optional[int],
        typer.Option(
            min=1,
            show_default=False,
            help="torch threads for the model "
            "(default: torch's own choice, one per physical core, which "
            "is fastest when the server has the machine to itself; fewer "
            "leaves cores to other work).",
        ),
    ] = ServeSettings.threads,
    cors_origin: Annotated[
        Optional[str],
        typer.Option(
            help="Let browser pages from this origin (e.g. https://app.example) call the API; off by default."
        ),
    ] = None,
    max_body_mb: Annotated[
        float,
        typer.Option(
            min=0.001, help="Largest request body accepted, in MB; a larger one is answered 413 before it is read."
        ),
    ] = MAX_BODY_MB,
    allow_no_key_on_network: Annotated[
        bool,
        typer.Option(
            "--allow-no-key-on-network",
            help="Serve on a --host other than loopback without --api-key: anyone who reaches the port may use it.",
        ),
    ] = False,
    engine: Annotated[
        Engine,
        typer.Option(
            help="t2l: t2l's own server and page; vllm: vLLM's OpenAI server (its "
            "batching, eviction, parallelism) with t2l's resolver making and "
            "finding adapters, when vLLM is installed beside t2l (bash setup.sh "
            "--vllm)."
        ),
    ] = Engine.t2l,
):
    """Serve adapters over an OpenAI-compatible API (and a web page at /): the base loaded once, answers generated
    together in one batch, each row with its own adapter."""
    import signal

    import uvicorn

    from t2l_cli.server.api import create_app
    from t2l_cli.server.service import Service

    check_access(host, api_key, allow_no_key_on_network)
    if engine is Engine.vllm:
        given = {
            "--device": device != ServeSettings.device,
            "--threads": threads is not None,
            "--cors-origin": cors_origin is not None,
            "--max-body-mb": max_body_mb != MAX_BODY_MB,
        }
        if own := [flag for flag, set_ in given.items() if set_]:
            raise T2LError(
                f"{own[0]} is a setting of t2l's own server, not of vLLM's; leave it out with --engine "
                "vllm, or run vLLM with its own options (docs/serving.md, At scale)"
            )
        raise typer.Exit(_serve_vllm(host, port, api_key, base, hypernet, max_batch))
    settings = ServeSettings(base=base, hypernet=hypernet, device=device, max_batch=max_batch, threads=threads)
    with err.status("loading the base model"):
        service = Service(settings, on_status=err.log)
    err.print(
        f"serving {service.base_name} on http://{host}:{port}  (OpenAI API at http://{host}:{port}/v1"
        f"{', API key required' if api_key else ''}; up to {max_batch} answers at once); Ctrl-C stops"
    )
    # uvicorn stops on SIGINT and SIGTERM, then re-sends the signal to the handler it found: a no-op one makes a
    # stop asked for a clean exit (status 0).
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: None)
    if api_key is None and not loopback(host):
        err.print(f"warning: no API key on {host}: anyone who reaches port {port} can use the server")
    app = create_app(service, api_key, cors_origin, max_body_bytes=int(max_body_mb * 2**20))
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=DRAIN_S + 2)
    _draining_server()(config, service.engine.scheduler).run()
    err.print("stopped")


def _serve_vllm(host: str, port: int, api_key: str | None, base: str | None, hypernet: str, max_batch: int) -> int:
    """vLLM as a child process on the base's folder; its exit status."""
    from t2l_cli.actions.serve import vllm_settings
    from t2l_cli.server import vllm_launch

    vllm_launch.check_installed()
    settings = vllm_settings(host, port, base, hypernet, max_batch, on_status=err.log)
    err.print(f"starting vLLM on {settings.served_name} (a minute or two on a CPU)")
    return vllm_launch.run(settings, api_key, on_status=err.print)


DRAIN_S = 10  # seconds running answers get to finish once a stop is asked for


def loopback(host: str) -> bool:
    """Whether `host` is reachable from this machine alone (localhost, 127.0.0.0/8, ::1)."""
    import ipaddress

    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to a network address


def check_access(host: str, api_key: str | None, allow_no_key_on_network: bool) -> None:
    """Refuse, before the model loads, a key that is empty and a server open to the network without a key."""
    import os

    if (api_key is not None and not api_key.strip()) or (api_key is None and os.environ.get("T2L_API_KEY") == ""):
        given = "--api-key is empty" if api_key is not None else "T2L_API_KEY is set but empty"
        raise T2LError(
            f"{given}, which would serve with no authentication: give a key (e.g. --api-key "
            '"$(openssl rand -hex 16)"), or leave it out to serve without one'
        )
    if api_key is None and not loopback(host) and not allow_no_key_on_network:
        raise T2LError(
            f"--host {host} opens the server to the network and no API key is set, so anyone who "
            "reaches the port could list, make and download adapters: add --api-key KEY (or set "
            "T2L_API_KEY), or pass --allow-no-key-on-network if that is what you want"
        )


def _draining_server():
    import threading

    import uvicorn

    class Draining(uvicorn.Server):
        """On the stop signal the engine stops admitting and gives running answers DRAIN_S seconds; what is still
        generating then ends as it stands (finish_reason 'length'), so every client gets its reply and uvicorn's
        wait for open requests ends."""

        def __init__(self, config, scheduler):
            super().__init__(config)
            self.scheduler = scheduler

        def handle_exit(self, sig, frame):
            if not self.should_exit:
                threading.Thread(target=self.scheduler.drain, args=(DRAIN_S,), daemon=True).start()
            super().handle_exit(sig, frame)

    return Draining
