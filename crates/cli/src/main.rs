//! `medvqa`: the command-line program. It parses flags and wires the library crates together;
//! anything a library user would want lives in the crates, not here.

use clap::{Parser, Subcommand};

mod archive_cmds;
mod ask_cmd;
mod debug_cmds;
mod debug_forward;
mod devices_cmd;
mod encode_cmd;
mod eval_cmds;
mod ingest_cmd;
mod usage;

#[derive(Parser)]
#[command(name = "medvqa", version, about = "Medical visual question answering toolkit")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Read DICOM / NIfTI / PNG / JPEG / TIFF into float32 .npy arrays with JSON sidecars.
    Ingest(ingest_cmd::IngestArgs),
    /// Score a predictions file against a VQA dataset under a named protocol.
    Score(eval_cmds::ScoreArgs),
    /// Ask a vision-language model a question about images (DICOM, series, NIfTI, PNG/JPEG).
    Ask(ask_cmd::AskArgs),
    /// Run a model (or a built-in baseline) over a VQA dataset, resumably, then score it.
    Eval(eval_cmds::EvalArgs),
    /// Compare two scored runs: paired differences, exact McNemar test, paired bootstrap CI.
    Compare(eval_cmds::CompareArgs),
    /// List the WGPU adapters and the CPU backend, and what each --device value picks here.
    Devices(devices_cmd::DevicesArgs),
    /// Embed images with a vision encoder: one row per image, frame or volume slice, in a
    /// safetensors file with a JSONL manifest beside it.
    Encode(encode_cmd::EncodeArgs),
    /// Embed a whole archive (one row per image, frame or series): sharded safetensors, a
    /// Parquet manifest, errors listed, resumable (--resume) and splittable (--shard I/N).
    EncodeArchive(archive_cmds::EncodeArchiveArgs),
    /// Join the manifests of several encode-archive tasks (--shard runs) into one Parquet file.
    MergeManifests(archive_cmds::MergeManifestsArgs),
    /// Tools to compare medvqa with transformers tensor by tensor.
    #[command(subcommand)]
    Debug(debug_cmds::DebugCommand),
}

fn main() {
    let cli = Cli::parse();
    quiet_gl_probe();
    let code = match cli.command {
        Command::Ingest(args) => ingest_cmd::run(args),
        Command::Score(args) => eval_cmds::score(args),
        Command::Ask(args) => ask_cmd::run(args),
        Command::Eval(args) => eval_cmds::eval(args),
        Command::Compare(args) => eval_cmds::compare_runs(args),
        Command::Devices(args) => devices_cmd::run(args),
        Command::Encode(args) => encode_cmd::run(args),
        Command::EncodeArchive(args) => archive_cmds::encode(args),
        Command::MergeManifests(args) => archive_cmds::merge(args),
        Command::Debug(cmd) => debug_cmds::run(cmd),
    };
    std::process::exit(code);
}

/// wgpu probes OpenGL too, and Mesa's EGL prints "XDG_RUNTIME_DIR is invalid or not set" for
/// every probe when the variable is missing (containers, CI, ssh without a session). Give it a
/// private runtime directory then. Done first thing in `main`, before any thread exists, because
/// changing the environment is only sound while the process is single-threaded.
fn quiet_gl_probe() {
    #[cfg(unix)]
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let uid = std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(0);
        let dir = std::env::temp_dir().join(format!("medvqa-runtime-{uid}"));
        let ready = std::fs::create_dir_all(&dir)
            .and_then(|_| std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)))
            .is_ok();
        if ready {
            std::env::set_var("XDG_RUNTIME_DIR", &dir);
        }
    }
}
