"""A stand-in for the few Hugging Face Hub endpoints that whoami, create_repo and upload_folder call: the real servers
cannot be reached from here. It answers every file as "regular" (inline base64 in the commit), keeps what arrives,
and checks the bearer token."""

import base64
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def card_errors(readme: str) -> list[str]:
    """What the Hub's metadata check would object to in a README's YAML front matter (the parts we write)."""
    import yaml

    if not readme.startswith("---\n"):
        return []
    try:
        meta = yaml.safe_load(readme.split("---\n")[1])
    except yaml.YAMLError as e:
        return [f"front matter is not YAML: {e}"]
    if not isinstance(meta, dict):
        return ["front matter is not a mapping"]
    errors = []
    for model in meta.get("model-index", []):
        for r in model.get("results", []):
            if not r.get("task", {}).get("type") or not r.get("dataset", {}).get("type"):
                errors.append("model-index results need task.type and dataset.type")
            if any("type" not in m or not isinstance(m.get("value"), (int, float)) for m in r.get("metrics", [])):
                errors.append("model-index metrics need a type and a numeric value")
    return errors


class FakeHub:
    def __init__(self, token: str, user: str = "alice"):
        self.token, self.user = token, user
        self.repos: dict[str, dict] = {}  # repo id -> {"private": bool, "files": {path: bytes}, "commits": [sha]}
        self.requests: list[tuple[str, str]] = []
        self.before_commit = None  # called when a commit arrives, before it is applied (a test may kill the client)
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def _reply(self, code: int, data: dict) -> None:
                body = json.dumps(data).encode()
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):  # the client was killed mid-request
                    pass

            def _authorized(self) -> bool:
                if self.headers.get("Authorization") == f"Bearer {hub.token}":
                    return True
                self._reply(401, {"error": "Invalid credentials in Authorization header"})
                return False

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def do_GET(self):
                hub.requests.append(("GET", self.path))
                if self.path.startswith("/api/whoami-v2") and self._authorized():
                    self._reply(200, {"type": "user", "name": hub.user, "auth": {"type": "access_token"}})
                elif not self.path.startswith("/api/whoami-v2"):
                    self._reply(404, {"error": "not found"})

            def do_POST(self):
                hub.requests.append(("POST", self.path))
                body = self._body()
                if not self._authorized():
                    return
                path = self.path.split("?")[0]
                if path == "/api/validate-yaml":
                    errors = card_errors(json.loads(body)["content"])
                    return self._reply(
                        400 if errors else 200, {"errors": [{"message": e} for e in errors], "warnings": []}
                    )
                if path == "/api/repos/create":
                    req = json.loads(body)
                    repo = f"{req.get('organization') or hub.user}/{req['name']}"
                    if repo in hub.repos:
                        return self._reply(
                            409,
                            {
                                "error": "You already created this model repo",
                                "url": f"http://{self.headers['Host']}/{repo}",
                            },
                        )
                    hub.repos[repo] = {"private": req.get("visibility") == "private", "files": {}, "commits": []}
                    return self._reply(200, {"url": f"http://{self.headers['Host']}/{repo}"})
                parts = path.split("/")  # /api/models/USER/NAME/(preupload|commit)/REV
                if len(parts) == 7 and parts[1:3] == ["api", "models"]:
                    repo = f"{parts[3]}/{parts[4]}"
                    if repo not in hub.repos:
                        return self._reply(404, {"error": "Repository not found"})
                    if parts[5] == "preupload":
                        files = json.loads(body)["files"]
                        return self._reply(
                            200,
                            {
                                "files": [
                                    {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files
                                ]
                            },
                        )
                    if parts[5] == "commit":
                        if hub.before_commit is not None:
                            hub.before_commit()
                        for line in body.splitlines():
                            item = json.loads(line)
                            if item["key"] == "file":
                                v = item["value"]
                                hub.repos[repo]["files"][v["path"]] = base64.b64decode(v["content"])
                        sha = hashlib.sha1(body).hexdigest()
                        hub.repos[repo]["commits"].append(sha)
                        return self._reply(
                            200, {"commitOid": sha, "commitUrl": f"http://{self.headers['Host']}/{repo}/commit/{sha}"}
                        )
                self._reply(404, {"error": "not found"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "FakeHub":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
