"""Reference answers for `medvqa ask` on the tiny VLM fixtures (crates/cli tests).

Draws three small synthetic PNG images, then for each of the committed tiny random checkpoints
`crates/model/tests/fixtures/lm/gemma3_vlm` and `.../llava` (made by make_lm_fixtures.py) answers
a few questions the way `medvqa ask` does (crates/vqa/src/assistant.rs,
crates/prompt/src/vqa.rs), with HuggingFace transformers as the reference:

- images: `PIL.Image.open(p).convert("RGB")`, preprocessed by the folder's own image processor
  (`AutoProcessor.from_pretrained(folder)`, the slow Pillow processors the folders were saved
  with);
- one user message: `{"type": "image"}` per image, then the question (multiple choice: the
  options lettered, then LLaVA-1.5's instruction), rendered by the folder's chat template with
  the generation prompt and tokenised by the processor (BOS added only when the rendered text
  does not start with it, as `apply_chat_template(tokenize=True)` does);
- open questions: greedy `generate` with the stop tokens of `generation_config.json`; the
  answer is the decoded new tokens without special tokens, stripped;
- yes/no and multiple choice: each candidate (the words "yes"/"no", or the letters) tokenised
  without special tokens and scored by teacher forcing: Σ log_softmax(logits) (f32, natural
  log) of its tokens after the prompt; the answer is the best-scoring option.

Writes `crates/cli/tests/fixtures/ask/` (images, `cases.json`, `provenance.json`,
`pixel_values.safetensors`).
README.md beside this file describes the output.

    /tmp/parity-venv/bin/python tools/parity/make_ask_fixtures.py

Deterministic: two runs give byte-identical files.
"""

import argparse
import json
import math
import pathlib
import sys

import numpy as np
import PIL
import PIL.Image
import safetensors
import safetensors.torch
import tokenizers
import torch
import transformers

REPO = pathlib.Path(__file__).resolve().parents[2]
MODELS = REPO / "crates/model/tests/fixtures/lm"
DEFAULT_OUT = REPO / "crates/cli/tests/fixtures/ask"

# Same sentence as medvqa_prompt::MULTIPLE_CHOICE_INSTRUCTION (LLaVA-1.5, Liu et al. 2023,
# "Improved Baselines with Visual Instruction Tuning", Table 7).
MULTIPLE_CHOICE_INSTRUCTION = "Answer with the option's letter from the given choices directly."

# A generated token counts as unambiguous when the best logit beats the second by this much;
# the Rust port's logits agree with transformers to ~1e-5 (crates/model parity tests).
MIN_MARGIN = 1e-3
# Same for the best option score against the runner-up.
MIN_SCORE_GAP = 1e-3

# Open questions are tried in order until one gives a greedy answer with no near-tie; the
# first that passes is used (the tiny random models answer gibberish, but deterministically).
OPEN_ONE = ["What does the chest radiograph show?", "Describe the image.",
            "What abnormality is seen?", "Where is the lesion?"]
OPEN_TWO = ["Compare the two images.", "What changed between the images?",
            "Describe both images.", "Which image shows the lesion?"]
YES_NO = ["Is there a fracture?", "Is the lung field clear?", "Is there an effusion?",
          "Is this a normal study?"]
LETTERED = [("Which organ is shown?", ["lung", "heart", "liver"]),
            ("What is the imaging plane?", ["axial", "coronal", "sagittal"]),
            ("Which side is abnormal?", ["left", "right", "neither"])]

# (model, images, mode, question candidates)
CASES = [
    ("open_one", ["chest.png"], "open", OPEN_ONE),
    ("open_two", ["chest.png", "knee.png"], "open", OPEN_TWO),
    ("yes_no", ["knee.png"], "yes_no", YES_NO),
    ("lettered", ["portrait.png"], "lettered", LETTERED),
]
OPEN_MAX_NEW_TOKENS = 8


# ---------------------------------------------------------------------------------------------
# Images.

