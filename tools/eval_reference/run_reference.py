"""Runs the published scoring code of four medical-VQA toolkits on the crafted predictions and
writes the numbers our Rust protocols must reproduce.

The toolkits' code is not part of medvqa: pass the path of each checkout (see README.md for
the commits used). Only the scoring functions are taken from each checkout, by name, with
Python's `ast` module, and executed with the toolkit's own imports (nltk, rouge, mathruler,
torchmetrics); the model, download and dataset-loading code around them is not run.

Usage:
  python run_reference.py --llava-med DIR --medevalkit DIR --lmms-eval DIR --multimedeval DIR \
      --vqa-rad VQA_RAD_JSON --slake SLAKE_TEST_JSON --fixtures DIR
"""

import argparse
import ast
import collections
import json
import os
import re
import sys
import types


def load_defs(path, names, namespace, class_name=None):
    """Executes the top-level (or `class_name` member) definitions `names` of a source file in
    `namespace`. Raises if one is missing, so a changed toolkit fails loudly."""
    tree = ast.parse(open(path, encoding="utf-8").read(), filename=path)
    body = tree.body
    if class_name is not None:
        body = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == class_name).body
    wanted, found = set(names), set()
    nodes = []
    for node in body:
        if isinstance(node, ast.FunctionDef) and node.name in wanted:
            nodes.append(node)
            found.add(node.name)
        elif isinstance(node, ast.Assign):
            targets = {t.id for t in node.targets if isinstance(t, ast.Name)}
            if targets & wanted:
                nodes.append(node)
                found |= targets & wanted
    missing = wanted - found
    if missing:
        raise SystemExit(f"{path}: definitions not found: {sorted(missing)}")
    exec(compile(ast.Module(body=nodes, type_ignores=[]), path, "exec"), namespace)
    return namespace


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def questions(args):
    """(dataset key, rows) with rows {id, question, answer, answer_type, lang} in file order,
    the same selection and order as medvqa's readers."""
    rad = json.load(open(args.vqa_rad, encoding="utf-8"))
    rad_rows = [
        {
            "id": str(r["qid"]).strip(),
            "question": r["question"],
            "answer": str(r["answer"]).strip(),
            "answer_type": r["answer_type"].strip().upper(),
            "lang": "en",
        }
        for r in rad
        if r["phrase_type"].startswith("test_")
    ]
    slake = json.load(open(args.slake, encoding="utf-8"))
    slake_rows = [
        {
            "id": str(r["qid"]),
            "question": r["question"],
            "answer": str(r["answer"]).strip(),
            "answer_type": r["answer_type"].strip().upper(),
            "lang": r["q_lang"],
            "modality": r["modality"],
            "content_type": r["content_type"],
        }
        for r in slake
        if r["q_lang"] == "en"
    ]
    return {"vqa_rad_test": rad_rows, "slake_en_test": slake_rows}


# --- LLaVA-Med: llava/eval/run_eval.py + eval_metrics/ ---------------------------------------

