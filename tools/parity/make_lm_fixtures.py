"""Reference fixtures for medvqa's text decoders and vision-language models (crates/model).

Trains two tiny BPE tokenizers (a Gemma-style one and a Llama/LLaVA-style one) on a small
built-in English + radiology corpus, builds tiny randomly initialised `LlamaForCausalLM`,
`Qwen2ForCausalLM`, `Gemma3ForCausalLM`, `Gemma3ForConditionalGeneration` and
`LlavaForConditionalGeneration` models from transformers config classes (nothing is
downloaded), saves each as a complete HuggingFace folder (weights, config, generation config,
tokenizer, chat template, processor files) and writes seeded inputs with the reference logits,
image features and greedy generations. It also records how the real processors render chat
templates and expand image placeholders (`prompt_cases.json`). README.md beside this file
describes every folder and the tolerances.

    /tmp/parity-venv/bin/python tools/parity/make_lm_fixtures.py
    # ~100M-parameter Llama- and Gemma-3-shaped decoders for the benchmark (not committed):
    /tmp/parity-venv/bin/python tools/parity/make_lm_fixtures.py --big /tmp/lm-big

Every folder is re-loaded with `from_pretrained` at the end and must reproduce its expected
outputs bit for bit; the script exits non-zero otherwise.
"""

import argparse
import json
import math
import pathlib
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import PIL
import PIL.Image
import safetensors
import safetensors.torch
import tokenizers
import torch
import transformers
from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import (
    CLIPImageProcessor,
    CLIPVisionConfig,
    Gemma3Config,
    Gemma3ForCausalLM,
    Gemma3ForConditionalGeneration,
    Gemma3ImageProcessor,
    Gemma3Processor,
    Gemma3TextConfig,
    GemmaTokenizerFast,
    LlamaConfig,
    LlamaForCausalLM,
    LlamaTokenizerFast,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    Qwen2Config,
    Qwen2ForCausalLM,
    SiglipVisionConfig,
)

REPO = pathlib.Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO / "crates/model/tests/fixtures/lm"
SEED = 20261123

# transformers 5.x, used to write the `*_v5` folders (tools/parity/requirements-v5.txt).
V5_PYTHON = "/tmp/parity-venv5/bin/python"
# Files a 5.x save_pretrained of the model writes; everything else in a `_v5` folder
# (tokenizer, processor, inputs, expected) is copied from its 4.x twin.
V5_MODEL_FILES = ("config.json", "generation_config.json", "model.safetensors",
                  "model.safetensors.index.json")

# Greedy generation length of every fixture.
NEW_TOKENS = 8
# A greedy step whose best two logits are closer than this is decided by rounding, not by the
# model; the script refuses such fixtures (the Rust side must reproduce the tokens exactly).
MIN_MARGIN = 3e-3
# ... and each row's greedy continuation must hold this many distinct tokens.
MIN_DISTINCT = 4

# ---------------------------------------------------------------------------------------------
# Chat templates, verbatim as published (the Jinja source after JSON decoding).
#
# google/gemma-3-4b-it and google/medgemma-4b-it, tokenizer_config.json "chat_template" (also
# their chat_template.json). Inside Jinja string literals `\n` is a Jinja escape, so the Python
# source below keeps it as backslash-n (a raw string).
GEMMA3_CHAT_TEMPLATE = r"""{{ bos_token }}
{%- if messages[0]['role'] == 'system' -%}
    {%- if messages[0]['content'] is string -%}
        {%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}
    {%- else -%}
        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' -%}
    {%- endif -%}
    {%- set loop_messages = messages[1:] -%}
{%- else -%}
    {%- set first_user_prefix = "" -%}
    {%- set loop_messages = messages -%}
{%- endif -%}
{%- for message in loop_messages -%}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}
        {{ raise_exception("Conversation roles must alternate user/assistant/user/assistant/...") }}
    {%- endif -%}
    {%- if (message['role'] == 'assistant') -%}
        {%- set role = "model" -%}
    {%- else -%}
        {%- set role = message['role'] -%}
    {%- endif -%}
    {{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else "") }}
    {%- if message['content'] is string -%}
        {{ message['content'] | trim }}
    {%- elif message['content'] is iterable -%}
        {%- for item in message['content'] -%}
            {%- if item['type'] == 'image' -%}
                {{ '<start_of_image>' }}
            {%- elif item['type'] == 'text' -%}
                {{ item['text'] | trim }}
            {%- endif -%}
        {%- endfor -%}
    {%- else -%}
        {{ raise_exception("Invalid content type") }}
    {%- endif -%}
    {{ '<end_of_turn>\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{'<start_of_turn>model\n'}}
{%- endif -%}
"""

# llava-hf/llava-1.5-7b-hf, chat_template.json "chat_template" (one line as published;
# `{% generation %}` is transformers' extension for assistant-token masks).
LLAVA_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() + ': '}}"
    "{% endif %}{# Render all images first #}{% for content in message['content'] | selectattr('type', "
    "'equalto', 'image') %}{{ '<image>\\n' }}{% endfor %}{# Render all text next #}{% if message['role'] "
    "!= 'assistant' %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ content['text'] + ' '}}{% endfor %}{% else %}{% for content in message['content'] | "
    "selectattr('type', 'equalto', 'text') %}{% generation %}{{ content['text'] + ' '}}{% endgeneration %}"
    "{% endfor %}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)

# ---------------------------------------------------------------------------------------------
# Tokenizer training corpus: plain English plus radiology report language, with a few
# non-ASCII characters (others, such as CJK, are left out on purpose so they go through byte
# fallback).
CORPUS = """\
The chest radiograph shows no acute cardiopulmonary abnormality.
There is a small left pleural effusion with adjacent atelectasis.
The heart size is normal. The mediastinum is not widened.
No pneumothorax is seen. The lungs are clear bilaterally.
A 6 mm nodule is present in the right upper lobe.
Is there evidence of pneumonia in the left lower lobe?
Yes. No. Maybe. The answer is yes. The answer is no.
What organ is shown in this image? The liver. The kidney. The brain.
Axial CT of the abdomen with contrast shows a hypodense lesion in the liver.
MRI of the brain: T2 hyperintense lesions in the periventricular white matter.
Is the abnormality on the left or the right side of the patient?
The fracture of the distal radius is displaced by 3 mm.
Compared with the prior study, the opacity has increased in size.
The patient is a 54 year old woman with cough and fever for 10 days.
Findings: the cardiomediastinal silhouette is within normal limits.
Impression: right middle lobe consolidation, likely pneumonia.
There is no free air under the diaphragm.
The endotracheal tube terminates 4 cm above the carina.
Please describe the image. Describe the findings in one sentence.
You are an expert radiologist. Answer the question about the image.
How many lesions are visible? Two lesions are visible.
Which plane is this image taken in? Axial. Coronal. Sagittal.
The ventricles are mildly enlarged. Midline shift of 5 mm to the right.
Hello world! This is a small test of the tokenizer, with numbers 0 1 2 3 4 5 6 7 8 9.
Temperature 38.5 °C, saturation 94 %, dose 2.5 µSv, size 12 × 8 mm.
Ménétrier disease is rare; café-au-lait spots are not seen → normal skin.
Slice 1 of 12. SLICE 2. SLICE 3. Window: lung, mediastinum, bone.
Question: is this a CT or an MRI? Answer: it is a CT scan of the chest.
user model user model system USER: ASSISTANT: USER: ASSISTANT: image image
"""

