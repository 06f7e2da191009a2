"""The serve verb: the OpenAI-compatible API and the web page over one loaded base model."""

from typing import Annotated, Optional

import typer

from t2l_cli.console import err, errors_to_exit
from t2l_cli.server.service import ServeSettings

app = typer.Typer()


@app.command()
@errors_to_exit
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on; 0.0.0.0 opens it to the network.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    api_key: Annotated[Optional[str], typer.Option(envvar="T2L_API_KEY", show_default=False,
                                                   help="Require 'Authorization: Bearer KEY' on every route but "
                                                        "/health and the page's files (or set T2L_API_KEY).")] = None,
    base: Annotated[Optional[str], typer.Option(help="Base model (default: the hypernetwork's own).")] = None,
    hypernet: Annotated[str, typer.Option(help="Hypernetwork for t2l:<description> models and POST /v1/adapters: "
                                          "'default', a checkpoint folder, or a registered name or id.")] = "default",
    device: Annotated[str, typer.Option(help="auto (a GPU when there is one), cpu, cuda or cuda:N.")] = "auto",
    max_batch: Annotated[int, typer.Option(min=1, help="Answers generated together, one row of the batch each (a "
                                           "request with n > 1 takes n); more wait, first come first served.")]
    = ServeSettings.max_batch,
    threads: Annotated[Optional[int], typer.Option(min=1, show_default=False, help="torch threads for the model "
                                                   "(default: torch's own choice, one per physical core, which "
                                                   "is fastest when the server has the machine to itself; fewer "
                                                   "leaves cores to other work).")] = None,
    cors_origin: Annotated[Optional[str], typer.Option(help="Let browser pages from this origin (e.g. "
                                                       "https://app.example) call the API; off by default.")] = None,
):
    """Serve adapters over an OpenAI-compatible API (and a web page at /): the base loaded once, answers generated
    together in one batch, each row with its own adapter."""
    import signal

    import uvicorn

    from t2l_cli.server.api import create_app
    from t2l_cli.server.service import Service

    settings = ServeSettings(base=base, hypernet=hypernet, device=device, max_batch=max_batch, threads=threads)
    with err.status("loading the base model"):
        service = Service(settings, on_status=err.log)
    err.print(f"serving {service.base_name} on http://{host}:{port}  (OpenAI API at http://{host}:{port}/v1"
              f"{', API key required' if api_key else ''}; up to {max_batch} answers at once); Ctrl-C stops")
    # uvicorn stops on SIGINT and SIGTERM, then re-sends the signal to the handler it found: a no-op one makes a
    # stop asked for a clean exit (status 0).
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: None)
    config = uvicorn.Config(create_app(service, api_key, cors_origin), host=host, port=port, log_level="warning",
                            timeout_graceful_shutdown=DRAIN_S + 2)
    _draining_server()(config, service.engine.scheduler).run()
    err.print("stopped")


DRAIN_S = 10  # seconds running answers get to finish once a stop is asked for


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
