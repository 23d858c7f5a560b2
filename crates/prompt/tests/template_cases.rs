//! Jinja features that published chat templates use, rendered by minijinja here and by
//! transformers 4.57.6's `render_jinja_template` (Jinja2 3.1.6) in
//! `tools/parity/make_template_cases.py`: output identical, or the same raised message.

use std::path::Path;

use medvqa_prompt::{ChatTemplate, Message, PromptError, SpecialTokens};
use serde_json::Value;

#[test]
fn template_features_match_transformers() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/template_cases.json");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let cases = doc["cases"].as_array().unwrap();
    assert!(cases.len() >= 8);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let mut special = SpecialTokens::default();
        for (k, v) in case["special_tokens"].as_object().unwrap() {
            special
                .named
                .insert(k.clone(), v.as_str().unwrap().to_owned());
        }
        let template =
            ChatTemplate::new(name, case["template"].as_str().unwrap(), special).unwrap();
        let messages: Vec<Message> = case["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| Message::from_json(m).unwrap())
            .collect();
        let got = template.render(&messages, case["add_generation_prompt"].as_bool().unwrap());
        match (case.get("text"), case.get("error")) {
            (Some(want), None) => assert_eq!(got.unwrap(), want.as_str().unwrap(), "case {name}"),
            (None, Some(want)) => match got {
                Err(PromptError::TemplateRaised { message, .. }) => {
                    assert_eq!(message, want.as_str().unwrap(), "case {name}")
                }
                other => panic!("case {name}: expected the template to raise, got {other:?}"),
            },
            _ => panic!("case {name}: needs text or error"),
        }
    }
}
