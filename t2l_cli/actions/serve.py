"""What the web page of `t2l serve` shows and offers of an adapter beyond `t2l show`: its card, its files."""

from pathlib import Path

from t2l_cli.actions.adapters import details, export_row
from t2l_cli.actions.common import card_name, open_registry
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
    return data | {"card": card(info, card_name(row), scores, None) if info else None,
                   "scores": [asdict(s) for s in scores]}


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
