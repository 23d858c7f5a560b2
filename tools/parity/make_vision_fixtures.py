"""Reference fixtures for medvqa's SigLIP and CLIP vision encoders (crates/model).

Builds tiny randomly initialised vision encoders from transformers config objects (nothing is
downloaded), saves each as a HuggingFace folder (config.json + safetensors) together with
seeded inputs and the reference outputs, plus two deterministic test images and the exact
`pixel_values` the reference image processors make from them. README.md beside this file lists
every fixture and the tolerances the Rust tests must meet.

    python3 -m venv /tmp/parity-venv
    /tmp/parity-venv/bin/pip install -r tools/parity/requirements.txt
    /tmp/parity-venv/bin/python tools/parity/make_vision_fixtures.py
    # benchmark-sized SigLIP-B/16-224 (random weights, ~370 MB, not committed):
    /tmp/parity-venv/bin/python tools/parity/make_vision_fixtures.py --big /tmp/parity-big

Every folder is re-loaded with `from_pretrained` at the end and must reproduce its expected
outputs bit for bit; the script exits non-zero otherwise.
"""

import argparse
import json
import math
import pathlib
import shutil
import sys

import numpy as np
import PIL
import PIL.Image
import PIL.ImageDraw
import safetensors
import safetensors.torch
import torch
import transformers
from transformers import (
    CLIPConfig,
    CLIPImageProcessor,
    CLIPModel,
    CLIPVisionConfig,
    CLIPVisionModel,
    SiglipConfig,
    SiglipImageProcessor,
    SiglipModel,
    SiglipVisionConfig,
    SiglipVisionModel,
)

REPO = pathlib.Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO / "crates/model/tests/fixtures/parity"
SEED = 20261122

# SigLIP normalises with mean 0.5 / std 0.5 (google/siglip-base-patch16-224
# preprocessor_config.json); CLIP with the OpenAI dataset statistics (openai/CLIP clip.py
# `_transform`, also CLIPImageProcessor's defaults).
SIGLIP_MEAN_STD = ([0.5, 0.5, 0.5], [0.5, 0.5, 0.5])
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]

# The "main" size from the issue, and a smaller "micro" size for the variants (layout, dtype,
# sharding, two-tower) so the committed fixtures stay a few hundred KB. The micro SigLIP uses
# patch 7 on a 21 px image: like so400m / MedSigLIP (patch 14) the patch does not divide a
# power of two.
MAIN = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
            image_size=32, patch_size=8)
MICRO_SIGLIP = dict(hidden_size=8, num_hidden_layers=2, num_attention_heads=2,
                    intermediate_size=16, image_size=21, patch_size=7)
MICRO_CLIP = dict(hidden_size=8, num_hidden_layers=2, num_attention_heads=2,
                  intermediate_size=16, image_size=16, patch_size=4)
TINY_TEXT = dict(hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                 intermediate_size=16, vocab_size=32, max_position_embeddings=8)
# SigLIP-B/16 at 224 px (google/siglip-base-patch16-224 config.json), for benchmarks only.
BIG_SIGLIP = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                  intermediate_size=3072, image_size=224, patch_size=16)

# transformers 5.x ("Refactor CLIP-like models", huggingface/transformers#44431, released in
# 5.6.0) removed the `vision_model` wrapper module from CLIPVisionModel and SiglipVisionModel,
# so a vision-only checkpoint saved by 5.x has its keys without the `vision_model.` prefix.
# 5.x's own conversion_mapping.py loads old checkpoints with
# `PrefixChange(prefix_to_remove="vision_model")` for CLIPVisionModel, and SiglipVisionModel is
# aliased to that entry; we apply the same rule. The two-tower CLIPModel / SiglipModel keep a
# `vision_model` attribute, so their keys do not change. `check_v5_layout.py` verifies all of
# this against transformers 5.x itself.
V5_VISION_ONLY_PREFIX = "vision_model."


