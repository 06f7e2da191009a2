"""The Text-to-LoRA authors' release (github.com/SakanaAI/text-to-lora): their hypernetworks, converted once into t2l's.

What they release is a run folder with `args.yaml` (the training arguments), `adapter_config.json` (the PEFT LoRA
config the hypernetwork emits for) and `hypermod.pt` (a `torch.save`d state dict); the weights of later steps sit in
subfolders (`checkpoints/it_N/hypermod.pt`, `checkpoint-*/`), whose configs are the run folder's, as their loader
reads them. `hypermod.pt` is a pickle: it is read once with `torch.load(weights_only=True)` (tensors and plain
containers only; anything that needs code is refused), its tensors are renamed to `t2l.hypermod.HyperMod`'s and
written as safetensors. Nothing of theirs is imported or executed. What is supported: docs/authors-release.md.
"""

import math
from dataclasses import dataclass
from pathlib import Path

from t2l.config import HyperModConfig, HypernetConfig, TargetSet
from t2l.errors import T2LError
from t2l.hashing import sha256_file

WEIGHTS, ARGS, PEFT = "hypermod.pt", "args.yaml", "adapter_config.json"

# Their parameter names -> ours (t2l.hypermod), for the parts that are plain renames; "{m}" is a module type.
_RENAMES = {
    "task_encoder.mlp.0": "task_encoder.0",
    "task_encoder.mlp.1": "task_encoder.1",
    "layer_depth_encoder.0": "layer_emb.0",
    "layer_depth_encoder.1": "layer_emb.1",
    "layer_type_encoder.0": "module_emb.0",
    "layer_type_encoder.1": "module_emb.1",
    "mixer.1": "mixer.0",
    "mixer.4": "mixer.2",
    "mlp1.mlp.0": "block1.ln",
    "mlp1.mlp.1": "block1.up",
    "mlp1.mlp.4": "block1.down",
    "mlp2.mlp.0": "block2.ln",
    "mlp2.mlp.1": "block2.up",
    "mlp2.mlp.4": "block2.down",
    "mlp3.0": "out_mlp.ln",
    "mlp3.1": "out_mlp.up",
    "mlp3.4": "out_mlp.down",
    "out_emb_norm": "ab_norm",
    "pos_emb.0": "rank_emb.0",
    "pos_emb.1": "rank_emb.1",
    "heads.{m}": "heads.{m}",
}
# Their stored LoRA-shaped tensors [layers, ...] -> our buffer prefix.
_STORED = {"AB_offset": "offset", "mean_recon_target": "mean", "std_recon_target": "std"}


@dataclass
class AuthorsRelease:
    weights: Path  # hypermod.pt
    run: Path  # the folder with args.yaml and adapter_config.json
    args: dict
    peft: dict


def find_release(path: Path) -> AuthorsRelease:
    """The release at `path`: hypermod.pt itself, its folder, or a step's subfolder (`checkpoints/it_N`) of a run."""
    import json

    import yaml

    path = Path(path).expanduser()
    weights = path if path.is_file() else path / WEIGHTS
    if not weights.is_file():
        inside = sorted(str(p.parent.relative_to(path)) for p in path.glob("*/**/" + WEIGHTS)) if path.is_dir() else []
        hint = f"; weights inside it: {', '.join(inside[:5])}" if inside else ""
        raise T2LError(f"{path} holds no {WEIGHTS}: give a Text-to-LoRA run folder{hint}")
    # Their loader takes the configs from the run folder above a step's subfolder (the path before
    # "checkpoint"); here: the nearest folder, from the weights' own upwards, that holds both.
    runs = [weights.parent, *list(weights.parent.parents)[:2]]
    run = next((r for r in runs if (r / ARGS).is_file() and (r / PEFT).is_file()), weights.parent)
    missing = [n for n in (ARGS, PEFT) if not (run / n).is_file()]
    if missing:
        raise T2LError(
            f"{run} lacks {' and '.join(missing)}, which a Text-to-LoRA run keeps beside {WEIGHTS} "
            "(or in the run folder above a step's subfolder)"
        )
    try:
        args = yaml.safe_load((run / ARGS).read_text())
        peft = json.loads((run / PEFT).read_text())
    except (yaml.YAMLError, ValueError) as e:
        raise T2LError(f"cannot read the configs in {run} ({type(e).__name__}: {str(e).splitlines()[0]})") from None
    if not isinstance(args, dict) or not isinstance(peft, dict):
        raise T2LError(f"{run / ARGS} and {run / PEFT} must each hold a mapping")
    return AuthorsRelease(weights, run, args, peft)


