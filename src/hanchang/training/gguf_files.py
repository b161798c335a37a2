"""GGUF in and out of training, with the `gguf` library (llama.cpp's own reader and writer).

- `write_lora`: a PEFT LoRA adapter as a GGUF LoRA adapter that llama.cpp loads beside its base
  (`general.type = adapter`, `adapter.type = lora`, `adapter.lora.alpha`, tensors named after
  the base's, `….lora_a` / `….lora_b`, laid out as llama.cpp expects: A is r×in, B is out×r).
- `write_model`: a transformers model as a GGUF base model (F32), with the tokenizer of an
  existing GGUF: how the tests build a tiny model of the embedded model's architecture.
- `architecture`: what a GGUF says it is, and how many blocks it has.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

PEFT_PREFIX = "base_model.model."
LORA_PARTS = {".lora_A.weight": ".lora_a", ".lora_B.weight": ".lora_b"}


def _gguf():
    import gguf

    return gguf


def _field_value(field: Any) -> Any:
    if hasattr(field, "contents"):
        return field.contents()
    return field.parts[field.data[0]].tolist()  # older gguf releases


def architecture(path: Path) -> tuple[str, int]:
    """The base's `general.architecture` and block count."""
    reader = _gguf().GGUFReader(str(path))
    arch = _field_value(reader.fields["general.architecture"])
    arch = arch if isinstance(arch, str) else bytes(arch).decode()
    return arch, int(_field_value(reader.fields[f"{arch}.block_count"]))


def _name_map(arch: str, blocks: int):
    gguf = _gguf()
    by_name = {name: key for key, name in gguf.MODEL_ARCH_NAMES.items()}
    if arch not in by_name:
        raise ValueError(f"llama.cpp does not know the architecture '{arch}'")
    return gguf.get_tensor_name_map(by_name[arch], blocks)


def gguf_tensor_name(hf_name: str, arch: str, blocks: int) -> str:
    """`model.layers.0.self_attn.q_proj.weight` -> `blk.0.attn_q.weight` (for `arch`)."""
    mapped = _name_map(arch, blocks).get_name(hf_name, try_suffixes=(".weight", ".bias"))
    if mapped is None:
        raise ValueError(f"no GGUF name for tensor '{hf_name}' of a {arch} model")
    return mapped


def lora_tensors(state: dict[str, Any], arch: str, blocks: int) -> dict[str, np.ndarray]:
    """A PEFT adapter's tensors under llama.cpp's names."""
    out: dict[str, np.ndarray] = {}
    for name, tensor in state.items():
        part = next((p for p in LORA_PARTS if name.endswith(p)), None)
        if part is None:
            raise ValueError(f"unexpected tensor '{name}' in a LoRA adapter (only lora_A/lora_B are exported)")
        base = name[:-len(part)].removeprefix(PEFT_PREFIX) + ".weight"
        array = tensor.detach().to("cpu").float().numpy() if hasattr(tensor, "detach") else np.asarray(tensor)
        out[gguf_tensor_name(base, arch, blocks) + LORA_PARTS[part]] = np.ascontiguousarray(array, dtype=np.float32)
    return out


def write_lora(state: dict[str, Any], alpha: float, arch: str, blocks: int, path: Path) -> str:
    """Write the adapter; its sha256."""
    gguf = _gguf()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(path.suffix + ".partial")
    writer = gguf.GGUFWriter(str(partial), arch=arch)
    writer.add_string("general.type", "adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", float(alpha))
    for name, array in sorted(lora_tensors(state, arch, blocks).items()):
        writer.add_tensor(name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    partial.replace(path)  # a reader never sees half a file
    return sha256_of(path)


def peft_folder(adapter: Path) -> Path:
    """Where the same adapter is kept in PEFT's format (for vLLM): beside the GGUF, without `.gguf`."""
    return adapter.with_suffix("")


def sha256_of(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


TOKENIZER_KEYS = ("tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.tokens", "tokenizer.ggml.token_type",
                  "tokenizer.ggml.merges", "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                  "tokenizer.ggml.padding_token_id", "tokenizer.ggml.add_bos_token", "tokenizer.chat_template")


def write_model(model: Any, tokenizer_from: Path, path: Path) -> None:
    """A Qwen2-family transformers model as an F32 GGUF llama.cpp and transformers both load,
    with the tokenizer (vocabulary, merges, chat template) copied from `tokenizer_from`."""
    gguf = _gguf()
    config = model.config
    arch = "qwen2"
    reader = gguf.GGUFReader(str(tokenizer_from))
    writer = gguf.GGUFWriter(str(path), arch=arch)
    writer.add_name("hanchang-tiny")
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_rope_freq_base(float(getattr(config, "rope_theta", None) or config.rope_parameters["rope_theta"]))
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    for key in TOKENIZER_KEYS:
        field = reader.fields.get(key)
        if field is None:
            continue
        value, kind = _field_value(field), field.types[0]
        if kind == gguf.GGUFValueType.ARRAY:
            writer.add_array(key, value)
        else:
            writer.add_key_value(key, value, kind)
    for name, tensor in model.state_dict().items():
        if name == "lm_head.weight" and config.tie_word_embeddings:
            continue
        writer.add_tensor(gguf_tensor_name(name, arch, config.num_hidden_layers),
                          np.ascontiguousarray(tensor.detach().float().numpy()))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