def generator(tag):
    """A torch generator seeded from SEED and a tag, so adding a fixture changes no other one."""
    g = torch.Generator().manual_seed(SEED + sum(ord(c) * 131 ** i for i, c in enumerate(tag)) % 2**31)
    return g


def randomize(model, tag):
    """Replace every parameter with seeded random values.

    transformers' own init sets LayerNorm weight 1 / bias 0 and most biases to 0, so a port
    that dropped a bias or a LayerNorm affine would still match; random values everywhere make
    every tensor count. Weights get std 1/sqrt(fan_in) so each layer changes the activations by
    O(1) and attention is not uniform.
    """
    g = generator(tag)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                v = 0.1 * torch.randn(p.shape, generator=g)
            elif "norm" in name and name.endswith("weight"):
                v = 1.0 + 0.1 * torch.randn(p.shape, generator=g)
            elif p.dim() >= 2 and not name.endswith(("position_embedding.weight",
                                                      "token_embedding.weight")):
                # linear layers, the patch-embedding convolution, the head's in_proj
                fan_in = math.prod(p.shape[1:])
                v = torch.randn(p.shape, generator=g) / math.sqrt(fan_in)
            elif name in ("logit_scale", "logit_bias"):
                v = torch.randn(p.shape, generator=g)
            else:
                # position / token embeddings, class embedding, attention-pool probe
                v = 0.5 * torch.randn(p.shape, generator=g)
            p.copy_(v.to(p.dtype))
    return model


def pixel_values(tag, batch, h, w):
    """Seeded inputs in the normalised range the processors produce (about [-1, 1] for SigLIP,
    [-1.8, 2.1] for CLIP); uniform in [-1.5, 1.5] covers both."""
    g = generator("pixels/" + tag)
    return (torch.rand((batch, 3, h, w), generator=g) * 3.0 - 1.5).contiguous()


def vision_forward(model, pv, interpolate=False):
    """Reference outputs by their transformers names. `hidden_states` is stacked
    [layers+1, batch, seq, hidden]: entry 0 is the encoder input (for CLIP after pre_layrnorm),
    entry i the output of layer i, before post_layernorm."""
    with torch.no_grad():
        tower = model
        if isinstance(model, (SiglipModel, CLIPModel)):
            # The two-tower model's vision_model does not collect hidden states in 4.x; the
            # vision-only class holds the same module under the same `vision_model.` keys.
            vision_cls = SiglipVisionModel if isinstance(model, SiglipModel) else CLIPVisionModel
            config = model.config.vision_config
            config._attn_implementation = "eager"
            tower = vision_cls(config).eval()
            tower.vision_model.load_state_dict(model.vision_model.state_dict(), strict=True)
        out = tower(pixel_values=pv, output_hidden_states=True,
                    interpolate_pos_encoding=interpolate)
        res = {
            "last_hidden_state": out.last_hidden_state,
            "hidden_states": torch.stack(out.hidden_states),
        }
        if out.pooler_output is not None:
            res["pooler_output"] = out.pooler_output
        if isinstance(model, CLIPModel):
            # CLIPModel.get_image_features: visual_projection(pooler_output)
            res["image_embeds"] = model.visual_projection(out.pooler_output)
    return {k: v.detach().to(torch.float32).contiguous() for k, v in res.items()}


def save_tensors(path, tensors):
    safetensors.torch.save_file({k: v.contiguous() for k, v in tensors.items()}, str(path))


def rewrite_weights_v5(folder):
    """Rename a saved vision-only checkpoint to the transformers 5.x key layout (no
    `vision_model.` prefix), keeping shard files and dtypes as they are."""
    for f in sorted(folder.glob("*.safetensors")):
        tensors = safetensors.torch.load_file(str(f))
        renamed = {}
        for k, v in tensors.items():
            if not k.startswith(V5_VISION_ONLY_PREFIX):
                sys.exit(f"{f}: unexpected key {k} in a vision-only checkpoint")
            renamed[k[len(V5_VISION_ONLY_PREFIX):]] = v
        safetensors.torch.save_file(renamed, str(f), metadata={"format": "pt"})
    index = folder / "model.safetensors.index.json"
    if index.exists():
        meta = json.loads(index.read_text())
        meta["weight_map"] = {k[len(V5_VISION_ONLY_PREFIX):]: v for k, v in meta["weight_map"].items()}
        index.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def keys_of(folder):
    keys = {}
    for f in sorted(folder.glob("*.safetensors")):
        if f.name.startswith(("inputs", "expected")):
            continue
        with safetensors.safe_open(str(f), "pt") as st:
            for k in st.keys():
                keys[k] = str(st.get_slice(k).get_dtype())
    return keys