GEMMA_SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>",
                  "<start_of_image>", "<end_of_image>"]
# Gemma 3 puts <image_soft_token> after the base vocabulary (id 262144); so does the tiny one.
GEMMA_IMAGE_TOKEN = "<image_soft_token>"
GEMMA_END_OF_TURN_ID = GEMMA_SPECIALS.index("<end_of_turn>")
LLAVA_SPECIALS = ["<unk>", "<s>", "</s>"]
# llava-hf/llava-1.5 adds <image> (32000) and <pad> (32001) after the Llama 2 vocabulary.
LLAVA_ADDED = ["<image>", "<pad>"]


def generator(tag):
    """A torch generator seeded from SEED and a tag, so adding a fixture changes no other one."""
    return torch.Generator().manual_seed(
        SEED + sum(ord(c) * 131 ** i for i, c in enumerate(tag)) % 2**31)


def train_bpe(style):
    """Train a byte-fallback BPE like SentencePiece's (pieces start with ▁ at word starts).

    Returns (vocab dict, merges) with ids laid out as the real checkpoints do: special tokens
    first, then the 256 `<0xXX>` byte tokens, then the learned pieces.
    """
    trainer_tok = Tokenizer(models.BPE())
    trainer_tok.normalizer = normalizers.NFC()
    trainer_tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.BpeTrainer(vocab_size=170, min_frequency=2, show_progress=False,
                                  special_tokens=[])
    trainer_tok.train_from_iterator(CORPUS.splitlines(), trainer)
    learned = json.loads(trainer_tok.to_str())["model"]
    specials = GEMMA_SPECIALS if style == "gemma" else LLAVA_SPECIALS
    vocab = {}
    for t in specials:
        vocab[t] = len(vocab)
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in learned["merges"]]
    if style == "gemma":
        # Gemma's vocabulary has newline runs as ordinary pieces ("\n" is 107, "\n\n" 108 in
        # gemma-3), which its chat template and image sequence ("\n\n<start_of_image>") use.
        # Llama 2 has no such piece: "\n" is the byte token <0x0A> (id 13 there and here).
        for piece in ("\n", "\n\n"):
            vocab[piece] = len(vocab)
        merges.insert(0, ("\n", "\n"))
    for piece, _ in sorted(learned["vocab"].items(), key=lambda kv: kv[1]):
        if piece not in vocab:
            vocab[piece] = len(vocab)
    return vocab, merges


def build_tokenizer(style):
    """The tiny tokenizer as a transformers fast tokenizer (tokenizer.json + config)."""
    vocab, merges = train_bpe(style)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True,
                               fuse_unk=True))
    if style == "gemma":
        # As google/gemma-3-*: spaces become ▁, no prefix space, no pre-tokenizer splitting.
        tok.normalizer = normalizers.Replace(" ", "▁")
        tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(),
                                         decoders.Fuse()])
        tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                                for t in GEMMA_SPECIALS + [GEMMA_IMAGE_TOKEN]])
        fast = GemmaTokenizerFast(
            tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", unk_token="<unk>",
            pad_token="<pad>", add_bos_token=True, add_eos_token=False, padding_side="left",
            additional_special_tokens=["<start_of_turn>", "<end_of_turn>"],
            extra_special_tokens={"boi_token": "<start_of_image>", "eoi_token": "<end_of_image>",
                                  "image_token": GEMMA_IMAGE_TOKEN},
            chat_template=GEMMA3_CHAT_TEMPLATE, model_max_length=1024)
    else:
        # As llava-hf/llava-1.5-7b-hf (Llama 2, "legacy" SentencePiece behaviour): a ▁ is
        # prepended to the text, spaces become ▁, and the decoder strips the first space.
        tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"),
                                               normalizers.Replace(" ", "▁")])
        tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(),
                                         decoders.Fuse(), decoders.Strip(" ", 1, 0)])
        tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                                for t in LLAVA_SPECIALS + LLAVA_ADDED])
        fast = LlamaTokenizerFast(
            tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
            pad_token="<pad>", add_bos_token=True, add_eos_token=False, padding_side="left",
            legacy=True, extra_special_tokens={"image_token": "<image>"},
            chat_template=LLAVA_CHAT_TEMPLATE, model_max_length=1024)
    return fast


# ---------------------------------------------------------------------------------------------
# Random weights.

def randomize(model, tag, gemma_norms):
    """Replace every parameter with seeded random values.

    Linear weights get std 1/sqrt(fan_in) so each layer changes the residual stream by O(1);
    embeddings std 1 (untied) or 0.5/sqrt(hidden) when tied to the LM head, so logits stay O(1).
    Norm weights are random too: around 0 for Gemma (it multiplies by 1 + w, so a dropped
    `1 +` shows), around 1 elsewhere; every bias is random.
    """
    g = generator(tag)
    tied = getattr(model.config.get_text_config(), "tie_word_embeddings", False) or \
        getattr(model.config, "tie_word_embeddings", False)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                v = 0.1 * torch.randn(p.shape, generator=g)
            elif "norm" in name and p.dim() == 1:
                centre = 0.0 if gemma_norms(name) else 1.0
                v = centre + 0.3 * torch.randn(p.shape, generator=g)
            elif name.endswith("position_embedding.weight") or name.endswith("class_embedding"):
                v = 0.5 * torch.randn(p.shape, generator=g)
            elif name.endswith("embed_tokens.weight"):
                # tied: 0.5/sqrt(hidden), so the last token's own embedding (√hidden-scaled
                # in Gemma) does not dominate the residual and the logits of every step
                std = 0.5 / math.sqrt(p.shape[1]) if tied else 1.0
                v = std * torch.randn(p.shape, generator=g)
            elif p.dim() >= 2:
                fan_in = math.prod(p.shape[1:])
                v = torch.randn(p.shape, generator=g) / math.sqrt(fan_in)
            else:
                v = 0.5 * torch.randn(p.shape, generator=g)
            p.copy_(v.to(p.dtype))
    return model


