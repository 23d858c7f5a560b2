"""Crafts predictions for VQA-RAD (official test split) and SLAKE (English test) that hit every
answer-normalisation rule the scoring protocols differ on: case, punctuation, articles, number
words, contractions, "abnormal"/"not seen"/"none" against yes/no, sentences around the answer,
boxed and tagged answers, empty and blank answers, wrong answers.

Usage: python make_predictions.py VQA_RAD_JSON SLAKE_TEST_JSON OUT_DIR [OMNIMEDVQA_JSON]
Writes OUT_DIR/vqa_rad_test_predictions.jsonl and OUT_DIR/slake_en_test_predictions.jsonl,
rows {"id", "prediction", "variant"} in dataset file order; with an OmniMedVQA QA file also
OUT_DIR/omnimedvqa_mc_predictions.jsonl, many answers per multiple-choice question.
"""

import json
import sys

NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]


def swap_numbers(gold):
    """Digits become words and words digits; answers without numbers get a number word."""
    out, changed = [], False
    for tok in gold.split():
        if tok.isdigit() and int(tok) <= 10:
            out.append(NUMBER_WORDS[int(tok)])
            changed = True
        elif tok.lower() in NUMBER_WORDS:
            out.append(str(NUMBER_WORDS.index(tok.lower())))
            changed = True
        else:
            out.append(tok)
    return " ".join(out) if changed else gold + " two"


def opposite(gold):
    g = gold.strip().lower()
    return {"yes": "no", "no": "yes"}.get(g, "yes")


CLOSED = [
    ("exact", lambda g, o: g),
    ("upper", lambda g, o: g.upper()),
    ("period", lambda g, o: g + "."),
    ("capital_period", lambda g, o: g.strip().capitalize() + "."),
    ("abnormal", lambda g, o: "abnormal"),
    ("not_seen", lambda g, o: "not seen"),
    ("no_sentence", lambda g, o: "No, it is not."),
    ("yes_sentence", lambda g, o: "Yes, there is a mass in the image."),
    ("empty", lambda g, o: ""),
    ("blank", lambda g, o: "   "),
    ("opposite", lambda g, o: opposite(g)),
    ("answer_is", lambda g, o: "The answer is " + g),
    ("unknown", lambda g, o: "unknown"),
    ("yes_and_no", lambda g, o: "yes and no"),
    ("boxed", lambda g, o: "\\boxed{" + g + "}"),
    ("tagged", lambda g, o: "<answer>" + g + "</answer>"),
    ("nope", lambda g, o: "Nope"),
    ("no_evidence", lambda g, o: "There is no evidence of it"),
    ("contraction", lambda g, o: "It isnt present"),
    ("none", lambda g, o: "none"),
    ("exclaim", lambda g, o: g + "!!!"),
    ("parenthesised", lambda g, o: "(" + g + ")"),
    ("answer_colon", lambda g, o: "Answer: " + g.lower()),
]

OPEN = [
    ("exact", lambda g, o: g),
    ("upper", lambda g, o: g.upper()),
    ("period", lambda g, o: g + "."),
    ("answer_is", lambda g, o: "The answer is " + g + "."),
    ("article", lambda g, o: "the " + g),
    ("number_words", lambda g, o: swap_numbers(g)),
    ("sentence", lambda g, o: "I think it shows " + g + " in this image."),
    ("empty", lambda g, o: ""),
    ("blank", lambda g, o: "   "),
    ("other_gold", lambda g, o: o),
    ("first_token", lambda g, o: g.split()[0] if g.split() else g),
    ("hyphens", lambda g, o: g.replace(" ", "-") + "!"),
    ("parenthesised", lambda g, o: "(" + g + ")"),
    ("repeated", lambda g, o: g + ", " + g),
    ("boxed", lambda g, o: "\\boxed{" + g + "}"),
    ("tagged", lambda g, o: "<answer>" + g + "</answer>"),
    ("xray_alias", lambda g, o: g.lower().replace("x-ray", "xray") if "x-ray" in g.lower() else "x ray"),
    ("answer_colon", lambda g, o: "Answer: " + g),
    ("abnormal", lambda g, o: "abnormal"),
    ("aside", lambda g, o: g + " (likely)"),
    ("ellipsis", lambda g, o: "a " + g + "..."),
    ("decimal", lambda g, o: "3.5 cm, " + g),
    ("none", lambda g, o: "none"),
    ("not_seen", lambda g, o: "Not seen."),
]