class Fixtures:
    def __init__(self, out):
        self.out = out
        self.manifest = {"generator": "tools/parity/make_vision_fixtures.py",
                         "versions": versions(), "seed": SEED, "models": [], "preprocess": []}
        # (folder, class, reference model in f32, cases) for the re-load check
        self.checks = []

    def add_model(self, name, model, cls, *, description, layout="v4", dtype=torch.float32,
                  shard_bytes=None, cases):
        """Save `model` under `name` and write inputs/expected for each case.

        cases: list of (suffix, batch, h, w, interpolate). Expected outputs come from the
        model in f32 with the weights exactly as stored (rounded to `dtype` first).
        """
        folder = self.out / name
        if folder.exists():
            shutil.rmtree(folder)
        stored = model.to(dtype)
        kwargs = {"safe_serialization": True}
        if shard_bytes is not None:
            kwargs["max_shard_size"] = shard_bytes
        stored.save_pretrained(folder, **kwargs)
        reference = model.to(torch.float32).eval()
        if layout == "v5":
            rewrite_weights_v5(folder)
        files = sorted(p.name for p in folder.glob("model*.safetensors"))
        if shard_bytes is not None and files != ["model-00001-of-00002.safetensors",
                                                  "model-00002-of-00002.safetensors"]:
            sys.exit(f"{folder}: expected two shards, got {files}")
        entry = {"name": name, "class": cls.__name__, "model_type": model.config.model_type,
                 "layout": layout, "dtype": str(dtype).replace("torch.", ""),
                 "weights": files, "description": description, "cases": []}
        for suffix, batch, h, w, interpolate in cases:
            pv = pixel_values(f"{name}/{suffix}", batch, h, w)
            expected = vision_forward(reference, pv, interpolate)
            inputs_file = f"inputs{suffix}.safetensors"
            expected_file = f"expected{suffix}.safetensors"
            save_tensors(folder / inputs_file, {"pixel_values": pv})
            save_tensors(folder / expected_file, expected)
            entry["cases"].append({"inputs": inputs_file, "expected": expected_file,
                                   "interpolate_pos_encoding": interpolate,
                                   "outputs": {k: list(v.shape) for k, v in expected.items()}})
        entry["tensors"] = len(keys_of(folder))
        self.manifest["models"].append(entry)
        self.checks.append((folder, cls, layout, entry))
        print(f"{name}: {entry['tensors']} tensors, {files}")

    def verify(self):
        """Re-load every 4.x-layout folder with from_pretrained and compare bit for bit; check
        the 5.x-layout folders hold the same tensors as their 4.x twin under the new names."""
        for folder, cls, layout, entry in self.checks:
            if layout == "v5":
                # transformers 4.x cannot read the 5.x names itself: put the prefix back and load
                # strictly, so a missing or extra tensor fails here.
                config = cls.config_class.from_pretrained(folder)
                config._attn_implementation = "eager"
                model = cls(config).eval()
                state = {}
                for f in sorted(folder.glob("model*.safetensors")):
                    for k, v in safetensors.torch.load_file(str(f)).items():
                        if k.startswith(V5_VISION_ONLY_PREFIX):
                            sys.exit(f"{f}: 4.x key {k} left in a 5.x layout")
                        state[V5_VISION_ONLY_PREFIX + k] = v.to(torch.float32)
                model.load_state_dict(state, strict=True)
            else:
                model = cls.from_pretrained(folder, dtype=torch.float32,
                                            attn_implementation="eager").eval()
            for case in entry["cases"]:
                pv = safetensors.torch.load_file(str(folder / case["inputs"]))["pixel_values"]
                want = safetensors.torch.load_file(str(folder / case["expected"]))
                got = vision_forward(model, pv, case["interpolate_pos_encoding"])
                if set(got) != set(want):
                    sys.exit(f"{folder}/{case['expected']}: outputs {sorted(got)} != {sorted(want)}")
                for k in want:
                    if not torch.equal(got[k], want[k]):
                        diff = (got[k] - want[k]).abs().max().item()
                        sys.exit(f"{folder}/{case['expected']}: {k} differs after reload (max abs {diff})")
            how = "strict load_state_dict with the prefix restored" if layout == "v5" else "from_pretrained"
            print(f"verified {folder.name}: {how} reproduces {len(entry['cases'])} case(s)")

    def write_manifest(self):
        (self.out / "manifest.json").write_text(json.dumps(self.manifest, indent=1) + "\n")