def save_tensors(path, tensors):
    safetensors.torch.save_file({k: v.contiguous() for k, v in tensors.items()}, str(path),
                                metadata={"format": "pt"})


# ---------------------------------------------------------------------------------------------
# Inputs.

CAUSAL_PROMPTS = {
    # (row 0, row 1): row 1 is shorter and gets left-padded to row 0's length.
    "llama_causal": ("The chest radiograph shows a small left pleural effusion.",
                     "Is there pneumonia?"),
    "qwen2_causal": ("Axial CT shows a hypodense lesion in the liver.",
                     "What organ is shown?"),
    "gemma3_causal": ("Findings: the heart size is normal. No pneumothorax.",
                      "Which plane is this?"),
}


def left_pad(rows, pad_id):
    """Stack token lists into [B, S] input_ids / attention_mask, padding on the left."""
    s = max(len(r) for r in rows)
    ids = torch.full((len(rows), s), pad_id, dtype=torch.int64)
    mask = torch.zeros((len(rows), s), dtype=torch.int64)
    for i, r in enumerate(rows):
        ids[i, s - len(r):] = torch.tensor(r, dtype=torch.int64)
        mask[i, s - len(r):] = 1
    return ids, mask


# ---------------------------------------------------------------------------------------------
# Reference outputs.

def reference_outputs(model, inputs):
    """logits of the prompt and the greedy continuation, with the per-step top-2 margin.

    The forward pass gets no position_ids (transformers then uses 0..S-1 for every row,
    padding included); generate() derives position_ids = cumsum(mask) - 1 itself. Generation
    runs with min_new_tokens = max_new_tokens = NEW_TOKENS, which masks EOS; the script checks
    that the raw argmax of every step is the generated token, i.e. the masking never changed
    a choice and the result is plain greedy decoding.
    """
    fwd = {k: v for k, v in inputs.items()}
    with torch.no_grad():
        out = model(**fwd)
        res = {"logits": out.logits.to(torch.float32)}
        if "pixel_values" in inputs:
            # the projector output per image, [n_images, tokens, hidden] (Llava's forward
            # returns it flattened)
            feats = model.get_image_features(pixel_values=inputs["pixel_values"])
            if hasattr(feats, "pooler_output"):
                # transformers 5.x returns the vision output with the projected features
                # as pooler_output
                feats = feats.pooler_output
            if isinstance(feats, (list, tuple)):
                feats = torch.stack(list(feats))
            n = inputs["pixel_values"].shape[0]
            res["image_features"] = feats.reshape(n, -1, feats.shape[-1]).to(torch.float32)
        gen = model.generate(**fwd, do_sample=False, max_new_tokens=NEW_TOKENS,
                             min_new_tokens=NEW_TOKENS, return_dict_in_generate=True,
                             output_logits=True)
    s = inputs["input_ids"].shape[1]
    new = gen.sequences[:, s:]
    if new.shape[1] != NEW_TOKENS:
        sys.exit(f"generate returned {new.shape[1]} new tokens, wanted {NEW_TOKENS}")
    steps = torch.stack(gen.logits, dim=1).to(torch.float32)  # [B, N, vocab], raw
    top2 = steps.topk(2, dim=-1)
    margins = top2.values[..., 0] - top2.values[..., 1]
    if not torch.equal(top2.indices[..., 0], new):
        # a stop token was the raw argmax somewhere and min_new_tokens masked it: not plain
        # greedy decoding; report it as a zero margin so the caller redraws the weights
        margins = torch.zeros_like(margins)
    # The prompt's last-position logits must agree with generate's first step.
    first = (res["logits"][:, -1] - steps[:, 0]).abs().max().item()
    if first > 1e-4:
        sys.exit(f"forward and generate disagree on the first step by {first}")
    res["generated_ids"] = new.to(torch.int64)
    return res, margins.min().item()


def set_generation_config(model):
    """Gemma 3 instruction models stop on <eos> and <end_of_turn> and sample by default
    (google/gemma-3-4b-it generation_config.json: eos_token_id [1, 106], do_sample true,
    top_k 64, top_p 0.95; its cache_implementation "hybrid" is left out). LLaVA-1.5's has
    only bos/eos/pad, which transformers derives from config.json."""
    if model.config.model_type in ("gemma3", "gemma3_text"):
        gc = model.generation_config
        gc.eos_token_id = [model.config.get_text_config().eos_token_id, GEMMA_END_OF_TURN_ID]
        gc.do_sample, gc.top_k, gc.top_p = True, 64, 0.95


def check_special_ids(folder, tok):
    """config.json's token ids (top level and text_config) name the tokenizer's tokens."""
    cfg = json.loads((folder / "config.json").read_text())
    want = {"bos_token_id": tok.bos_token, "eos_token_id": tok.eos_token,
            "pad_token_id": tok.pad_token}
    for key, token in want.items():
        for scope in (cfg, cfg.get("text_config", {})):
            if key in scope and scope[key] is not None and scope[key] != tok.convert_tokens_to_ids(token):
                sys.exit(f"{folder}/config.json: {key} {scope[key]} is not {token!r}")
    images = {"image_token_index": tok.image_token if hasattr(tok, "image_token") else None,
              "boi_token_index": getattr(tok, "boi_token", None),
              "eoi_token_index": getattr(tok, "eoi_token", None)}
    for key, token in images.items():
        if key in cfg and cfg[key] != tok.convert_tokens_to_ids(token):
            sys.exit(f"{folder}/config.json: {key} {cfg[key]} is not {token!r}")