def chest_image():
    """64×48 RGB: a vertical gradient, two darker 'lung' ellipses and a bright disc, slightly
    tinted per channel so the three channels differ."""
    h, w = 48, 64
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    v = 60 + 120 * y / (h - 1)
    for cx in (20, 44):
        inside = ((x - cx) / 11) ** 2 + ((y - 24) / 17) ** 2 <= 1
        v = np.where(inside, v * 0.45, v)
    disc = (x - 40) ** 2 + (y - 30) ** 2 <= 5 ** 2
    v = np.where(disc, 235, v)
    rgb = np.stack([v, v * 0.95 + 6, v * 0.9 + 12], axis=-1)
    return PIL.Image.fromarray(np.clip(np.round(rgb), 0, 255).astype(np.uint8), "RGB")


def knee_image():
    """40×40 grayscale (mode L): a radial gradient with a bright ring and a dark gap."""
    n = 40
    y, x = np.mgrid[0:n, 0:n].astype(np.float64)
    r = np.hypot(x - 19.5, y - 21.0)
    v = 200 - 4 * r
    v = np.where((r > 9) & (r < 12), 250, v)
    v = np.where(np.abs(x - 26) < 1.5, 20, v)
    return PIL.Image.fromarray(np.clip(np.round(v), 0, 255).astype(np.uint8), "L")


