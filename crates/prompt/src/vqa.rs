//! User messages for visual question answering: images + question (+ answer options), and the
//! MedGemma 1.5 layout for a CT/MR series given as slices.

use crate::template::{ContentPart, Message};

/// The sentence LLaVA-1.5 appends to multiple-choice questions (Liu et al. 2023, "Improved
/// Baselines with Visual Instruction Tuning", Table 7, response-format prompts).
pub const MULTIPLE_CHOICE_INSTRUCTION: &str =
    "Answer with the option's letter from the given choices directly.";

/// The letter of option `index` (0 → `A`, 25 → `Z`, 26 → `AA`, …).
pub fn option_letter(index: usize) -> String {
    let mut n = index + 1;
    let mut letters = Vec::new();
    while n > 0 {
        let rem = (n - 1) % 26;
        letters.push(char::from(b'A' + rem as u8));
        n = (n - 1) / 26;
    }
    letters.iter().rev().collect()
}

/// The question text with its options, one per line, lettered:
///
/// ```text
/// Is there a fracture?
/// A. yes
/// B. no
/// Answer with the option's letter from the given choices directly.
/// ```
///
/// With no options the question is returned unchanged (open question).
pub fn format_question(question: &str, options: &[String]) -> String {
    if options.is_empty() {
        return question.to_owned();
    }
    let mut text = question.trim_end().to_owned();
    for (i, opt) in options.iter().enumerate() {
        text.push('\n');
        text.push_str(&option_letter(i));
        text.push_str(". ");
        text.push_str(opt);
    }
    text.push('\n');
    text.push_str(MULTIPLE_CHOICE_INSTRUCTION);
    text
}

/// A user message: `num_images` `{"type": "image"}` parts, then the question (formatted by
/// [`format_question`]) as one text part. Images first is the order of the LLaVA-1.5
/// templates (which render every image before the text anyway) and of most VQA prompts.
pub fn vqa_user_message(num_images: usize, question: &str, options: &[String]) -> Message {
    let mut parts = vec![ContentPart::Image; num_images];
    parts.push(ContentPart::Text(format_question(question, options)));
    Message::parts("user", parts)
}

/// A user message for a series of `num_slices` slices in MedGemma 1.5's CT layout: an optional
/// instruction text, then for each slice `n` (1-based) its image followed by the text
/// `SLICE n`, then the question (formatted by [`format_question`]).
///
/// Source: Google-Health's `notebooks/high_dimensional_ct_hugging_face.ipynb` (MedGemma 1.5),
/// whose `content` list is `[instruction, image, "SLICE 1", image, "SLICE 2", …, query]`. The
/// notebook itself was not in the reference index we could read; the layout was taken from
/// several independent re-implementations that cite it and agree on it (label after its image,
/// numbering from 1). With the Gemma 3 template, text parts are trimmed and concatenated, so
/// the rendered prompt reads `…<start_of_image>SLICE 1<start_of_image>SLICE 2…`.
pub fn ct_user_message(
    num_slices: usize,
    instruction: Option<&str>,
    question: &str,
    options: &[String],
) -> Message {
    let mut parts = Vec::with_capacity(2 * num_slices + 2);
    if let Some(i) = instruction {
        parts.push(ContentPart::Text(i.to_owned()));
    }
    for n in 1..=num_slices {
        parts.push(ContentPart::Image);
        parts.push(ContentPart::Text(format!("SLICE {n}")));
    }
    parts.push(ContentPart::Text(format_question(question, options)));
    Message::parts("user", parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters() {
        let got: Vec<String> = [0, 1, 25, 26, 27, 51, 52]
            .iter()
            .map(|&i| option_letter(i))
            .collect();
        assert_eq!(got, ["A", "B", "Z", "AA", "AB", "AZ", "BA"]);
    }

    #[test]
    fn question_with_options() {
        let opts = vec!["yes".to_owned(), "no".to_owned()];
        assert_eq!(
            format_question("Is there a fracture? ", &opts),
            "Is there a fracture?\nA. yes\nB. no\nAnswer with the option's letter from the given choices directly."
        );
        assert_eq!(format_question("What organ?", &[]), "What organ?");
    }

    #[test]
    fn ct_layout() {
        let m = ct_user_message(2, Some("Review the slices."), "Any lesion?", &[]);
        assert_eq!(
            m.to_json(),
            serde_json::json!({"role": "user", "content": [
                {"type": "text", "text": "Review the slices."},
                {"type": "image"}, {"type": "text", "text": "SLICE 1"},
                {"type": "image"}, {"type": "text", "text": "SLICE 2"},
                {"type": "text", "text": "Any lesion?"}
            ]})
        );
        assert_eq!(m.image_count(), 2);
        assert_eq!(vqa_user_message(3, "q", &[]).image_count(), 3);
    }
}