class Fixtures:
    def __init__(self, out):
        self.out = out
        self.manifest = {
            "generator": "tools/parity/make_lm_fixtures.py", "versions": versions(),
            "seed": SEED, "new_tokens": NEW_TOKENS,
            "generation": "model.generate(do_sample=False, max_new_tokens=N, min_new_tokens=N); "
                          "min_new_tokens masks EOS, and the script checked that no step's raw "
                          "argmax was changed by it, so generated_ids is plain greedy decoding "
                          "without stop tokens",
            "models": []}
        self.checks = []

    def add(self, name, build, tokenizer, inputs, *, description, dtype=torch.float32,
            shard_bytes=None, layout="v4", seed_tag=None):
        """Save the model `build(tag)` makes under `name` with its reference outputs.

        Random tiny models sometimes have a near-tie among the top logits of a greedy step, or
        (tied embeddings favour the last token) repeat one token, which would not show a broken
        KV cache; then the weights are redrawn from the next seed (tag "name#1", "name#2", ...),
        so the result is still deterministic. `seed_tag` lets variants share another folder's weights.
        """
        folder = self.out / name
        if folder.exists():
            shutil.rmtree(folder)
        base = seed_tag or name
        for attempt in range(100):
            tag = base if attempt == 0 else f"{base}#{attempt}"
            model = build(tag).eval()
            set_generation_config(model)
            if dtype != torch.float32:
                # expected outputs come from the stored (rounded) weights, upcast to f32;
                # only parameters are rounded (module.to(dtype) would also round the rotary
                # inv_freq buffers, which from_pretrained recomputes in f32)
                with torch.no_grad():
                    for p in model.parameters():
                        p.copy_(p.to(dtype).to(torch.float32))
            expected, margin = reference_outputs(model, inputs)
            distinct = min(len(set(r)) for r in expected["generated_ids"].tolist())
            if margin >= MIN_MARGIN and distinct >= MIN_DISTINCT:
                break
        else:
            sys.exit(f"{name}: no seed gave a top-2 margin >= {MIN_MARGIN} and "
                     f">= {MIN_DISTINCT} distinct generated tokens per row")
        kwargs = {"safe_serialization": True}
        if shard_bytes is not None:
            kwargs["max_shard_size"] = shard_bytes
        model.to(dtype).save_pretrained(folder, **kwargs)
        # save_jinja_files=False: the template goes into tokenizer_config.json as in the
        # published checkpoints (4.57 would otherwise write chat_template.jinja).
        tokenizer.save_pretrained(folder, save_jinja_files=False)
        save_tensors(folder / "inputs.safetensors", inputs)
        save_tensors(folder / "expected.safetensors", expected)
        files = sorted(p.name for p in folder.glob("model*.safetensors"))
        if shard_bytes is not None and len(files) < 2:
            sys.exit(f"{folder}: wanted several shards, got {files}")
        mask = inputs["attention_mask"].bool()
        valid = expected["logits"][mask]
        entry = {
            "name": name, "class": type(model).__name__, "model_type": model.config.model_type,
            "layout": layout, "dtype": str(dtype).replace("torch.", ""), "weights": files,
            "parameters": sum(p.numel() for p in model.parameters()),
            "description": description,
            "inputs": {k: list(v.shape) for k, v in inputs.items()},
            "expected": {k: list(v.shape) for k, v in expected.items()},
            "left_padded_rows": [i for i in range(mask.shape[0]) if not bool(mask[i, 0])],
            "logits_abs_max": round(valid.abs().max().item(), 3),
            "logits_std": round(valid.std().item(), 3),
            "min_top2_margin": round(margin, 5),
            "seed_tag": tag,
        }
        if margin < MIN_MARGIN:
            sys.exit(f"{name}: a greedy step has top-2 margin {margin:.2e} < {MIN_MARGIN}")
        self.manifest["models"].append(entry)
        self.checks.append((folder, type(model), entry))
        print(f"{name}: {entry['parameters']} params, {files}, logits |max| "
              f"{entry['logits_abs_max']}, min margin {margin:.4f}, "
              f"generated {expected['generated_ids'].tolist()}")

    def add_v5(self, name, twin, v5_python):
        """`name` = `twin` re-saved by transformers 5.x with `save_original_format=False`,
        i.e. in 5.x's own key layout and config format; tokenizer/processor files, inputs and
        expected outputs are the twin's. Runs this script under 5.x (`--v5-save`), which also
        checks that 5.x loads the new folder and reproduces the twin's expected outputs."""
        src, dst = self.out / twin, self.out / name
        if dst.exists():
            shutil.rmtree(dst)
        proc = subprocess.run([v5_python, __file__, "--v5-save", str(src), str(dst)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"{name}: transformers 5.x failed:\n{proc.stdout}\n{proc.stderr}")
        report = json.loads(proc.stdout.strip().splitlines()[-1])
        for f in sorted(src.iterdir()):
            if f.name not in V5_MODEL_FILES:
                shutil.copyfile(f, dst / f.name)
        base = next(m for m in self.manifest["models"] if m["name"] == twin)
        entry = dict(base, name=name, layout="v5",
                     weights=sorted(p.name for p in dst.glob("model*.safetensors")),
                     description=f"{twin} saved by transformers {report['transformers']} with "
                                 f"save_pretrained(save_original_format=False): 5.x key layout "
                                 f"and config.json format; same weights, tokenizer, inputs and "
                                 f"expected as {twin}",
                     twin=twin, v5_check=report)
        self.manifest["models"].append(entry)
        self.checks.append((dst, None, entry))
        print(f"{name}: 5.x layout, e.g. {report['example_keys'][:2]}; 5.x reproduces "
              f"expected (logits max abs {report['logits_max_abs_diff']:.1e})")

    def verify(self):
        """Re-load every folder with from_pretrained and compare bit for bit."""
        for folder, cls, entry in self.checks:
            if entry["layout"] != "v4":
                continue
            model = cls.from_pretrained(folder, dtype=torch.float32,
                                        attn_implementation="eager").eval()
            inputs = safetensors.torch.load_file(str(folder / "inputs.safetensors"))
            want = safetensors.torch.load_file(str(folder / "expected.safetensors"))
            got, _ = reference_outputs(model, inputs)
            for k in want:
                if not torch.equal(got[k], want[k]):
                    sys.exit(f"{folder}: {k} differs after reload")
            tok = transformers.AutoTokenizer.from_pretrained(folder)
            if tok.chat_template is None:
                sys.exit(f"{folder}: tokenizer has no chat template after reload")
            check_special_ids(folder, tok)
            if entry["name"] in VLM_CONVERSATIONS:
                # the saved processor files rebuild the same inputs from the same images
                proc = transformers.AutoProcessor.from_pretrained(folder)
                again = vlm_inputs(entry["name"], proc)
                for k, v in inputs.items():
                    if not torch.equal(again[k], v):
                        sys.exit(f"{folder}: the reloaded processor gives another {k}")
            print(f"verified {folder.name}: from_pretrained reproduces logits and generated_ids")

    def write_manifest(self):
        (self.out / "manifest.json").write_text(json.dumps(self.manifest, indent=1) + "\n")


def versions():
    return {"python": sys.version.split()[0], "torch": torch.__version__,
            "transformers": transformers.__version__, "tokenizers": tokenizers.__version__,
            "safetensors": safetensors.__version__, "numpy": np.__version__,
            "pillow": PIL.__version__}


# ---------------------------------------------------------------------------------------------
# Model configs.

# hidden 32 with 4 heads of 16: heads × head_dim (64) ≠ hidden, as in Gemma 3 (a port that
# assumes hidden = heads × head_dim fails).
TINY = dict(hidden_size=32, intermediate_size=64, num_attention_heads=4, num_key_value_heads=2,
            head_dim=16, max_position_embeddings=256)


def special_ids(tok, style):
    if style == "gemma":
        return dict(pad_token_id=tok.convert_tokens_to_ids("<pad>"),
                    bos_token_id=tok.convert_tokens_to_ids("<bos>"),
                    eos_token_id=tok.convert_tokens_to_ids("<eos>"))
    return dict(pad_token_id=tok.convert_tokens_to_ids("<pad>"),
                bos_token_id=tok.convert_tokens_to_ids("<s>"),
                eos_token_id=tok.convert_tokens_to_ids("</s>"))


def llama_config(tok, layers=2):
    # rope_scaling llama3 with original_max_position_embeddings 64: with head_dim 16 and
    # theta 10000 the wavelengths 2π/θ^(-2i/16) are 6.3 (kept), 20 and 63 (smoothed between
    # 64/high_freq_factor = 16 and 64/low_freq_factor = 64) and ≥ 199 (divided by factor),
    # so all three branches of the llama3 rule are used.
    return LlamaConfig(vocab_size=len(tok), num_hidden_layers=layers, rms_norm_eps=1e-5,
                       rope_theta=10000.0, tie_word_embeddings=False,
                       rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                     "high_freq_factor": 4.0,
                                     "original_max_position_embeddings": 64},
                       hidden_act="silu", attn_implementation="eager",
                       **TINY, **special_ids(tok, "llava"))


