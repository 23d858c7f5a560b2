//! The one error type the commands share: a refusal caused by the command line or the model
//! folder, before any input is processed. Commands exit 2 for it and 1 for every other failure.

/// A refusal caused by the command line rather than by the inputs (exit code 2).
#[derive(Debug)]
pub(crate) struct UsageError(pub(crate) String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// A [`UsageError`] as an `anyhow::Error`.
pub(crate) fn usage(msg: impl Into<String>) -> anyhow::Error {
    UsageError(msg.into()).into()
}

/// 2 for a [`UsageError`], 1 for anything else.
pub(crate) fn exit_code(e: &anyhow::Error) -> i32 {
    if e.downcast_ref::<UsageError>().is_some() {
        2
    } else {
        1
    }
}

/// Parses `--window` ("C,W" or a preset name); a bad value is a [`UsageError`] naming the flag.
pub(crate) fn window_arg(value: Option<&str>) -> anyhow::Result<Option<medvqa_ingest::lut::Window>> {
    value
        .map(medvqa_ingest::presets::parse_window)
        .transpose()
        .map_err(|e| usage(format!("--window: {e}")))
}