def read_state(weights: Path) -> dict:
    """The tensors of hypermod.pt, unpickled with weights_only=True: a pickle that needs code is refused."""
    import pickle

    import torch

    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - bytes that are no pickle fail anywhere in the unpickler (KeyError, ...)
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if not isinstance(e, (pickle.UnpicklingError, RuntimeError, EOFError, OSError)):
            first = f"{type(e).__name__}: {first}; is it a torch.save file?"
        raise T2LError(
            f"{weights} is not a plain state dict (weights_only load refused it: {first}); "
            "t2l reads only tensors from a pickle and never runs code from one"
        ) from None
    if not isinstance(state, dict) or not all(isinstance(k, str) and torch.is_tensor(v) for k, v in state.items()):
        raise T2LError(f"{weights} does not hold a state dict of named tensors")
    return state


def _refuse(ck: AuthorsRelease, why: str, what: str = "t2l cannot import it") -> T2LError:
    return T2LError(f"{ck.run / ARGS}: {why}; {what}")


def hypernet_config(ck: AuthorsRelease, state: dict) -> HypernetConfig:
    """Our config for their hypernetwork, from args.yaml, adapter_config.json and the tensors' shapes; a clear error
    for every option t2l does not reproduce, and for a config whose fields are missing or of the wrong type."""
    if "r" not in ck.peft:
        raise T2LError(f"{ck.run / PEFT} has no 'r' (the LoRA rank the hypernetwork emits); restore the run's {PEFT}")
    try:
        return _config(ck, state)
    except (KeyError, TypeError, ValueError, AttributeError) as e:  # a field missing, or of the wrong type
        raise T2LError(
            f"the configs in {ck.run} do not describe a Text-to-LoRA run ({type(e).__name__}: {e}); "
            f"restore the run's {ARGS} and {PEFT}"
        ) from None