def qwen2_config(tok):
    return Qwen2Config(vocab_size=len(tok), num_hidden_layers=2, rms_norm_eps=1e-6,
                       rope_theta=1000000.0, tie_word_embeddings=True, hidden_act="silu",
                       use_sliding_window=False, attn_implementation="eager",
                       **TINY, **special_ids(tok, "llava"))


def gemma3_text_config(tok, **extra):
    base = dict(vocab_size=len(tok), num_hidden_layers=3, rms_norm_eps=1e-6,
                hidden_activation="gelu_pytorch_tanh",
                # local layers: window 5, base 10; global layers: base 1000 with linear scaling
                # 8 (google/gemma-3-4b uses 10k / 1M with linear 8).
                layer_types=["sliding_attention", "full_attention", "sliding_attention"],
                sliding_window=5, rope_theta=1000.0, rope_local_base_freq=10.0,
                rope_scaling={"rope_type": "linear", "factor": 8.0},
                query_pre_attn_scalar=24, tie_word_embeddings=True,
                attn_implementation="eager", **TINY, **special_ids(tok, "gemma"))
    base.update(extra)
    return Gemma3TextConfig(**base)


def gemma_norm(name):
    """Gemma's RMSNorms (text model, mm_soft_emb_norm) scale by 1 + w; SigLIP's LayerNorms
    by w."""
    return "vision_tower" not in name


def not_gemma_norm(name):
    return False


def causal_inputs(name, tok):
    row0, row1 = CAUSAL_PROMPTS[name]
    ids0 = tok(row0)["input_ids"]
    ids1 = tok(row1)["input_ids"]
    if len(ids1) + 3 > len(ids0):
        sys.exit(f"{name}: row 1 ({len(ids1)} tokens) is not clearly shorter than row 0 ({len(ids0)})")
    ids, mask = left_pad([ids0, ids1], tok.pad_token_id)
    return {"input_ids": ids, "attention_mask": mask}


def build_causal(fx, toks):
    gtok, ltok = toks["gemma"], toks["llava"]

    cfg = llama_config(ltok)
    fx.add("llama_causal", lambda tag: randomize(LlamaForCausalLM(cfg), tag, not_gemma_norm),
           ltok, causal_inputs("llama_causal", ltok),
           description="LlamaForCausalLM, 2 layers, GQA 4/2, head_dim 16, rope_scaling llama3, "
                       "untied lm_head, llava-style tokenizer")

    cfg = qwen2_config(ltok)
    fx.add("qwen2_causal", lambda tag: randomize(Qwen2ForCausalLM(cfg), tag, not_gemma_norm),
           ltok, causal_inputs("qwen2_causal", ltok),
           description="Qwen2ForCausalLM, 2 layers, q/k/v biases, tied embeddings, theta 1e6, "
                       "llava-style tokenizer")

    cfg = gemma3_text_config(gtok, final_logit_softcapping=5.0, attn_logit_softcapping=4.0)
    fx.add("gemma3_causal", lambda tag: randomize(Gemma3ForCausalLM(cfg), tag, gemma_norm),
           gtok, causal_inputs("gemma3_causal", gtok),
           description="Gemma3ForCausalLM, 3 layers (sliding, full, sliding), window 5, "
                       "local base 10 / global base 1000 with linear scaling 8, "
                       "query_pre_attn_scalar 24, attn softcap 4, final softcap 5, tied")


# ---------------------------------------------------------------------------------------------
# Vision-language models.