def llava_med(checkout, rows, preds):
    sys.path.insert(0, os.path.join(checkout, "llava", "eval"))
    from eval_metrics import evaluate_metrics, glossary  # noqa: E402  (the toolkit's modules)
    from nltk.translate.bleu_score import sentence_bleu

    ns = {
        "collections": collections,
        "sentence_bleu": sentence_bleu,
        "calculate_exactmatch": evaluate_metrics.calculate_exactmatch,
        "calculate_f1score": evaluate_metrics.calculate_f1score,
        "calculate_appearance_with_normalization": evaluate_metrics.calculate_appearance_with_normalization,
        "normalize_word": glossary.normalize_word,
        # The toolkit prints a tabulate table of 6 significant digits; keep the raw rows.
        "tabulate": lambda rows, headers: {name: value for name, value in rows},
    }
    load_defs(os.path.join(checkout, "llava", "eval", "run_eval.py"), ["evaluate"], ns)
    evaluate = ns["evaluate"]
    # LLaVA-Med's candidate.json (answer list for "open accuracy") is not published; the
    # candidate set here is the evaluated split's gold answers in first-seen order.
    candidates = {"0": list(dict.fromkeys(r["answer"] for r in rows))}
    gt = [{"conversations": [{}, {"value": r["answer"]}], "answer_type": r["answer_type"]} for r in rows]
    pred = [{"text": preds[r["id"]], "question_id": r["id"]} for r in rows]
    aggregate = evaluate(gt, pred, candidates)
    items = {}
    dummy_open = ({"conversations": [{}, {"value": "x"}], "answer_type": "OPEN"}, {"text": "x", "question_id": "_"})
    for g, p, r in zip(gt, pred, rows):
        if r["answer_type"] == "OPEN":
            m = evaluate([g], [p], candidates)
            items[r["id"]] = {
                "exact_match": m["exact match score"],
                "f1": m["f1 score"],
                "precision": m["precision"],
                "recall": m["recall"],
                "bleu1": m["bleu_score_1"],
                "open_hit": m["open accuracy"],
            }
        else:
            m = evaluate([g, dummy_open[0]], [p, dummy_open[1]], candidates)
            items[r["id"]] = {"closed_hit": m["yes/no accuracy"]}
    # Percentages, exactly as the toolkit computes them (mean * 100).
    return {"aggregate": aggregate, "items": items}


# --- MedEvalKit: utils/utils.py + utils/{VQA_RAD,SLAKE}/*.py cal_metrics ----------------------

def medevalkit(checkout, rows, preds, dataset):
    from mathruler.grader import extract_boxed_content
    from nltk.translate.bleu_score import sentence_bleu
    from rouge import Rouge

    ns = {"re": re, "sentence_bleu": sentence_bleu, "Rouge": Rouge, "extract_boxed_content": extract_boxed_content}
    load_defs(
        os.path.join(checkout, "utils", "utils.py"),
        ["tokenize", "bleu", "rouge", "parse_response", "judge_close_end_vqa", "judge_judgement",
         "judge_open_end_vqa", "calculate_f1", "get_content_between_a_b", "extract"],
        ns,
    )
    module, cls = {"vqa_rad_test": ("VQA_RAD", "VQA_RAD"), "slake_en_test": ("SLAKE", "SLAKE")}[dataset]
    ns.update({"tqdm": lambda x: x, "os": os})
    load_defs(os.path.join(checkout, "utils", module, module + ".py"), ["cal_metrics"], ns, class_name=cls)
    samples, crashed = [], {}
    for r in rows:
        s = {"response": preds[r["id"]], "answer": r["answer"], "question": r["question"],
             "lang": r["lang"], "answer_type": r["answer_type"], "id": r["id"]}
        # cal_metrics aborts the whole run when one open answer makes the toolkit raise (empty
        # or blank answers: rouge "Hypothesis is empty", calculate_f1 returning a bare 0).
        # Those items are recorded and left out; medvqa's protocol flags them `toolkit_error`.
        # A run of cal_metrics on this sample plus one good open and one good closed sample
        # raises exactly when the sample alone would abort the toolkit's run.
        pads = [
            {"response": "lung", "answer": "lung", "question": "q", "lang": "en", "answer_type": "OPEN"},
            {"response": "yes", "answer": "yes", "question": "q", "lang": "en", "answer_type": "CLOSED"},
        ]
        try:
            ns["cal_metrics"](None, [dict(s)] + pads)
        except Exception as e:  # noqa: BLE001 - recording the toolkit's failure is the point
            crashed[r["id"]] = f"{type(e).__name__}: {e}"
            continue
        samples.append(s)
    metrics, out = ns["cal_metrics"](None, samples)
    items = {}
    for s in out:
        item = {"correct": bool(s["correct"])}
        if "metrics" in s:
            item.update({k: float(v) for k, v in s["metrics"].items()})
        items[s["id"]] = item
    return {"aggregate": metrics, "items": items, "toolkit_errors": crashed}