def _config(ck: AuthorsRelease, state: dict) -> HypernetConfig:
    a, p = ck.args, ck.peft
    if a.get("exp_setup", "hyper_lora") != "hyper_lora" or p.get("peft_type", "LORA").upper() != "LORA":
        raise _refuse(
            ck,
            f"exp_setup {a.get('exp_setup')!r} / peft_type {p.get('peft_type')!r} is not hyper_lora "
            "with a LoRA output (VeRA output is deprecated in their code too)",
        )
    if a.get("use_one_hot_task_emb"):
        raise _refuse(ck, "use_one_hot_task_emb: it reads task ids, not descriptions")
    if a.get("encoder_type", "linear") != "linear":
        raise _refuse(ck, f"encoder_type {a['encoder_type']!r} (only 'linear', the released one, is supported)")
    if a.get("training_task", "sft") not in ("sft", "recon"):
        raise _refuse(ck, f"training_task {a['training_task']!r} is neither sft nor recon")
    targets = p.get("target_modules")
    if not isinstance(targets, list) or not targets or not all(isinstance(t, str) for t in targets):
        raise _refuse(
            ck, "adapter_config.json's target_modules is not a list of module names (a regex is not supported)"
        )
    if "task_encoder.mlp.0.weight" not in state:
        raise _refuse(ck, f"{WEIGHTS} has no task encoder (task_encoder.mlp.0.weight)")
    recon = a.get("training_task", "sft") == "recon"
    factorized, z_score = bool(a.get("factorized", False)), bool(a.get("pred_z_score", True))
    if recon and not factorized and z_score:
        raise _refuse(ck, "recon with pred_z_score and not factorized", "their own code refuses it too")
    rank = int(p["r"])
    alpha = float(p.get("lora_alpha", 8))
    if p.get("use_rslora", False):
        alpha *= math.sqrt(rank)  # rsLoRA scales by alpha / sqrt(r); the same delta-W as plain alpha * sqrt(r) / r
    latent = int(a.get("hypernet_latent_size", 128))
    hm = HyperModConfig(
        latent_size=latent,
        head_in_size=int(a.get("head_in_size", 512)),
        head_bias=f"heads.{targets[0]}.bias" in state,
        shared_ab_head=bool(a.get("shared_AB_head", False)),
        rank_at_a_time=bool(a.get("autoreg_gen", False)),
        rank_position="learned" if a.get("learnable_pos_emb", False) else "rope",
        z_score=recon and factorized and z_score,
        output_scale=1.0 if not recon or factorized else 1.0 / math.sqrt(float(a.get("delta_w_scaling", 10000))),
    )
    variant = ("S" if hm.rank_at_a_time else "M") if hm.shared_ab_head else "L"
    return HypernetConfig(
        variant=variant,
        rank=rank,
        alpha=alpha,
        dropout=float(p.get("lora_dropout", 0.0)),
        target_modules=tuple(targets),
        embed_dim=state["task_encoder.mlp.0.weight"].shape[1],
        hypermod=hm,
    )


def convert_state(state: dict, config: HypernetConfig, targets: TargetSet) -> dict:
    """Their state dict -> HyperMod's, checked name for name and shape for shape."""
    import torch

    from t2l.hypermod import HyperMod

    model = HyperMod(config, targets)
    want = model.state_dict()
    out, used = {}, set()
    modules = config.target_modules
    assert config.hypermod is not None  # HyperMod(config, ...) above needs it too
    for theirs, ours in _RENAMES.items():
        for m in modules if "{m}" in theirs else [None]:
            for p in ("weight", "bias"):
                key = f"{theirs.format(m=m)}.{p}"
                if key in state and f"{ours.format(m=m)}.{p}" in want:
                    out[f"{ours.format(m=m)}.{p}"] = state[key]
                    used.add(key)
    for m in modules if config.hypermod.shared_ab_head else []:
        out[f"ab_emb.{m}"] = torch.stack([state[f"out_emb.{m}.A"], state[f"out_emb.{m}.B"]])
        used |= {f"out_emb.{m}.A", f"out_emb.{m}.B"}
    for theirs, ours in _STORED.items():
        for m in modules:
            layers = [t.layer for t in targets.of(m)]
            for ab in "AB":
                key = f"{theirs}.{ab}.{m}"
                if key in state and f"{ours}_{ab}_{m}" in want:
                    out[f"{ours}_{ab}_{m}"] = state[key][layers]
                if key in state:
                    used.add(key)  # mean/std of an SFT hypernetwork are unused zeros in their code too
    unknown = sorted(k for k in state if k not in used and not k.endswith("inv_freq"))
    missing = sorted(k for k in want if k not in out)
    if unknown or missing:
        raise T2LError(
            f"the hypernetwork does not match the architecture its args.yaml describes (unexpected "
            f"{unknown[:3]}, missing {missing[:3]}); t2l cannot import it"
        )
    for k, v in out.items():
        if v.shape != want[k].shape:
            raise T2LError(
                f"{k}: the hypernetwork's tensor has shape {tuple(v.shape)}, the base model needs "
                f"{tuple(want[k].shape)}; is --base the model it was trained for?"
            )
    return {k: v.float().contiguous() for k, v in out.items()}