def portrait_image():
    """30×52 RGB (taller than wide): diagonal stripes over a horizontal colour ramp."""
    h, w = 52, 30
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    stripes = 80 * (((x + y) // 6) % 2)
    rgb = np.stack([40 + 6 * x + stripes, 200 - 3 * y + stripes / 2, 90 + 0 * x + stripes],
                   axis=-1)
    return PIL.Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB")


IMAGES = {"chest.png": chest_image, "knee.png": knee_image, "portrait.png": portrait_image}


def write_images(out):
    for name, draw in IMAGES.items():
        path = out / name
        draw().save(path, format="PNG", optimize=False, compress_level=9)
        if path.stat().st_size >= 10_000:
            sys.exit(f"{path}: {path.stat().st_size} bytes, keep test images under 10 KB")


# ---------------------------------------------------------------------------------------------
# What medvqa does, in transformers.

def option_letter(i):
    """0 → A, 25 → Z, 26 → AA (medvqa_prompt::option_letter)."""
    n, letters = i + 1, ""
    while n > 0:
        letters = chr(ord("A") + (n - 1) % 26) + letters
        n = (n - 1) // 26
    return letters


def format_question(question, options):
    """medvqa_prompt::format_question."""
    if not options:
        return question
    lines = [question.rstrip()] + [f"{option_letter(i)}. {o}" for i, o in enumerate(options)]
    return "\n".join(lines + [MULTIPLE_CHOICE_INSTRUCTION])


def encode_prompt(processor, images, question, listed):
    messages = [{"role": "user", "content": [{"type": "image"} for _ in images]
                 + [{"type": "text", "text": format_question(question, listed)}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    # apply_chat_template(tokenize=True) (processing_utils.py) adds no second BOS when the
    # template already wrote one (Gemma's does, LLaVA's does not); medvqa does the same.
    add_special = not text.startswith(processor.tokenizer.bos_token)
    enc = processor(text=[text], images=images, add_special_tokens=add_special,
                    return_tensors="pt")
    return messages, text, add_special, enc


def model_inputs(enc):
    inputs = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
              "pixel_values": enc["pixel_values"].to(torch.float32)}
    if "token_type_ids" in enc:
        inputs["token_type_ids"] = enc["token_type_ids"]
    return inputs


def top2_margin(logits):
    top = torch.topk(logits.to(torch.float64), 2).values
    return float(top[0] - top[1])


def answer_open(model, processor, inputs, max_new_tokens):
    """Greedy generate with the folder's stop tokens (generation_config.json eos_token_id)."""
    prompt_len = inputs["input_ids"].shape[1]
    with torch.no_grad():
        out = model.generate(**inputs, do_sample=False, max_new_tokens=max_new_tokens,
                             return_dict_in_generate=True, output_logits=True)
    new = out.sequences[0, prompt_len:].tolist()
    # generate's prefill must see the prompt as the plain forward (used for option scoring)
    # does, image masks included.
    with torch.no_grad():
        last = model(**inputs).logits[0, -1].to(torch.float32)
    diff = float((last - out.logits[0][0].to(torch.float32)).abs().max())
    if diff > 1e-5:
        sys.exit(f"generate's first step differs from the forward pass by {diff}")
    margins = []
    for step, (tok, logits) in enumerate(zip(new, out.logits)):
        # No logits processor acts on greedy decoding here: the raw argmax is the token.
        if int(torch.argmax(logits[0])) != tok:
            sys.exit(f"step {step}: generated {tok} is not the argmax of the raw logits")
        margins.append(top2_margin(logits[0]))
    stops = model.generation_config.eos_token_id
    stops = stops if isinstance(stops, list) else [stops]
    stopped = bool(new) and new[-1] in stops
    answer = processor.tokenizer.decode(new, skip_special_tokens=True).strip()
    return {"answer": answer, "token_ids": new, "stop_token_ids": stops,
            "stopped_by": new[-1] if stopped else None}, min(margins)


def score_options(model, processor, inputs, options, continuations):
    """Σ log p(token | prompt, earlier tokens) of each continuation, by teacher forcing."""
    tok = processor.tokenizer
    prompt_len = inputs["input_ids"].shape[1]
    scores = []
    for option, cont in zip(options, continuations):
        ids = tok.encode(cont, add_special_tokens=False)
        if not ids:
            sys.exit(f"{cont!r} tokenises to nothing")
        extra = torch.tensor([ids], dtype=inputs["input_ids"].dtype)
        full = dict(inputs)
        full["input_ids"] = torch.cat([inputs["input_ids"], extra], dim=1)
        full["attention_mask"] = torch.cat([inputs["attention_mask"], torch.ones_like(extra)], 1)
        if "token_type_ids" in inputs:
            full["token_type_ids"] = torch.cat([inputs["token_type_ids"], torch.zeros_like(extra)], 1)
        with torch.no_grad():
            logits = model(**full).logits[0].to(torch.float32)
        logp = torch.log_softmax(logits, dim=-1)
        # logits at position t predict token t + 1
        terms = [float(logp[prompt_len - 1 + j, t]) for j, t in enumerate(ids)]
        ll = math.fsum(terms)
        scores.append({"option": option, "continuation": cont, "log_likelihood": ll,
                       "tokens": len(ids), "token_ids": ids})
    best = max(s["log_likelihood"] for s in scores)
    total = math.fsum(math.exp(s["log_likelihood"] - best) for s in scores)
    for s in scores:
        s["probability"] = math.exp(s["log_likelihood"] - best) / total
    winner = next(i for i, s in enumerate(scores) if s["log_likelihood"] == best)
    ranked = sorted((s["log_likelihood"] for s in scores), reverse=True)
    gap = ranked[0] - ranked[1]
    return {"answer": options[winner], "token_ids": scores[winner]["token_ids"],
            "option_scores": scores}, gap


# ---------------------------------------------------------------------------------------------

def build_case(model_name, model, processor, out, case_id, image_names, mode, candidates):
    images = [PIL.Image.open(out / n).convert("RGB") for n in image_names]
    tried = []
    for cand in candidates:
        question, options = cand if mode == "lettered" else (cand, [])
        listed = options if mode == "lettered" else []
        messages, text, add_special, enc = encode_prompt(processor, images, question, listed)
        inputs = model_inputs(enc)
        case = {"id": f"{model_name}/{case_id}", "model": model_name, "images": image_names,
                "question": question, "mode": mode}
        if mode == "lettered":
            case["options"] = options
        if mode == "open":
            case["max_new_tokens"] = OPEN_MAX_NEW_TOKENS
            result, margin = answer_open(model, processor, inputs, OPEN_MAX_NEW_TOKENS)
            quality = {"min_top2_logit_margin": margin}
            ok = margin > MIN_MARGIN
        else:
            case["max_new_tokens"] = OPEN_MAX_NEW_TOKENS  # unused by scoring; what ask would pass
            if mode == "yes_no":
                opts, conts = ["yes", "no"], ["yes", "no"]
            else:
                opts, conts = options, [option_letter(i) for i in range(len(options))]
            result, gap = score_options(model, processor, inputs, opts, conts)
            quality = {"best_score_gap": gap}
            ok = gap > MIN_SCORE_GAP
        tried.append(question)
        if not ok:
            print(f"  {case['id']}: {question!r} has a near-tie {quality}, next question")
            continue
        case.update(messages=messages, prompt_text=text, add_special_tokens=add_special,
                    input_ids=enc["input_ids"][0].tolist(), prompt_tokens=enc["input_ids"].shape[1])
        if "token_type_ids" in enc:
            case["token_type_ids"] = enc["token_type_ids"][0].tolist()
        case["pixel_values_shape"] = list(enc["pixel_values"].shape)
        case.update(result)
        case.update(quality)
        case["questions_skipped"] = tried[:-1]
        pixels = {f"{model_name}/{n}": enc["pixel_values"][i].to(torch.float32).contiguous()
                  for i, n in enumerate(image_names)}
        return case, pixels
    sys.exit(f"{model_name}/{case_id}: every candidate question has a near-tie: {tried}")


def versions():
    return {"python": sys.version.split()[0], "torch": torch.__version__,
            "transformers": transformers.__version__, "tokenizers": tokenizers.__version__,
            "safetensors": safetensors.__version__, "numpy": np.__version__,
            "pillow": PIL.__version__}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=pathlib.Path, default=DEFAULT_OUT)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)  # nothing here is random; pinned anyway
    torch.use_deterministic_algorithms(True)
    write_images(args.out)

    cases, pixels = [], {}
    for model_name in ("gemma3_vlm", "llava"):
        folder = MODELS / model_name
        processor = transformers.AutoProcessor.from_pretrained(folder)
        model = transformers.AutoModelForImageTextToText.from_pretrained(
            folder, dtype=torch.float32, attn_implementation="eager").eval()
        for case_id, image_names, mode, candidates in CASES:
            case, px = build_case(model_name, model, processor, args.out, case_id, image_names,
                                  mode, candidates)
            for k, v in px.items():
                if k in pixels and not torch.equal(pixels[k], v):
                    sys.exit(f"{k}: the processor gave two different pixel_values")
                pixels[k] = v
            q = case.get("min_top2_logit_margin", case.get("best_score_gap"))
            print(f"{case['id']}: {case['answer']!r} ids {case['token_ids']} "
                  f"({case['prompt_tokens']} prompt tokens, margin/gap {q:.4f})")
            cases.append(case)

    # cases.json is the plain list the CLI test reads; the provenance goes beside it.
    (args.out / "cases.json").write_text(json.dumps(cases, indent=1, ensure_ascii=False) + "\n")
    meta = {
        "description": "Reference answers of `medvqa ask` for the tiny VLM fixtures in "
                       "crates/model/tests/fixtures/lm, from transformers; made by "
                       "tools/parity/make_ask_fixtures.py (tools/parity/README.md).",
        "versions": versions(),
        "models_dir": "crates/model/tests/fixtures/lm",
        "min_top2_logit_margin": min(c["min_top2_logit_margin"] for c in cases
                                     if "min_top2_logit_margin" in c),
        "min_best_score_gap": min(c["best_score_gap"] for c in cases if "best_score_gap" in c),
    }
    (args.out / "provenance.json").write_text(json.dumps(meta, indent=1) + "\n")
    safetensors.torch.save_file(dict(sorted(pixels.items())),
                                str(args.out / "pixel_values.safetensors"))


if __name__ == "__main__":
    main()
