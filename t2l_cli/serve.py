"""The serve verb: the OpenAI-compatible API and the web page over one loaded base model."""

from typing import Annotated, Optional

import typer

from t2l_cli.console import err, errors_to_exit

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
):
    """Serve adapters over an OpenAI-compatible API (and a web page at /): the base loaded once, adapters swapped
    per request, one answer generated at a time."""
    import signal

    import uvicorn

    from t2l_cli.server.api import create_app
    from t2l_cli.server.service import ServeSettings, Service

    with err.status("loading the base model"):
        service = Service(ServeSettings(base=base, hypernet=hypernet, device=device), on_status=err.log)
    err.print(f"serving {service.base_name} on http://{host}:{port}  (OpenAI API at http://{host}:{port}/v1"
              f"{', API key required' if api_key else ''}); Ctrl-C stops")
    # uvicorn stops on SIGINT and SIGTERM: it finishes the answers under way (at most 10 s), then re-sends the
    # signal to the handler it found. A no-op one makes a stop asked for a clean exit (status 0).
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: None)
    uvicorn.run(create_app(service, api_key), host=host, port=port, log_level="warning",
                timeout_graceful_shutdown=10)
    err.print("stopped")
