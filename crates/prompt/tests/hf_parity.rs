//! Parity with transformers 4.57.6 on the tiny LM fixtures (`crates/model/tests/fixtures/lm`,
//! written by `tools/parity/make_lm_fixtures.py` with the real `Gemma3Processor` /
//! `LlavaProcessor`): rendered chat text, input_ids after image expansion, token_type_ids,
//! encode/decode round trips — all exact. The `*_v5` folders (written by transformers 5.23)
//! must give the same results as their 4.x twins. Plus the error cases.

use std::path::{Path, PathBuf};

use medvqa_prompt::{ct_user_message, Message, Processor, PromptError};
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../model/tests/fixtures/lm")
}

fn cases() -> Value {
    let path = fixtures().join("prompt_cases.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn messages(v: &Value) -> Vec<Message> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|m| Message::from_json(m).unwrap())
        .collect()
}

/// Every conversation of `proc_name` checked against the folder `folder`.
fn check_conversations(proc_name: &str, folder: &str) {
    let all = cases();
    let p = &all["processors"][proc_name];
    let processor = Processor::load(&fixtures().join(folder)).unwrap();
    assert_eq!(
        processor.tokenizer().vocab_size() as u64,
        p["vocab_size"].as_u64().unwrap()
    );
    let convs = p["conversations"].as_array().unwrap();
    assert!(
        convs.len() >= 6,
        "{proc_name}: expected several conversations"
    );
    for c in convs {
        let name = c["name"].as_str().unwrap();
        let msgs = messages(&c["messages"]);
        let gen = c["add_generation_prompt"].as_bool().unwrap();
        let n_images = c["n_images"].as_u64().unwrap() as usize;
        let want_text = c["text"].as_str().unwrap();
        let template = processor
            .template()
            .expect("fixture folder has a chat template");
        let text = template.render(&msgs, gen).unwrap();
        assert_eq!(text, want_text, "{folder}/{name}: rendered text");

        let add_special = c["add_special_tokens"].as_bool().unwrap();
        let enc = processor.encode(&text, n_images, add_special).unwrap();
        assert_eq!(
            enc.input_ids,
            ids(&c["input_ids"]),
            "{folder}/{name}: input_ids"
        );
        assert_eq!(enc.attention_mask, vec![1; enc.input_ids.len()]);
        match c.get("token_type_ids") {
            Some(t) => assert_eq!(
                enc.token_type_ids.as_deref(),
                Some(&ids(t)[..]),
                "{folder}/{name}: token_type_ids"
            ),
            None => assert_eq!(enc.token_type_ids, None, "{folder}/{name}"),
        }

        // apply_chat_template(tokenize=True) path: same text, same ids.
        let (chat_text, chat_enc) = processor.encode_chat(&msgs, gen).unwrap();
        assert_eq!(chat_text, want_text);
        assert_eq!(chat_enc, enc, "{folder}/{name}: encode_chat");
    }
}

fn check_round_trips(proc_name: &str, folder: &str) {
    let all = cases();
    let trips = all["processors"][proc_name]["round_trips"]
        .as_array()
        .unwrap();
    let processor = Processor::load(&fixtures().join(folder)).unwrap();
    let tok = processor.tokenizer();
    assert!(!trips.is_empty());
    for t in trips {
        let text = t["text"].as_str().unwrap();
        let with_special = ids(&t["ids_with_special"]);
        let plain = ids(&t["ids"]);
        assert_eq!(
            tok.encode(text, true).unwrap(),
            with_special,
            "{folder}: {text:?}"
        );
        assert_eq!(
            tok.encode(text, false).unwrap(),
            plain,
            "{folder}: {text:?}"
        );
        let tokens: Vec<String> = with_special
            .iter()
            .map(|&i| tok.id_to_token(i).unwrap())
            .collect();
        let want_tokens: Vec<&str> = t["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap())
            .collect();
        assert_eq!(tokens, want_tokens, "{folder}: {text:?}");
        assert_eq!(
            tok.decode(&with_special, false).unwrap(),
            t["decoded"].as_str().unwrap(),
            "{folder}: {text:?}"
        );
        assert_eq!(
            tok.decode(&with_special, true).unwrap(),
            t["decoded_skip_special"].as_str().unwrap(),
            "{folder}: {text:?}"
        );
    }
}

#[test]
fn gemma3_chat_and_ids_match_transformers() {
    check_conversations("gemma3_vlm", "gemma3_vlm");
}

#[test]
fn llava_chat_and_ids_match_transformers() {
    check_conversations("llava", "llava");
}

#[test]
fn v5_folders_give_the_same_prompts() {
    check_conversations("gemma3_vlm", "gemma3_vlm_v5");
    check_conversations("llava", "llava_v5");
}

#[test]
fn round_trips_match_transformers() {
    check_round_trips("gemma3_vlm", "gemma3_vlm");
    check_round_trips("llava", "llava");
    check_round_trips("gemma3_vlm", "gemma3_vlm_v5");
    check_round_trips("llava", "llava_v5");
}

#[test]
fn gemma3_image_expansion_string() {
    let processor = Processor::load(&fixtures().join("gemma3_vlm")).unwrap();
    // Gemma3Processor.full_image_sequence with image_seq_length 4 (processor_config.json).
    let expanded = processor.expand_images("a<start_of_image>b", 1, 0).unwrap();
    assert_eq!(
        expanded,
        "a\n\n<start_of_image><image_soft_token><image_soft_token><image_soft_token><image_soft_token><end_of_image>\n\nb"
    );
}

#[test]
fn llava_tokens_per_image_from_processor_files() {
    let processor = Processor::load(&fixtures().join("llava")).unwrap();
    // crop 16 px / patch 8 → 4 patches, + 1 additional (CLS), − 1 for strategy "default".
    assert_eq!(
        processor.expand_images("<image>\nq", 1, 0).unwrap(),
        "<image><image><image><image>\nq"
    );
}

#[test]
fn generation_defaults_and_stop_tokens() {
    let processor = Processor::load(&fixtures().join("gemma3_vlm")).unwrap();
    let g = processor.generation();
    // gemma3_vlm/generation_config.json
    assert_eq!(g.eos_token_ids, vec![1, 5]);
    assert_eq!((g.bos_token_id, g.pad_token_id), (Some(2), Some(0)));
    assert!(g.do_sample);
    assert_eq!((g.top_k, g.top_p), (Some(64), Some(0.95)));
    assert!(processor.stop_tokens().contains(5));
    assert_eq!(processor.pad_token_id(), Some(0));
}

#[test]
fn left_padded_batch() {
    let all = cases();
    let convs = all["processors"]["gemma3_vlm"]["conversations"]
        .as_array()
        .unwrap();
    let processor = Processor::load(&fixtures().join("gemma3_vlm")).unwrap();
    let long = &convs[2]; // two images
    let short = &convs[0]; // text only
    let texts = [
        long["text"].as_str().unwrap(),
        short["text"].as_str().unwrap(),
    ];
    let batch = processor.encode_batch(&texts, &[2, 0], false).unwrap();
    let long_ids = ids(&long["input_ids"]);
    let short_ids = ids(&short["input_ids"]);
    let pad = long_ids.len() - short_ids.len();
    assert_eq!(batch.input_ids[0], long_ids);
    assert_eq!(&batch.input_ids[1][pad..], &short_ids[..]);
    assert!(batch.input_ids[1][..pad]
        .iter()
        .all(|&t| t == batch.pad_token_id));
    assert_eq!(
        batch.attention_mask[1].iter().filter(|&&m| m == 0).count(),
        pad
    );
    assert!(batch.attention_mask[1][pad..].iter().all(|&m| m == 1));
    let types = batch.token_type_ids.unwrap();
    assert_eq!(types[0], ids(&long["token_type_ids"]));
    assert!(types[1].iter().all(|&t| t == 0));
}

#[test]
fn ct_message_renders_slice_labels_after_images() {
    let processor = Processor::load(&fixtures().join("gemma3_vlm")).unwrap();
    let msg = ct_user_message(2, Some("Review the slices."), "Any lesion?", &[]);
    let (text, enc) = processor.encode_chat(&[msg], true).unwrap();
    assert_eq!(
        text,
        "<bos><start_of_turn>user\nReview the slices.<start_of_image>SLICE 1<start_of_image>SLICE 2Any lesion?<end_of_turn>\n<start_of_turn>model\n"
    );
    let soft = enc
        .token_type_ids
        .unwrap()
        .iter()
        .filter(|&&t| t == 1)
        .count();
    assert_eq!(soft, 2 * 4);
}

#[test]
fn image_count_mismatch_is_a_clear_error() {
    for folder in ["gemma3_vlm", "llava"] {
        let all = cases();
        let proc_name = folder;
        let one = &all["processors"][proc_name]["conversations"][1];
        assert_eq!(one["n_images"], 1);
        let processor = Processor::load(&fixtures().join(folder)).unwrap();
        let err = processor
            .encode(one["text"].as_str().unwrap(), 2, false)
            .unwrap_err();
        assert!(
            matches!(
                err,
                PromptError::ImageCount {
                    placeholders: 1,
                    images: 2,
                    ..
                }
            ),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(
            text.contains("1 image placeholder(s)") && text.contains("2 image(s) given"),
            "{text}"
        );
    }
    // A text-only model refuses images.
    let causal = Processor::load(&fixtures().join("llama_causal")).unwrap();
    let err = causal.encode("hello", 1, true).unwrap_err();
    assert!(
        matches!(err, PromptError::NoImageSupport { images: 1, .. }),
        "{err:?}"
    );
}

#[test]
fn template_raise_is_a_clear_error() {
    let processor = Processor::load(&fixtures().join("gemma3_vlm")).unwrap();
    // Gemma 3's template requires user/assistant alternation.
    let msgs = [Message::text("user", "a"), Message::text("user", "b")];
    let err = processor
        .template()
        .unwrap()
        .render(&msgs, true)
        .unwrap_err();
    match &err {
        PromptError::TemplateRaised {
            source_name,
            message,
        } => {
            assert_eq!(
                message,
                "Conversation roles must alternate user/assistant/user/assistant/..."
            );
            assert!(source_name.ends_with("chat_template.json"), "{source_name}");
        }
        other => panic!("expected TemplateRaised, got {other:?}"),
    }
}

#[test]
fn missing_tokenizer_json_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let src = fixtures().join("gemma3_vlm");
    for f in [
        "config.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "processor_config.json",
    ] {
        std::fs::copy(src.join(f), dir.path().join(f)).unwrap();
    }
    let err = Processor::load(dir.path()).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(&dir.path().join("tokenizer.json").display().to_string()),
        "{text}"
    );
    assert!(text.contains("tokenizer.json not found"), "{text}");

    std::fs::write(
        dir.path().join("tokenizer.json"),
        "{\"not\": \"a tokenizer\"}",
    )
    .unwrap();
    let err = Processor::load(dir.path()).unwrap_err();
    assert!(matches!(err, PromptError::TokenizerLoad { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("tokenizer.json: cannot load tokenizer"),
        "{err}"
    );
}

#[test]
fn tokenizer_config_chat_template_and_named_templates() {
    let dir = tempfile::tempdir().unwrap();
    let src = fixtures().join("llama_causal");
    for f in [
        "config.json",
        "tokenizer.json",
        "special_tokens_map.json",
        "generation_config.json",
    ] {
        std::fs::copy(src.join(f), dir.path().join(f)).unwrap();
    }
    let mut tc: Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("tokenizer_config.json")).unwrap())
            .unwrap();
    tc["chat_template"] = serde_json::json!([
        {"name": "default", "template": "{% for m in messages %}[{{ m.role }}] {{ m.content }}{% endfor %}"},
        {"name": "tool_use", "template": "{{ bos_token }}tools"}
    ]);
    std::fs::write(dir.path().join("tokenizer_config.json"), tc.to_string()).unwrap();
    let p = Processor::load(dir.path()).unwrap();
    let t = p.template().unwrap();
    assert!(
        t.source_name().ends_with("tokenizer_config.json#default"),
        "{}",
        t.source_name()
    );
    assert_eq!(
        t.render(&[Message::text("user", "hi")], false).unwrap(),
        "[user] hi"
    );
    let special = p.special_tokens().clone();
    let tool =
        medvqa_prompt::ChatTemplate::load(dir.path(), special.clone(), Some("tool_use")).unwrap();
    assert_eq!(
        tool.render(&[], false).unwrap(),
        format!("{}tools", special.bos().unwrap())
    );
    let err = medvqa_prompt::ChatTemplate::load(dir.path(), special, Some("rag")).unwrap_err();
    assert!(
        err.to_string()
            .contains("no chat template named \"rag\" (available: default, tool_use)"),
        "{err}"
    );
}
