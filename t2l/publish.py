"""Publishing an adapter to the Hugging Face Hub: a Hub-ready folder, then create_repo + upload_folder.

The token is huggingface_hub's business: it reads `HF_TOKEN` or the user's `hf auth login`; it is never passed
through t2l's output, logs or registry.
"""

import os
import re
from dataclasses import dataclass
from pathlib import Path

from t2l.adapter import read_info, weights_file
from t2l.card import Score, card, outside_peft_config
from t2l.errors import T2LError
from t2l.export import write_peft_folder


@dataclass(frozen=True)
class Published:
    repo_id: str
    commit: str
    url: str


def hub_folder(adapter: Path, dest: Path, name: str, scores: list[Score], repo_id: str | None = None) -> Path:
    """Write the Hub-ready folder (adapter_config.json, adapter_model.safetensors, README.md) to `dest`, whole or
    not at all."""
    info = read_info(adapter)
    if info is None:
        raise T2LError(f"{adapter} carries no t2l metadata; publish adapters made by t2l (see `t2l ls`)")
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise T2LError(f"{dest} exists and is not empty; choose a new folder")
    config = outside_peft_config(info)
    # the stored bytes as they are: what was hashed and registered is what gets published
    write_peft_folder(dest, weights_file(adapter).read_bytes(), config, card(info, name, scores, repo_id))
    return dest


_REPO_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")


def repo_name(name: str) -> str:
    """An adapter name as a Hub repo name: letters, digits, '-', '_' and '.' only."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "t2l-adapter"
    return cleaned[:96]


def validate_repo_id(repo_id: str) -> str:
    parts = repo_id.split("/")
    if len(parts) != 2 or not all(_REPO_PART.match(p) for p in parts) or ".." in repo_id:
        raise T2LError(f"invalid repo id {repo_id!r}: use USER/NAME with letters, digits, '-', '_' or '.'")
    return repo_id


def hub_user() -> str:
    """The logged-in Hub user's name (from HF_TOKEN or `hf auth login`)."""
    from huggingface_hub.errors import HfHubHTTPError, LocalTokenNotFoundError

    try:
        return _api().whoami()["name"]
    except LocalTokenNotFoundError:
        raise T2LError(
            "not logged in to the Hugging Face Hub: run `hf auth login` or set HF_TOKEN, or pass "
            "--repo-id and --to-dir to write the folder only"
        ) from None
    except HfHubHTTPError as e:
        raise T2LError(f"the Hub refused the token ({_status(e)}); log in again with `hf auth login`") from None
    except (ConnectionError, _transport_error()) as e:
        raise _unreachable(e) from None


def upload(folder: Path, repo_id: str, private: bool = False) -> Published:
    """Create the repo if needed and commit the folder to it; publishing again updates the same repo."""
    from huggingface_hub.errors import HfHubHTTPError

    api = _api()
    try:
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        commit = api.upload_folder(
            repo_id=repo_id,
            folder_path=str(folder),
            repo_type="model",
            commit_message="Upload adapter made with t2l (Text-to-LoRA)",
        )
    except HfHubHTTPError as e:
        raise T2LError(
            f"upload to {repo_id} failed ({_status(e)}); check the repo id and that your token may write to it"
        ) from None
    except (ConnectionError, _transport_error()) as e:
        raise _unreachable(e) from None
    return Published(repo_id, commit.oid, f"{api.endpoint}/{repo_id}")


def _api():
    """The Hub client; HF_ENDPOINT is read now, not when huggingface_hub was first imported."""
    from huggingface_hub import HfApi

    return HfApi(endpoint=os.environ.get("HF_ENDPOINT") or None)


def _transport_error() -> type[Exception]:
    """The network error of the HTTP client huggingface_hub speaks (httpx in 1.x, httpx2 in 2.x)."""
    from huggingface_hub.utils import _http

    client = getattr(_http, "httpx2", None) or getattr(_http, "httpx", None)
    return client.TransportError if client is not None else OSError


def _unreachable(e: Exception) -> T2LError:
    from huggingface_hub.errors import OfflineModeIsEnabled

    if isinstance(e, OfflineModeIsEnabled):
        return T2LError("HF_HUB_OFFLINE is set: unset it to publish, or write the folder with --to-dir")
    return T2LError(
        f"cannot reach the Hub at {_api().endpoint} ({type(e).__name__}); check your connection or "
        "HF_ENDPOINT, or write the folder with --to-dir"
    )


def _status(e) -> str:
    """The HTTP status of a Hub error, without the request (whose headers carry the token)."""
    response = getattr(e, "response", None)
    return f"HTTP {response.status_code}" if response is not None else type(e).__name__
