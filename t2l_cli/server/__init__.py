"""`t2l serve`: an OpenAI-compatible API and a web page over one loaded base model and the registry.

`service.py` holds what is loaded and answers in plain Python; `api.py` is the FastAPI app around it; `static/` is
the page (plain HTML, JS and CSS, shipped as package data)."""
