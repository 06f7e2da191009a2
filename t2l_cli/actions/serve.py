"""What the web page of `t2l serve` shows and offers of an adapter beyond `t2l show` (its card, its files), and
what `t2l serve --engine vllm` hands vLLM."""

from pathlib import Path

from t2l_cli.actions.adapters import details, export_row
from t2l_cli.actions.common import card_name, open_registry, registered_hypernet
from t2l_cli.actions.publish import scores_for_card


def adapter_page(ref: str) -> dict:
    """adapter_details plus the model card `t2l publish` would write and the scores on it, for the web page."""
    from dataclasses import asdict

    from t2l.adapter import read_info
    from t2l.card import card

    reg = open_registry()
    row = reg.get_adapter(ref)
    data = details(reg, row)
    scores = scores_for_card(reg, row.id)
    info = read_info(reg.adapter_file(row))
    return data | {
        "card": card(info, card_name(row), scores, None) if info else None,
        "scores": [asdict(s) for s in scores],
    }


def adapter_download(ref: str) -> tuple[str, Path]:
    """(file name to offer, stored file, hash-checked) of a registered adapter's single-file form."""
    reg = open_registry()
    row = reg.get_adapter(ref)
    return f"{card_name(row)}.safetensors", reg.adapter_file(row)


def adapter_zip(ref: str) -> tuple[str, bytes]:
    """(file name, bytes) of a stored adapter's PEFT folder as a zip, the folder's name inside it."""
    import io
    import tempfile
    import zipfile

    reg = open_registry()
    row = reg.get_adapter(ref)
    name = card_name(row)
    buffer = io.BytesIO()
    with tempfile.TemporaryDirectory(prefix="t2l-zip-") as tmp:
        folder = export_row(reg, row, Path(tmp) / name, force=False)
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
            for p in sorted(folder.iterdir()):
                z.write(p, f"{name}/{p.name}")
    return f"{name}.zip", buffer.getvalue()


def vllm_settings(host: str, port: int, base: str | None, hypernet: str, max_batch: int, on_status):
    """vLLM's settings: the base's folder (dequantized once from a GGUF), a LoRA rank that holds the hypernetwork's
    adapters and every registered one of that base, a batch of `max_batch` adapters."""
    from t2l.base import base_folder
    from t2l.hypernet_files import read_hypernet_info
    from t2l_cli.server.vllm_launch import VLLMSettings

    reg = open_registry()
    info = read_hypernet_info(reg.hypernet_dir(registered_hypernet(reg, hypernet)))
    spec = base or info.base_spec
    folder, ref = base_folder(spec, on_status=on_status)
    ranks = [info.config.rank] + [r.rank for r in reg.list_adapters() if r.base_sha256 == ref.sha256]
    return VLLMSettings(
        folder=folder,
        served_name=ref.name,
        base_spec=spec,
        hypernet=hypernet,
        host=host,
        port=port,
        max_rank=max(ranks),
        max_loras=max_batch,
    )