def versions():
    return {"python": sys.version.split()[0], "torch": torch.__version__,
            "transformers": transformers.__version__, "safetensors": safetensors.__version__,
            "numpy": np.__version__, "pillow": PIL.__version__}


def siglip_vision(size, tag, **extra):
    cfg = SiglipVisionConfig(**size, hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6,
                             attn_implementation="eager", **extra)
    return randomize(SiglipVisionModel(cfg).eval(), tag)


def clip_vision(size, tag, **extra):
    cfg = CLIPVisionConfig(**size, layer_norm_eps=1e-5, attn_implementation="eager", **extra)
    return randomize(CLIPVisionModel(cfg).eval(), tag)


def build_models(fx):
    main_cases = [("", 2, 32, 32, False)]
    # 24 x 40 px is a 3 x 5 patch grid: the 4 x 4 position table is shrunk along one axis and
    # stretched along the other (bicubic), as for any non-square input.
    interp_case = ("_interpolate", 1, 24, 40, True)

    m = siglip_vision(MAIN, "siglip_vision", vision_use_head=True)
    fx.add_model("siglip_vision", m, SiglipVisionModel, cases=main_cases + [interp_case],
                 description="SiglipVisionModel, vision-only config.json, attention-pooling head "
                             "(vision_use_head=true, as google/siglip-*), gelu_pytorch_tanh, "
                             "transformers 4.x keys; second case at 24x40 px with "
                             "interpolate_pos_encoding")

    m = clip_vision(MAIN, "clip_vision", hidden_act="quick_gelu")
    fx.add_model("clip_vision", m, CLIPVisionModel, cases=main_cases + [interp_case],
                 description="CLIPVisionModel, vision-only config.json, class token, "
                             "pre_layrnorm, quick_gelu (as openai/clip-*), transformers 4.x "
                             "keys; second case at 24x40 px with interpolate_pos_encoding")

    s = MICRO_SIGLIP["image_size"]
    c = MICRO_CLIP["image_size"]
    micro_siglip_cases = [("", 2, s, s, False)]
    micro_clip_cases = [("", 2, c, c, False)]

    m = siglip_vision(MICRO_SIGLIP, "siglip_vision_v5", vision_use_head=True)
    fx.add_model("siglip_vision_v5", m, SiglipVisionModel, layout="v5", cases=micro_siglip_cases,
                 description="SiglipVisionModel with head, patch 7, transformers 5.x keys "
                             "(no vision_model. prefix)")

    m = clip_vision(MICRO_CLIP, "clip_vision_v5", hidden_act="quick_gelu")
    fx.add_model("clip_vision_v5", m, CLIPVisionModel, layout="v5", cases=micro_clip_cases,
                 description="CLIPVisionModel, quick_gelu, transformers 5.x keys "
                             "(no vision_model. prefix)")

    m = siglip_vision(MICRO_SIGLIP, "siglip_vision_nohead", vision_use_head=False)
    fx.add_model("siglip_vision_nohead", m, SiglipVisionModel, cases=micro_siglip_cases,
                 description="SiglipVisionModel without the pooling head (vision_use_head=false, "
                             "as the vision towers of PaliGemma / Gemma 3 / MedGemma): no "
                             "pooler_output")

    m = siglip_vision(MICRO_SIGLIP, "siglip_vision_sharded", vision_use_head=True)
    total = sum(p.numel() * 4 for p in m.parameters())
    fx.add_model("siglip_vision_sharded", m, SiglipVisionModel, shard_bytes=int(total * 0.6),
                 cases=micro_siglip_cases,
                 description="SiglipVisionModel with head, two safetensors shards + "
                             "model.safetensors.index.json, transformers 4.x keys")

    m = siglip_vision(MICRO_SIGLIP, "siglip_vision_f16", vision_use_head=True)
    fx.add_model("siglip_vision_f16", m, SiglipVisionModel, dtype=torch.float16,
                 cases=micro_siglip_cases,
                 description="SiglipVisionModel with head, weights stored as float16; expected "
                             "outputs computed in f32 from the f16 weights")

    m = clip_vision(MICRO_CLIP, "clip_vision_bf16", hidden_act="quick_gelu")
    fx.add_model("clip_vision_bf16", m, CLIPVisionModel, dtype=torch.bfloat16,
                 cases=micro_clip_cases,
                 description="CLIPVisionModel, weights stored as bfloat16; expected outputs "
                             "computed in f32 from the bf16 weights")

    cfg = SiglipConfig(text_config=dict(TINY_TEXT),
                       vision_config=dict(MICRO_SIGLIP, hidden_act="gelu_pytorch_tanh",
                                          layer_norm_eps=1e-6))
    cfg._attn_implementation = "eager"
    m = randomize(SiglipModel(cfg).eval(), "siglip_two_tower")
    fx.add_model("siglip_two_tower", m, SiglipModel, cases=micro_siglip_cases,
                 description="SiglipModel (config.json with text_config + vision_config, text "
                             "tower and logit_scale/logit_bias in the weights); outputs of its "
                             "vision_model")

    cfg = CLIPConfig(text_config=dict(TINY_TEXT),
                     vision_config=dict(MICRO_CLIP, hidden_act="gelu", layer_norm_eps=1e-5),
                     projection_dim=6)
    cfg._attn_implementation = "eager"
    m = randomize(CLIPModel(cfg).eval(), "clip_two_tower")
    fx.add_model("clip_two_tower", m, CLIPModel, cases=micro_clip_cases,
                 description="CLIPModel (config.json with text_config + vision_config), "
                             "hidden_act gelu (exact erf), projection_dim 6; outputs of its "
                             "vision_model plus image_embeds = visual_projection(pooler_output)")