def medevalkit_multiple_choice(checkout, items, cases):
    """OmniMedVQA's construct_messages + cal_metrics (judge_multi_choice) on crafted answers."""
    from mathruler.grader import extract_boxed_content
    from nltk.translate.bleu_score import sentence_bleu
    from rouge import Rouge

    ns = {"re": re, "sentence_bleu": sentence_bleu, "Rouge": Rouge, "extract_boxed_content": extract_boxed_content,
          "difflib": __import__("difflib")}
    load_defs(os.path.join(checkout, "utils", "utils.py"),
              ["parse_response", "get_content_between_a_b", "extract", "str_similarity",
               "find_most_similar_index", "judge_multi_choice"], ns)
    load_defs(os.path.join(checkout, "utils", "question_formats.py"), ["get_multiple_choice_prompt"], ns)
    ns["os"] = os
    load_defs(os.path.join(checkout, "utils", "OmniMedVQA", "OmniMedVQA.py"),
              ["construct_messages", "cal_metrics"], ns, class_name="OmniMedVQA")
    ns["defaultdict"] = collections.defaultdict
    # cal_metrics reads `modality_type`; the release's one item spelled `modality` would raise
    # KeyError there, so the harness supplies the field (it only feeds per-modality counts).
    by_id = {str(item["question_id"]): {"modality_type": item.get("modality"), **item} for item in items}
    samples = []
    for case in cases:
        sample = ns["construct_messages"](None, dict(by_id[case["id"]]))
        sample["response"] = case["prediction"]
        samples.append(sample)
    metrics, out = ns["cal_metrics"](None, samples)
    return {"aggregate": metrics["total metrics"],
            "items": [{"id": c["id"], "variant": c["variant"], "correct": bool(s["correct"])} for c, s in zip(cases, out)]}


# --- lmms-eval: lmms_eval/tasks/slake/utils.py ------------------------------------------------

def lmms_eval(checkout, rows, preds):
    import string
    import numpy as np

    class Logger:
        def info(self, *_):
            pass

    ns = {"re": re, "string": string, "np": np, "eval_logger": Logger(), "Any": object,
          "Dict": dict, "List": list, "Iterable": list}
    names = ["ANSWER_TYPE_OPEN", "ANSWER_TYPE_CLOSED", "MODALITY_CT", "MODALITY_MRI", "MODALITY_XRAY",
             "CONTENT_ABNORMALITY", "CONTENT_COLOR", "CONTENT_KG", "CONTENT_MODALITY", "CONTENT_ORGAN",
             "CONTENT_PLANE", "CONTENT_POSITION", "CONTENT_QUANTITY", "CONTENT_SHAPE", "CONTENT_SIZE",
             "EN_YES", "EN_NO", "ZH_YES", "ZH_NO", "ZH_PUNCTUATION", "SLAKE_METRICS",
             "slake_process_results", "normalize_answer", "_accuracy", "_accuracy_for", "_normalize_yes_no",
             "_normalize_medical_aliases", "_normalize_language", "_normalize_answer_type",
             "_normalize_group_value", "_log_breakdown", "slake_aggregate_accuracy",
             "slake_aggregate_open_accuracy", "slake_aggregate_closed_accuracy"]
    load_defs(os.path.join(checkout, "lmms_eval", "tasks", "slake", "utils.py"), names, ns)
    records, items = [], {}
    for r in rows:
        doc = {"qid": int(r["id"]), "answer": r["answer"], "q_lang": r["lang"], "answer_type": r["answer_type"],
               "modality": r["modality"], "content_type": r["content_type"]}
        rec = ns["slake_process_results"](doc, [preds[r["id"]]])["slake_accuracy"]
        records.append(rec)
        items[r["id"]] = {"correct": bool(rec["is_correct"]), "prediction_normalized": rec["prediction_normalized"],
                          "target_normalized": rec["target_normalized"]}
    aggregate = {
        "slake_accuracy": ns["slake_aggregate_accuracy"](records),
        "slake_open_accuracy": ns["slake_aggregate_open_accuracy"](records),
        "slake_closed_accuracy": ns["slake_aggregate_closed_accuracy"](records),
    }
    return {"aggregate": aggregate, "items": items}


# --- MultiMedEval: multimedeval/task_families.py VQA.evaluate + utils.clean_str -------------