def import_release(path: Path, dest: Path, *, base: str | None = None, encoder: str | None = None, on_status=None):
    """Convert the authors' hypernetwork at `path` into a t2l hypernetwork folder `dest`; its HypernetInfo.

    `base` and `encoder` default to the models its args.yaml names (Hub ids are downloaded when online, else taken
    from the Hugging Face cache); the base is read for its layer shapes only."""
    from transformers import AutoConfig

    from t2l.base import base_folder
    from t2l.hypernet_files import save_hypernet
    from t2l.encoder import encoder_folder
    from t2l.hypermod import HyperMod
    from t2l.locate import quiet_transformers
    from t2l.targets import targets_from_config

    ck = find_release(path)
    emb_model = ck.args.get("emb_model") or ""
    if not emb_model:
        raise _refuse(
            ck,
            "emb_model is empty: it embeds descriptions with the base model itself (last-token pooling)",
            "t2l supports only the gte-large-en-v1.5 encoder the released hypernetworks use",
        )
    if "gte" not in emb_model:
        raise _refuse(
            ck,
            f"emb_model {emb_model!r} is not a gte encoder (their code pools gte by CLS; others, "
            "e.g. SFR, by last token with a prompt template)",
            "t2l supports the gte encoders only",
        )
    state = read_state(ck.weights)
    config = hypernet_config(ck, state)
    base_spec = base or _named_base(ck)
    if on_status:
        on_status(f"reading base model {base_spec} for its layer shapes")
    quiet_transformers()
    try:
        base_dir, base_ref = base_folder(base_spec)
    except T2LError as e:
        if base:
            raise
        raise T2LError(f"{e} (the base model that {ck.run / ARGS} names); pass --base with it") from None
    targets = targets_from_config(AutoConfig.from_pretrained(base_dir), config.target_modules)
    ours = convert_state(state, config, targets)
    enc_spec = encoder or emb_model
    enc_dir, enc_ref = encoder_folder(enc_spec)
    dim = _hidden_size(enc_dir)
    if dim != config.embed_dim:
        raise T2LError(
            f"the encoder {enc_ref.name} gives {dim}-dim embeddings, the hypernetwork reads "
            f"{config.embed_dim}; pass the encoder it was trained with (--encoder)"
        )
    model = HyperMod(config, targets)
    model.load_state_dict(ours)
    training = {
        "recipe": f"authors-{ck.args.get('training_task', 'sft')}",
        "source": {
            "format": "text-to-lora hypermod.pt",
            "path": str(ck.weights.resolve()),
            "sha256": sha256_file(ck.weights),
            "model_dir": ck.args.get("model_dir"),
            "emb_model": emb_model,
            "adapter_config": ck.peft,
            "args": {k: ck.args.get(k) for k in _ARGS_KEPT if k in ck.args},
        },
    }
    return save_hypernet(
        model,
        dest,
        base=base_ref,
        base_spec=base_spec,
        encoder=enc_ref,
        encoder_spec=enc_spec,
        pooling="cls",
        training=training,
        encoder_style="authors",
    )


def _named_base(ck: AuthorsRelease) -> str:
    """The base model the run names (model_dir, or adapter_config.json's base_model_name_or_path), one that is a
    local folder first."""
    names = [n for n in (ck.args.get("model_dir"), ck.peft.get("base_model_name_or_path")) if n]
    if not names:
        raise _refuse(ck, "neither model_dir nor adapter_config.json names the base model", "pass --base")
    return next((n for n in names if Path(n).expanduser().is_dir()), names[0])


# args.yaml fields that decide the architecture or describe the run, kept in the converted config.json
_ARGS_KEPT = (
    "training_task",
    "exp_setup",
    "encoder_type",
    "hypernet_latent_size",
    "head_in_size",
    "shared_AB_head",
    "autoreg_gen",
    "learnable_pos_emb",
    "pred_z_score",
    "factorized",
    "delta_w_scaling",
    "mt_lora_path",
    "target_modules",
    "n_train_ds",
    "epochs",
    "lr",
    "seed",
)


def _hidden_size(folder: Path) -> int:
    from t2l.locate import read_json

    return int(read_json(folder / "config.json")["hidden_size"])