def check_bicubic_rule():
    """Assert that torch's `interpolate(mode="bicubic", align_corners=False)`, which both
    encoders use on the position table, is the rule README.md spells out for the Rust port:
    separable Keys cubic convolution with a = -0.75, source coordinate (o + 0.5) * in / out - 0.5
    left unclamped, the four taps' indices clamped to the edge, no antialiasing when shrinking."""
    a = -0.75

    def weight(t):
        t = abs(t)
        if t <= 1:
            return ((a + 2) * t - (a + 3)) * t * t + 1
        if t < 2:
            return ((a * t - 5 * a) * t + 8 * a) * t - 4 * a
        return 0.0

    def matrix(n_in, n_out):
        m = np.zeros((n_out, n_in))
        for o in range(n_out):
            src = (o + 0.5) * n_in / n_out - 0.5
            i = math.floor(src)
            for k in range(-1, 3):
                m[o, min(max(i + k, 0), n_in - 1)] += weight(src - (i + k))
        return m

    g = generator("bicubic-rule")
    for ih, iw, oh, ow in [(4, 4, 3, 5), (4, 4, 7, 2), (27, 27, 32, 32), (16, 16, 1, 9)]:
        x = torch.randn((ih, iw), generator=g, dtype=torch.float64)
        want = torch.nn.functional.interpolate(x[None, None], size=(oh, ow), mode="bicubic",
                                               align_corners=False)[0, 0].numpy()
        got = matrix(ih, oh) @ x.numpy() @ matrix(iw, ow).T
        if np.abs(got - want).max() > 1e-12:
            sys.exit(f"torch bicubic {ih}x{iw}->{oh}x{ow} no longer follows the README's rule")
    print("verified bicubic: torch's position-table interpolation is the README's rule")