# SigLIP normalises with mean/std 0.5 (google/gemma-3-4b-it preprocessor_config.json, which
# also uses bilinear resampling, resample 2); CLIP with the OpenAI statistics
# (llava-hf/llava-1.5-7b-hf preprocessor_config.json: shortest edge 336, bicubic, centre crop).
SIGLIP_MEAN_STD = [0.5, 0.5, 0.5]
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def test_image(tag, w, h):
    """A deterministic RGB image: smooth gradients plus seeded blocks (so resizing and the
    vision tower both see structure)."""
    rng = np.random.default_rng(SEED + sum(ord(c) for c in tag))
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 255 / max(w - 1, 1), y * 255 / max(h - 1, 1),
                     (x + y) * 127 / max(w + h - 2, 1)], axis=-1)
    blocks = rng.integers(0, 256, size=(4, 4, 3)).repeat((h + 3) // 4, 0).repeat((w + 3) // 4, 1)[:h, :w]
    return PIL.Image.fromarray(((base + blocks) / 2).astype(np.uint8), "RGB")


def gemma3_processor(tok):
    ip = Gemma3ImageProcessor(do_resize=True, size={"height": 32, "width": 32}, resample=2,
                              do_rescale=True, rescale_factor=1 / 255, do_normalize=True,
                              image_mean=SIGLIP_MEAN_STD, image_std=SIGLIP_MEAN_STD,
                              do_convert_rgb=True, do_pan_and_scan=False)
    # image_seq_length = mm_tokens_per_image (256 in gemma-3-4b-it's processor_config.json)
    return Gemma3Processor(image_processor=ip, tokenizer=tok, chat_template=GEMMA3_CHAT_TEMPLATE,
                           image_seq_length=4)


def llava_processor(tok):
    ip = CLIPImageProcessor(do_resize=True, size={"shortest_edge": 16}, resample=3,
                            do_center_crop=True, crop_size={"height": 16, "width": 16},
                            do_rescale=True, rescale_factor=1 / 255, do_normalize=True,
                            image_mean=CLIP_MEAN, image_std=CLIP_STD, do_convert_rgb=True)
    # As llava-hf/llava-1.5-7b-hf processor_config.json (patch_size 14 there): one extra
    # (class) token that the `default` strategy drops, so (16/8)^2 = 4 tokens per image.
    return LlavaProcessor(image_processor=ip, tokenizer=tok, chat_template=LLAVA_CHAT_TEMPLATE,
                          patch_size=8, vision_feature_select_strategy="default",
                          num_additional_image_tokens=1)


def render_and_encode(processor, messages, images, add_generation_prompt=True):
    """The chat template's text and the processor's ids for it, as
    `processor.apply_chat_template(..., tokenize=True)` produces them: the template is rendered,
    then the processor expands the image placeholders and tokenizes, adding the tokenizer's
    BOS only when the rendered text does not already start with it (processing_utils.py)."""
    text = processor.apply_chat_template(messages, add_generation_prompt=add_generation_prompt,
                                         tokenize=False)
    tok = processor.tokenizer
    add_special = not text.startswith(tok.bos_token)
    enc = processor(text=[text], images=images or None, add_special_tokens=add_special,
                    return_tensors="pt")
    return text, add_special, enc


VLM_CONVERSATIONS = {
    "gemma3_vlm": [
        # row 0: two images (multi-image), row 1: one image, left-padded
        [{"role": "user", "content": [
            {"type": "image"}, {"type": "image"}, {"type": "text", "text": "Lesion?"}]}],
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe."}]}],
    ],
    "llava": [
        [{"role": "user", "content": [
            {"type": "image"}, {"type": "text", "text": "Is there an effusion?"}]}],
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Which plane?"}]}],
    ],
}
VLM_IMAGES = {"gemma3_vlm": [[("g0", 40, 28), ("g1", 24, 24)], [("g2", 50, 37)]],
              "llava": [[("l0", 30, 20)], [("l1", 18, 26)]]}


def vlm_inputs(name, processor):
    texts, images = [], []
    for messages, imgs in zip(VLM_CONVERSATIONS[name], VLM_IMAGES[name]):
        text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        texts.append(text)
        images.append([test_image(*spec) for spec in imgs])
    tok = processor.tokenizer
    add_special = not texts[0].startswith(tok.bos_token)
    enc = processor(text=texts, images=images, padding=True, add_special_tokens=add_special,
                    return_tensors="pt")
    inputs = {"input_ids": enc["input_ids"].to(torch.int64),
              "attention_mask": enc["attention_mask"].to(torch.int64),
              "pixel_values": enc["pixel_values"].to(torch.float32)}
    if "token_type_ids" in enc:
        inputs["token_type_ids"] = enc["token_type_ids"].to(torch.int64)
    if bool(inputs["attention_mask"][1, 0]) or not bool(inputs["attention_mask"][0].all()):
        sys.exit(f"{name}: row 1 must be left-padded and row 0 not")
    return inputs


def gemma3_vlm_config(tok):
    text = gemma3_text_config(tok, num_hidden_layers=2,
                              layer_types=["sliding_attention", "full_attention"],
                              query_pre_attn_scalar=16)
    vision = SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                num_attention_heads=4, image_size=32, patch_size=4,
                                hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6,
                                vision_use_head=False)
    return Gemma3Config(text_config=text.to_dict(), vision_config=vision.to_dict(),
                        mm_tokens_per_image=4,
                        boi_token_index=tok.convert_tokens_to_ids("<start_of_image>"),
                        eoi_token_index=tok.convert_tokens_to_ids("<end_of_image>"),
                        image_token_index=tok.convert_tokens_to_ids(GEMMA_IMAGE_TOKEN),
                        attn_implementation="eager", **special_ids(tok, "gemma"))


def llava_config(tok):
    text = llama_config(tok)
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                              num_attention_heads=4, image_size=16, patch_size=8,
                              hidden_act="quick_gelu", layer_norm_eps=1e-5, projection_dim=32)
    return LlavaConfig(vision_config=vision.to_dict(), text_config=text.to_dict(),
                       image_token_index=tok.convert_tokens_to_ids("<image>"),
                       projector_hidden_act="gelu", vision_feature_select_strategy="default",
                       vision_feature_layer=-2, image_seq_length=4,
                       multimodal_projector_bias=True, tie_word_embeddings=False,
                       attn_implementation="eager", **special_ids(tok, "llava"))


def build_vlms(fx, toks):
    gproc = gemma3_processor(toks["gemma"])
    cfg = gemma3_vlm_config(toks["gemma"])
    fx.add("gemma3_vlm", lambda tag: randomize(Gemma3ForConditionalGeneration(cfg), tag, gemma_norm),
           gproc, vlm_inputs("gemma3_vlm", gproc),
           description="Gemma3ForConditionalGeneration: SigLIP tower (no head, 32 px, patch 4: "
                       "8x8 patches, 2 layers) pooled to mm_tokens_per_image 4, "
                       "mm_soft_emb_norm + mm_input_projection_weight; text: 2 layers "
                       "(sliding, full), window 5; row 0 has two images, row 1 one (left-padded)")
    lproc = llava_processor(toks["llava"])
    cfg = llava_config(toks["llava"])
    fx.add("llava", lambda tag: randomize(LlavaForConditionalGeneration(cfg), tag, not_gemma_norm),
           lproc, vlm_inputs("llava", lproc),
           description="LlavaForConditionalGeneration: CLIP tower (16 px, patch 8, 2 layers, "
                       "quick_gelu), vision_feature_layer -2, strategy default (class token "
                       "dropped: 4 tokens per image), projector linear_1/gelu/linear_2 with "
                       "biases; text: Llama 2 layers, llama3 rope scaling, untied; one image per row")


