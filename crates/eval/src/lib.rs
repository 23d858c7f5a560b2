//! Medical VQA evaluation: dataset readers (VQA-RAD, SLAKE, PathVQA, OmniMedVQA, JSONL),
//! answer normalisation protocols, accuracy per modality / body system / question type, reports.
//!
//! Data flow: a dataset reader yields [`Question`]s (labels resolved, common body-system
//! taxonomy applied) → predictions are read or produced by a model → a [`Protocol`] judges each
//! (question, prediction) pair into a [`Judgement`] → aggregation builds the summary and reports.

pub mod baselines;
pub mod compare;
pub mod datasets;
pub mod error;
pub mod protocols;
pub mod predictions;
pub mod report;
pub mod run;
pub mod summary;
pub mod taxonomy;
pub mod types;

pub use types::{AnswerType, Judgement, Protocol, Question};