def craft(rows):
    """rows: (id, gold, is_open) in dataset order -> list of prediction records."""
    out, counters, last_open = [], {True: 0, False: 0}, "lung"
    for qid, gold, is_open in rows:
        table = OPEN if is_open else CLOSED
        name, make = table[counters[is_open] % len(table)]
        counters[is_open] += 1
        out.append({"id": qid, "prediction": make(gold, last_open), "variant": name})
        if is_open:
            last_open = gold
    return out


def craft_multiple_choice(items):
    """Answers to each multiple-choice item that walk every path of an option-letter parser."""
    out = []
    for item in items:
        options = [item[k] for k in ["option_A", "option_B", "option_C", "option_D"] if k in item]
        letters = "ABCD"[: len(options)]
        gold = options.index(item["gt_answer"])
        wrong = (gold + 1) % len(options)
        L, T, W, WT = letters[gold], options[gold], letters[wrong], options[wrong]
        variants = [
            ("letter", L), ("lower_letter", L.lower()), ("letter_period", L + "."),
            ("letter_text", f"{L}. {T}"), ("parenthesised", f"({L})"), ("answer_is", f"The answer is {L}"),
            ("answer_colon", f"Answer: {L}"), ("tagged", f"<answer>{L}</answer>"), ("boxed", "\\boxed{" + L + "}"),
            ("letter_then_reason", f"{L}\n\nBecause the image shows it."),
            ("reason_then_letter", f"Looking at the image.\n\n{L}. {T}"), ("text", T), ("lower_text", T.lower()),
            ("wrong_letter", W), ("wrong_text", WT), ("sentence_text", f"I think the image shows {T}"),
            ("contrast", f"It is {WT} rather than {T}"), ("empty", ""), ("none_of_them", "none of the above"),
            ("long", "After a careful look at every region of this image, considering the texture, the "
                     "intensity and the distribution of the findings across the whole field of view, and "
                     f"after ruling out the other options one by one, my final choice is {T}."),
            ("chinese_marker", f"答案:{L}"), ("bold_marker", f"**Answer**: {L}"), ("letter_colon_text", f"{L}: {T}"),
            ("option_word", f"option {L}"),
        ]
        for name, prediction in variants:
            out.append({"id": str(item["question_id"]), "prediction": prediction, "variant": name})
    return out


def main():
    vqa_rad_path, slake_path, out_dir = sys.argv[1:4]
    if len(sys.argv) > 4:
        items = json.load(open(sys.argv[4], encoding="utf-8"))
        with open(f"{out_dir}/omnimedvqa_mc_predictions.jsonl", "w", encoding="utf-8") as f:
            for rec in craft_multiple_choice(items):
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    rad = json.load(open(vqa_rad_path, encoding="utf-8"))
    rad_rows = [
        (str(r["qid"]).strip(), str(r["answer"]).strip(), r["answer_type"].strip().upper() == "OPEN")
        for r in rad
        if r["phrase_type"].startswith("test_")
    ]
    slake = json.load(open(slake_path, encoding="utf-8"))
    slake_rows = [
        (str(r["qid"]), str(r["answer"]).strip(), r["answer_type"].strip().upper() == "OPEN")
        for r in slake
        if r["q_lang"] == "en"
    ]
    for name, rows in [("vqa_rad_test", rad_rows), ("slake_en_test", slake_rows)]:
        with open(f"{out_dir}/{name}_predictions.jsonl", "w", encoding="utf-8") as f:
            for rec in craft(rows):
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