# ---- images and preprocessing -------------------------------------------------------------


def test_image_rgb(w=97, h=61):
    """A photo-like 8-bit RGB picture: smooth gradients plus hard-edged shapes in several
    colours, so resizing filters see both ramps and edges; no noise."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    u, v = x / (w - 1), y / (h - 1)
    r = 40 + 180 * u
    gch = 30 + 150 * v + 40 * np.sin(6.0 * u)
    b = 200 - 120 * u * v
    img = np.stack([r, gch, b], axis=-1)
    im = PIL.Image.fromarray(np.clip(np.rint(img), 0, 255).astype(np.uint8), "RGB")
    d = PIL.ImageDraw.Draw(im)
    d.ellipse((10, 8, 40, 38), fill=(250, 240, 30))
    d.rectangle((55, 12, 85, 30), fill=(20, 20, 140))
    d.polygon([(60, 55), (92, 40), (80, 58)], fill=(230, 40, 60))
    d.line((0, 60, 96, 0), fill=(255, 255, 255), width=2)
    d.ellipse((20, 40, 34, 54), outline=(0, 0, 0), width=2)
    return im


def test_image_gray(w=45, h=70):
    """An 8-bit grayscale radiograph-like picture (portrait, so shortest-edge resizing and the
    centre crop act on the other axis than for the RGB image): bright body, two dark fields,
    a hard-edged marker."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    u, v = x / (w - 1), y / (h - 1)
    body = np.exp(-(((u - 0.5) / 0.45) ** 2 + ((v - 0.55) / 0.55) ** 2) ** 2)
    fields = sum(np.exp(-(((u - cx) / 0.15) ** 2 + ((v - 0.5) / 0.28) ** 2) ** 2)
                 for cx in (0.3, 0.7))
    img = 30 + 190 * body - 110 * fields + 25 * v
    im = PIL.Image.fromarray(np.clip(np.rint(img), 0, 255).astype(np.uint8), "L")
    d = PIL.ImageDraw.Draw(im)
    d.rectangle((w - 10, 3, w - 4, 9), fill=255)
    return im


def processors():
    """Processor configs as published checkpoints have them, scaled down in size."""
    return {
        # google/siglip-base-patch16-224: 224x224, bicubic (PIL resample 3), mean/std 0.5
        "siglip_224like": SiglipImageProcessor(
            do_resize=True, size={"height": 32, "width": 32}, resample=3, do_rescale=True,
            rescale_factor=1 / 255, do_normalize=True, image_mean=SIGLIP_MEAN_STD[0],
            image_std=SIGLIP_MEAN_STD[1], do_convert_rgb=True),
        # The second SigLIP-family shape: a size that is not a power of two (so400m: 384 px,
        # MedSigLIP: 448 px, patch 14) and bilinear resampling (PIL resample 2, as Gemma 3's
        # processor for its SigLIP tower uses), mean/std 0.5; 21 px matches the patch-7 micro
        # models. The real filter is whatever the checkpoint's preprocessor_config.json says.
        "siglip_448like": SiglipImageProcessor(
            do_resize=True, size={"height": 21, "width": 21}, resample=2, do_rescale=True,
            rescale_factor=1 / 255, do_normalize=True, image_mean=SIGLIP_MEAN_STD[0],
            image_std=SIGLIP_MEAN_STD[1], do_convert_rgb=True),
        # openai/clip-vit-base-patch16: shortest edge 224, bicubic, centre crop 224, CLIP stats
        "clip": CLIPImageProcessor(
            do_resize=True, size={"shortest_edge": 36}, resample=3, do_center_crop=True,
            crop_size={"height": 32, "width": 32}, do_rescale=True, rescale_factor=1 / 255,
            do_normalize=True, image_mean=CLIP_MEAN, image_std=CLIP_STD, do_convert_rgb=True),
    }