def multimedeval(checkout, rows, preds):
    from torchmetrics.text import BLEUScore

    ns = {"re": re}
    load_defs(os.path.join(checkout, "multimedeval", "utils.py"),
              ["contractions", "manual_map", "articles", "period_strip", "comma_strip", "punct", "clean_str"], ns)

    class EvaluationOutput:
        def __init__(self, answer_log, metrics):
            self.answer_log, self.metrics = answer_log, metrics

    methods = {"BLEUScore": BLEUScore, "clean_str": ns["clean_str"], "EvaluationOutput": EvaluationOutput}
    load_defs(os.path.join(checkout, "multimedeval", "task_families.py"), ["_preprocess", "evaluate"], methods,
              class_name="VQA")
    getter = {}
    load_defs(os.path.join(checkout, "multimedeval", "vqa.py"), ["get_correct_answer"], getter, class_name="SLAKE")

    class Task:
        """Stands in for the toolkit's Benchmark: holds the samples the methods index."""

        def __init__(self, samples):
            self.samples = samples
            self.bleu = BLEUScore(n_gram=1)  # as VQA.__init__

        def __getitem__(self, idx):
            return {"sample": self.samples[idx]}

    Task._preprocess = methods["_preprocess"]
    Task.evaluate = methods["evaluate"]
    Task.get_correct_answer = getter["get_correct_answer"]

    class Answer:
        def __init__(self, text):
            self.text = text

    task = Task([{"answer": r["answer"]} for r in rows])
    output = task.evaluate([{"answer": Answer(preds[r["id"]]), "idx": i} for i, r in enumerate(rows)])
    items = {}
    for r, log in zip(rows, output.answer_log[1:]):
        items[r["id"]] = {"f1": float(log[2]), "bleu1": float(log[3]), "recall": float(log[4])}
    return {"aggregate": {k: float(v) for k, v in output.metrics.items()}, "items": items}


def main():
    p = argparse.ArgumentParser()
    for flag in ["--llava-med", "--medevalkit", "--lmms-eval", "--multimedeval", "--vqa-rad", "--slake", "--fixtures"]:
        p.add_argument(flag, required=True)
    p.add_argument("--omnimedvqa", help="OmniMedVQA QA file whose crafted answers are in --fixtures")
    args = p.parse_args()
    if args.omnimedvqa:
        items = json.load(open(args.omnimedvqa, encoding="utf-8"))
        cases = read_jsonl(os.path.join(args.fixtures, "omnimedvqa_mc_predictions.jsonl"))
        result = {"toolkit": "medevalkit", "dataset": "omnimedvqa_mc", "n": len(cases),
                  **medevalkit_multiple_choice(args.medevalkit, items, cases)}
        path = os.path.join(args.fixtures, "medevalkit_omnimedvqa_mc.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1, sort_keys=True, ensure_ascii=False)
            f.write("\n")
        print(path, json.dumps(result["aggregate"], sort_keys=True))
    data = questions(args)
    for dataset, rows in data.items():
        preds = {rec["id"]: rec["prediction"] for rec in read_jsonl(os.path.join(args.fixtures, f"{dataset}_predictions.jsonl"))}
        runs = {
            "llava-med": lambda: llava_med(args.llava_med, rows, preds),
            "medevalkit": lambda: medevalkit(args.medevalkit, rows, preds, dataset),
            "multimedeval": lambda: multimedeval(args.multimedeval, rows, preds),
        }
        if dataset == "slake_en_test":
            runs["lmms-eval"] = lambda: lmms_eval(args.lmms_eval, rows, preds)
        for toolkit, run in runs.items():
            result = run()
            result = {"toolkit": toolkit, "dataset": dataset, "n": len(rows), **result}
            path = os.path.join(args.fixtures, f"{toolkit}_{dataset}.json")
            with open(path, "w", encoding="utf-8") as f:
                json.dump(result, f, indent=1, sort_keys=True, ensure_ascii=False)
                f.write("\n")
            print(path, json.dumps(result["aggregate"], sort_keys=True))


if __name__ == "__main__":
    main()