def build_variants(fx, toks, v5_python):
    """Storage variants: 5.x layout, sharded, bf16 (same weights as their twin)."""
    for twin in ("llama_causal", "gemma3_vlm", "llava"):
        fx.add_v5(f"{twin}_v5", twin, v5_python)
    ltok, gtok = toks["llava"], toks["gemma"]
    cfg = qwen2_config(ltok)
    fx.add("qwen2_causal_sharded", lambda tag: randomize(Qwen2ForCausalLM(cfg), tag, not_gemma_norm),
           ltok, causal_inputs("qwen2_causal", ltok), seed_tag="qwen2_causal",
           shard_bytes=100_000,
           description="qwen2_causal's weights in two shards (model-0000i-of-00002.safetensors "
                       "+ model.safetensors.index.json)")
    cfg = gemma3_text_config(gtok, final_logit_softcapping=5.0, attn_logit_softcapping=4.0)
    fx.add("gemma3_causal_bf16", lambda tag: randomize(Gemma3ForCausalLM(cfg), tag, gemma_norm),
           gtok, causal_inputs("gemma3_causal", gtok), seed_tag="gemma3_causal",
           dtype=torch.bfloat16,
           description="gemma3_causal's weights stored as bfloat16; expected computed in f32 "
                       "from the rounded weights")


# Conversations for prompt_cases.json: the template text and the processor's ids.
def _text(t):
    return {"type": "text", "text": t}


IMAGE = {"type": "image"}
PROMPT_CASES = [
    ("text_only", [{"role": "user", "content": [_text("Is the heart size normal?")]}], 0),
    ("one_image", [{"role": "user", "content": [
        IMAGE, _text("What organ is shown in this image?")]}], 1),
    ("two_images", [{"role": "user", "content": [
        _text("SLICE 1"), IMAGE, _text("SLICE 2"), IMAGE,
        _text("Compared with the prior study, has the opacity increased?")]}], 2),
    ("system_message", [
        {"role": "system", "content": [_text("You are an expert radiologist.")]},
        {"role": "user", "content": [IMAGE, _text("Describe the findings in one sentence.")]}], 1),
    ("multi_turn", [
        {"role": "user", "content": [IMAGE, _text("Which plane is this image taken in?")]},
        {"role": "assistant", "content": [_text("Axial.")]},
        {"role": "user", "content": [_text("  Is there a fracture?  ")]}], 1),
    ("unicode", [{"role": "user", "content": [
        _text("Temperature 38.5 °C, 肺 → café? Ménétrier 🙂")]}], 0),
    ("no_generation_prompt", [
        {"role": "user", "content": [_text("Yes or no?")]},
        {"role": "assistant", "content": [_text("Yes.")]}], 0),
]
ROUND_TRIPS = ["The chest radiograph shows no acute abnormality.",
               "  two  spaces and a trailing space ",
               "Temperature 38.5 °C, dose 2.5 µSv, 肺 → café 🙂",
               "<start_of_turn>user\nHi<end_of_turn>", "<image> USER: what? ASSISTANT:",
               "unknownword xyzzy 1234567890", ""]


def build_prompt_cases(out, toks):
    cases = {"generator": "tools/parity/make_lm_fixtures.py",
             "how": "text = processor.apply_chat_template(messages, add_generation_prompt, "
                    "tokenize=False); ids = processor(text=[text], images=n images, "
                    "add_special_tokens=add_special_tokens) where add_special_tokens is false "
                    "when text already starts with the BOS token (what apply_chat_template("
                    "tokenize=True) does); the image placeholders are expanded by the processor",
             "processors": {}}
    for name, proc in (("gemma3_vlm", gemma3_processor(toks["gemma"])),
                       ("llava", llava_processor(toks["llava"]))):
        entries = []
        for cname, messages, n_images in PROMPT_CASES:
            add_gen = cname != "no_generation_prompt"
            images = [test_image(f"prompt{i}", 20 + 7 * i, 30 - 3 * i) for i in range(n_images)]
            text, add_special, enc = render_and_encode(proc, messages, images, add_gen)
            entry = {"name": cname, "messages": messages, "add_generation_prompt": add_gen,
                     "n_images": n_images, "text": text, "add_special_tokens": add_special,
                     "input_ids": enc["input_ids"][0].tolist()}
            if "token_type_ids" in enc:
                entry["token_type_ids"] = enc["token_type_ids"][0].tolist()
            # cross-check against the processor's own tokenize=True path
            if n_images == 0:
                direct = proc.apply_chat_template(messages, add_generation_prompt=add_gen,
                                                  tokenize=True, return_dict=True)
                if list(direct["input_ids"][0] if isinstance(direct["input_ids"][0], list)
                        else direct["input_ids"]) != entry["input_ids"]:
                    sys.exit(f"prompt case {name}/{cname}: apply_chat_template(tokenize=True) "
                             f"gives other ids")
            entries.append(entry)
        tok = proc.tokenizer
        trips = []
        for text in ROUND_TRIPS:
            ids = tok(text)["input_ids"]
            trips.append({"text": text, "ids_with_special": ids,
                          "ids": tok(text, add_special_tokens=False)["input_ids"],
                          "tokens": tok.convert_ids_to_tokens(ids),
                          "decoded": tok.decode(ids),
                          "decoded_skip_special": tok.decode(ids, skip_special_tokens=True)})
        cases["processors"][name] = {
            "folder": name, "tokenizer_class": type(tok).__name__, "vocab_size": len(tok),
            "bos": tok.bos_token, "eos": tok.eos_token, "pad": tok.pad_token,
            "image_token": tok.image_token, "image_token_id": tok.image_token_id,
            "conversations": entries, "round_trips": trips}
    (out / "prompt_cases.json").write_text(json.dumps(cases, indent=1, ensure_ascii=False) + "\n")
    print(f"prompt_cases.json: {sum(len(p['conversations']) for p in cases['processors'].values())} "
          f"conversations")


# ---------------------------------------------------------------------------------------------
# Benchmark-sized decoders (--big DIR), random weights, not committed.

BIG_VOCAB = 32000
BIG_PROMPT = 128
BIG_NEW_TOKENS = 64


