//! Scoring protocols: named sets of answer-normalisation and correctness rules. `medvqa` is
//! ours and the default; the others reproduce a toolkit's published scoring code exactly,
//! quirks included, so that numbers from papers using those toolkits can be re-derived (and
//! their differences explained — `docs/protocols.md` lists every rule of every protocol).
//!
//! ```
//! use medvqa_eval::protocols::{protocol_by_name, PROTOCOL_NAMES};
//! assert_eq!(PROTOCOL_NAMES[0], "medvqa");
//! let p = protocol_by_name("llava-med").expect("known");
//! assert_eq!(p.name(), "llava-med");
//! ```

mod llava_med;
mod lmms_eval;
mod medevalkit;
mod medvqa;
mod multimedeval;
pub mod normalize;

pub use llava_med::LlavaMed;
pub use lmms_eval::LmmsEval;
pub use medevalkit::MedEvalKit;
pub use medvqa::{extract_option_letter, yes_no_polarity, MedVqa, Polarity};
pub use multimedeval::MultiMedEval;

use crate::types::Protocol;

/// The name of the default protocol.
pub const DEFAULT_PROTOCOL: &str = "medvqa";

/// Every protocol name, the default first.
pub const PROTOCOL_NAMES: [&str; 5] = [
    "medvqa",
    "llava-med",
    "medevalkit",
    "lmms-eval",
    "multimedeval",
];

/// Outcome of a question the toolkit itself could not score (its code raises on that answer;
/// see `docs/protocols.md`). Such a judgement is incorrect with score 0.
pub const OUTCOME_TOOLKIT_ERROR: &str = "toolkit_error";

/// The protocol called `name` (case-insensitive, `_` accepted for `-`).
pub fn protocol_by_name(name: &str) -> Option<Box<dyn Protocol>> {
    let wanted = name.trim().to_lowercase().replace('_', "-");
    let protocol: Box<dyn Protocol> = match wanted.as_str() {
        "medvqa" => Box::new(MedVqa),
        "llava-med" => Box::new(LlavaMed),
        "medevalkit" => Box::new(MedEvalKit),
        "lmms-eval" => Box::new(LmmsEval),
        "multimedeval" => Box::new(MultiMedEval),
        _ => return None,
    };
    Some(protocol)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_resolves_to_itself() {
        for name in PROTOCOL_NAMES {
            assert_eq!(protocol_by_name(name).map(|p| p.name()), Some(name));
        }
        assert_eq!(
            protocol_by_name("LMMS_EVAL").map(|p| p.name()),
            Some("lmms-eval")
        );
        assert!(protocol_by_name("vqa").is_none());
    }
}