def build_preprocess(fx):
    folder = fx.out / "preprocess"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    images = {"rgb_97x61": test_image_rgb(), "gray_45x70": test_image_gray()}
    for name, im in images.items():
        im.save(folder / f"{name}.png", optimize=True)
    for pname, proc in processors().items():
        sub = folder / pname
        sub.mkdir()
        proc.to_json_file(str(sub / "preprocessor_config.json"))
        for iname in images:
            # From the file, as a user's image reaches the processor.
            with PIL.Image.open(folder / f"{iname}.png") as im:
                im.load()
                pv = proc(images=im, return_tensors="pt")["pixel_values"].to(torch.float32)
            save_tensors(sub / f"{iname}.safetensors", {"pixel_values": pv})
            fx.manifest["preprocess"].append({"processor": f"{pname}/preprocessor_config.json",
                                              "image": f"{iname}.png",
                                              "expected": f"{pname}/{iname}.safetensors",
                                              "shape": list(pv.shape)})
            print(f"preprocess {pname}/{iname}: {list(pv.shape)}")
    # Re-load check: a processor read back from its JSON gives the same tensor.
    for entry in fx.manifest["preprocess"]:
        cls = {"SiglipImageProcessor": SiglipImageProcessor,
               "CLIPImageProcessor": CLIPImageProcessor}
        cfg = json.loads((folder / entry["processor"]).read_text())
        proc = cls[cfg["image_processor_type"]].from_pretrained(str((folder / entry["processor"]).parent))
        with PIL.Image.open(folder / entry["image"]) as im:
            pv = proc(images=im, return_tensors="pt")["pixel_values"].to(torch.float32)
        want = safetensors.torch.load_file(str(folder / entry["expected"]))["pixel_values"]
        if not torch.equal(pv, want):
            sys.exit(f"{folder / entry['expected']}: differs after reloading the processor")
    print("verified preprocess: processors re-loaded from preprocessor_config.json agree")


def build_big(out):
    """SigLIP-B/16-224-sized encoder with random weights for benchmarks (not committed)."""
    out = pathlib.Path(out)
    m = siglip_vision(BIG_SIGLIP, "big_siglip_b16_224", vision_use_head=True)
    if out.exists():
        shutil.rmtree(out)
    m.save_pretrained(out, safe_serialization=True)
    SiglipImageProcessor(
        do_resize=True, size={"height": 224, "width": 224}, resample=3, do_rescale=True,
        rescale_factor=1 / 255, do_normalize=True, image_mean=SIGLIP_MEAN_STD[0],
        image_std=SIGLIP_MEAN_STD[1], do_convert_rgb=True,
    ).to_json_file(str(out / "preprocessor_config.json"))
    pv = pixel_values("big", 8, 224, 224)
    save_tensors(out / "inputs.safetensors", {"pixel_values": pv})
    with torch.no_grad():
        o = m(pixel_values=pv)
    save_tensors(out / "expected.safetensors", {"last_hidden_state": o.last_hidden_state,
                                                "pooler_output": o.pooler_output})
    n = sum(p.numel() for p in m.parameters())
    print(f"big model: {n} parameters in {out}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="fixture folder (default: %(default)s)")
    ap.add_argument("--big", metavar="DIR",
                    help="write only the SigLIP-B/16-224-sized benchmark model to DIR")
    args = ap.parse_args()
    torch.manual_seed(SEED)
    torch.use_deterministic_algorithms(True)
    if args.big:
        build_big(args.big)
        return
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fx = Fixtures(out)
    build_models(fx)
    build_preprocess(fx)
    fx.verify()
    check_bicubic_rule()
    fx.write_manifest()
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"wrote {out} ({total / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