def big_configs():
    """~100M-parameter decoders: hidden 768, 12 layers, vocab 32000 (Llama 2's size).

    llama: 12 heads × 64, 4 kv heads, intermediate 1536, untied lm_head: 110.5M parameters.
    gemma3: 8 heads × 128, 2 kv heads, intermediate 2048, tied, layers 5 sliding : 1 full with
    window 512 (as google/gemma-3-1b), local base 10k / global 1M with linear scaling 8 (as
    gemma-3-4b), query_pre_attn_scalar = head_dim: 104.9M parameters.
    """
    common = dict(vocab_size=BIG_VOCAB, hidden_size=768, num_hidden_layers=12,
                  max_position_embeddings=4096, pad_token_id=0, bos_token_id=2, eos_token_id=1,
                  attn_implementation="eager")
    llama = LlamaConfig(num_attention_heads=12, num_key_value_heads=4, head_dim=64,
                        intermediate_size=1536, rope_theta=500000.0, rms_norm_eps=1e-5,
                        tie_word_embeddings=False, **common)
    gemma = Gemma3TextConfig(num_attention_heads=8, num_key_value_heads=2, head_dim=128,
                             intermediate_size=2048, query_pre_attn_scalar=128,
                             sliding_window=512, rope_theta=1000000.0, rope_local_base_freq=10000.0,
                             rope_scaling={"rope_type": "linear", "factor": 8.0},
                             layer_types=["full_attention" if (i + 1) % 6 == 0 else "sliding_attention"
                                          for i in range(12)],
                             tie_word_embeddings=True, **common)
    return {"llama": (LlamaForCausalLM, llama, not_gemma_norm),
            "gemma3": (Gemma3ForCausalLM, gemma, gemma_norm)}


def build_big(out):
    """DIR/llama and DIR/gemma3: config, f32 weights, `inputs.safetensors` (`input_ids`
    [1, 128] seeded, `attention_mask` ones) and `expected.safetensors` (`logits_last`
    [1, vocab] of the prompt's last position, `generated_ids` [1, 64] greedy)."""
    out = pathlib.Path(out)
    for name, (cls, cfg, norms) in big_configs().items():
        folder = out / name
        if folder.exists():
            shutil.rmtree(folder)
        model = randomize(cls(cfg), f"big_{name}", norms).eval()
        model.save_pretrained(folder, safe_serialization=True)
        g = generator(f"big_inputs_{name}")
        ids = torch.randint(3, BIG_VOCAB, (1, BIG_PROMPT), generator=g, dtype=torch.int64)
        inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
        save_tensors(folder / "inputs.safetensors", inputs)
        with torch.no_grad():
            logits = model(**inputs).logits[:, -1].to(torch.float32)
            gen = model.generate(**inputs, do_sample=False, max_new_tokens=BIG_NEW_TOKENS,
                                 min_new_tokens=BIG_NEW_TOKENS)
        save_tensors(folder / "expected.safetensors",
                     {"logits_last": logits, "generated_ids": gen[:, BIG_PROMPT:].contiguous()})
        n = sum(p.numel() for p in model.parameters())
        print(f"big {name}: {n} parameters in {folder}")


def v5_save(src, dst):
    """Runs under transformers 5.x: re-save the 4.x-layout folder `src` as `dst` in 5.x's
    native layout, reload it and check it reproduces src's expected outputs. Prints a JSON
    report as its last line."""
    src, dst = pathlib.Path(src), pathlib.Path(dst)
    if not transformers.__version__.startswith("5."):
        sys.exit(f"--v5-save needs transformers 5.x, this is {transformers.__version__}")
    arch = json.loads((src / "config.json").read_text())["architectures"][0]
    cls = getattr(transformers, arch)
    model, info = cls.from_pretrained(src, dtype=torch.float32, attn_implementation="eager",
                                      output_loading_info=True)
    bad = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    if bad:
        sys.exit(f"{src}: 5.x loads it with {bad}")
    model.eval().save_pretrained(dst, save_original_format=False)
    # What 5.x writes by default (save_original_format=True), recorded for the README.
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        default_keys = []
        for f in sorted(pathlib.Path(tmp).glob("model*.safetensors")):
            with safetensors.safe_open(str(f), "pt") as st:
                default_keys += list(st.keys())
    reloaded = cls.from_pretrained(dst, dtype=torch.float32, attn_implementation="eager").eval()
    inputs = safetensors.torch.load_file(str(src / "inputs.safetensors"))
    want = safetensors.torch.load_file(str(src / "expected.safetensors"))
    got, _ = reference_outputs(reloaded, inputs)
    mask = inputs["attention_mask"].bool()
    report = {"transformers": transformers.__version__, "torch": torch.__version__}
    for k in want:
        if k == "generated_ids":
            if not torch.equal(got[k], want[k]):
                sys.exit(f"{dst}: 5.x generates {got[k].tolist()}, 4.x {want[k].tolist()}")
            continue
        a, b = (got[k][mask], want[k][mask]) if k == "logits" else (got[k], want[k])
        diff = (a - b).abs().max().item()
        # 5.x runs other attention/mask code; agreement is to f32 rounding
        if diff > 1e-5 + 1e-5 * b.abs().max().item():
            sys.exit(f"{dst}: 5.x {k} differs from expected by {diff}")
        report[f"{k}_max_abs_diff"] = diff
    keys = []
    for f in sorted(dst.glob("model*.safetensors")):
        with safetensors.safe_open(str(f), "pt") as st:
            keys += list(st.keys())
    report["tensors"] = len(keys)
    report["example_keys"] = sorted(k for k in keys if ".layers." not in k)[:8]
    report["default_save_example_keys"] = sorted(k for k in default_keys if ".layers." not in k)[:8]
    report["default_save_is_4x_layout"] = sorted(default_keys) == sorted(
        k for f in sorted(src.glob("model*.safetensors"))
        for k in safetensors.safe_open(str(f), "pt").keys())
    print(json.dumps(report))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="fixture folder (default: %(default)s)")
    ap.add_argument("--v5-python", default=V5_PYTHON,
                    help="python of a transformers 5.x venv, for the _v5 folders (default: %(default)s)")
    ap.add_argument("--v5-save", nargs=2, metavar=("SRC", "DST"), help=argparse.SUPPRESS)
    ap.add_argument("--big", metavar="DIR",
                    help="write only the ~100M-parameter benchmark decoders to DIR")
    args = ap.parse_args()
    torch.manual_seed(SEED)
    torch.use_deterministic_algorithms(True)
    if args.v5_save:
        v5_save(*args.v5_save)
        return
    if args.big:
        build_big(args.big)
        return
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # remove fixture folders of earlier runs, so a renamed fixture leaves nothing stale
    for d in sorted(out.iterdir()):
        if d.is_dir() and (d / "inputs.safetensors").exists():
            shutil.rmtree(d)
    toks = {"gemma": build_tokenizer("gemma"), "llava": build_tokenizer("llava")}
    for style, tok in toks.items():
        print(f"{style} tokenizer: {len(tok)} tokens")
    fx = Fixtures(out)
    build_causal(fx, toks)
    build_vlms(fx, toks)
    build_variants(fx, toks, args.v5_python)
    build_prompt_cases(out, toks)
    fx.verify()
    fx.write_manifest()
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"wrote {out} ({total / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
