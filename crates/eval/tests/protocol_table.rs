//! The comparison table of `docs/protocols.md`, checked: each protocol's verdict on the same
//! answers.

use std::collections::BTreeMap;

use medvqa_eval::protocols::protocol_by_name;
use medvqa_eval::{AnswerType, Question};

fn question(dataset: &str, answer: &str, answer_type: AnswerType) -> Question {
    Question {
        id: "q".into(),
        images: vec!["i.jpg".into()],
        question: "Is there a mass?".into(),
        answer: answer.into(),
        answer_type,
        options: vec![],
        question_type: None,
        modality: None,
        body_system_native: None,
        body_system: None,
        split: Some("test".into()),
        lang: Some("en".into()),
        extra: BTreeMap::from([("dataset".to_owned(), dataset.to_owned())]),
    }
}

/// Verdict of `protocol` on `prediction` for a closed "No" gold of `dataset`.
fn no_gold(protocol: &str, dataset: &str, prediction: &str) -> bool {
    let p = protocol_by_name(protocol).expect("protocol");
    p.judge(&question(dataset, "No", AnswerType::Closed), prediction)
        .correct
}

#[test]
fn closed_no_gold_table() {
    // Columns: medvqa, llava-med, medevalkit on VQA-RAD, medevalkit on SLAKE, lmms-eval,
    // multimedeval.
    let rows: [(&str, [bool; 6]); 8] = [
        ("No.", [true, true, true, true, true, true]),
        ("abnormal", [false, true, true, false, false, false]),
        ("not seen", [true, true, true, false, false, true]),
        ("No, it is not.", [true, true, true, false, false, true]),
        ("yes and no", [false, true, false, false, false, true]),
        ("Nope", [true, true, true, false, true, false]),
        ("none", [true, false, true, false, false, false]),
        ("", [false, false, false, false, false, false]),
    ];
    for (prediction, expected) in rows {
        let got = [
            no_gold("medvqa", "vqa-rad", prediction),
            no_gold("llava-med", "vqa-rad", prediction),
            no_gold("medevalkit", "vqa-rad", prediction),
            no_gold("medevalkit", "slake", prediction),
            no_gold("lmms-eval", "slake", prediction),
            no_gold("multimedeval", "vqa-rad", prediction),
        ];
        assert_eq!(got, expected, "prediction {prediction:?}");
    }
}

#[test]
fn open_gold_table() {
    let q = question("vqa-rad", "left lung", AnswerType::Open);
    let judge = |name: &str| {
        protocol_by_name(name)
            .expect("protocol")
            .judge(&q, "The left lung.")
    };
    assert!(judge("medvqa").correct);
    assert!(!judge("lmms-eval").correct, "lmms-eval keeps articles");
    assert_eq!(judge("llava-med").score, 1.0);
    assert_eq!(judge("multimedeval").score, 1.0);
    assert!(!judge("medevalkit").correct, "string equality");
}
