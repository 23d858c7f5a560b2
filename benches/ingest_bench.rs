//! medvqa's half of the side-by-side ingest benchmark (benches/README.md).
//!
//! Per file, the same steps as `benches/python/ingest_pydicom.py`: read the DICOM file, decode
//! the pixel data, Modality LUT (rescale), LINEAR VOI window (the file's first, else
//! `--window`), Pillow-exact bilinear resize in float mode to 448 × 448, normalise with
//! mean = std = 0.5 (SigLIP), gray → RGB, giving a float32 `[3, 448, 448]` that is dropped, not
//! written.
//!
//! ```text
//! ingest_bench --list FILES.txt [--threads 1,0] [--runs 3] [--window C,W] [--size 448]
//!              [--dump DIR --dump-count K] [--stages]
//! ```
//! `FILES.txt` holds one path per line. `--threads` lists the configurations to time, 0 meaning
//! all cores; each is timed `--runs` times after an untimed warm-up pass and the best run is
//! reported as a line `RESULT side=medvqa threads=N files=F best_s=S files_per_s=R`.
//! `--dump` writes the first K arrays as `.npy` (before timing) so the Python side can compare.
//! `--stages` times open / decode / model-input steps separately on one thread.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use medvqa_ingest::dicom::{self, attrs, pixels::DEFAULT_MAX_SAMPLES, PixelAttrs, ReadExtent};
use medvqa_ingest::lut::{Voi, Window};
use medvqa_ingest::model_input::{Pipeline, Step};
use medvqa_ingest::resize::{resize_f32, Filter, ResizeMode};
use ndarray::{Array3, ArrayViewD, IxDyn};
use rayon::prelude::*;

struct Args {
    list: PathBuf,
    threads: Vec<usize>,
    runs: usize,
    fallback: Window,
    size: usize,
    dump: Option<PathBuf>,
    dump_count: usize,
    stages: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut list = None;
    let mut threads = vec![1, 0];
    let mut runs = 3;
    // A soft-tissue window for files that carry none (same default on the Python side).
    let mut fallback = Window::linear(40.0, 400.0);
    let mut size = 448;
    let mut dump = None;
    let mut dump_count = 4;
    let mut stages = false;
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match a.as_str() {
            "--list" => list = Some(PathBuf::from(value("--list")?)),
            "--threads" => {
                threads = value("--threads")?
                    .split(',')
                    .map(|t| {
                        t.trim()
                            .parse::<usize>()
                            .map_err(|e| format!("--threads {t}: {e}"))
                    })
                    .collect::<Result<_, _>>()?
            }
            "--runs" => {
                runs = value("--runs")?
                    .parse()
                    .map_err(|e| format!("--runs: {e}"))?
            }
            "--window" => {
                let v = value("--window")?;
                let (c, w) = v.split_once(',').ok_or("--window wants C,W")?;
                let c: f64 = c
                    .trim()
                    .parse()
                    .map_err(|e| format!("--window centre: {e}"))?;
                let w: f64 = w
                    .trim()
                    .parse()
                    .map_err(|e| format!("--window width: {e}"))?;
                fallback = Window::linear(c, w);
            }
            "--size" => {
                size = value("--size")?
                    .parse()
                    .map_err(|e| format!("--size: {e}"))?
            }
            "--dump" => dump = Some(PathBuf::from(value("--dump")?)),
            "--dump-count" => {
                dump_count = value("--dump-count")?
                    .parse()
                    .map_err(|e| format!("--dump-count: {e}"))?
            }
            "--stages" => stages = true,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let list = list.ok_or("--list FILES.txt is required")?;
    if runs == 0 {
        return Err("--runs must be at least 1".into());
    }
    Ok(Args {
        list,
        threads,
        runs,
        fallback,
        size,
        dump,
        dump_count,
        stages,
    })
}

/// A decoded single-frame grayscale image in modality values and the window to apply.
struct Decoded {
    rows: usize,
    cols: usize,
    data: Vec<f32>,
    window: Window,
}

/// Read, decode and Modality LUT: the sequence of `pipeline::decode_file`.
fn decode(path: &Path, fallback: Window) -> Result<Decoded, String> {
    let src = dicom::open(path, ReadExtent::Full).map_err(|e| e.to_string())?;
    let ds = src.dataset();
    let pa = PixelAttrs::read(path, ds).map_err(|e| e.to_string())?;
    let mut warnings = Vec::new();
    let fa = attrs::frame_attrs(ds, pa.frames, pa.signed, &mut warnings);
    let px = dicom::decode(path, &src, &pa, &fa, DEFAULT_MAX_SAMPLES).map_err(|e| e.to_string())?;
    if px.channels != 1 || px.frames != 1 {
        return Err(format!(
            "{}: {} frame(s) of {} channel(s); the benchmark takes single-frame grayscale",
            path.display(),
            px.frames,
            px.channels
        ));
    }
    // The file's first window with the LINEAR function, as the Python side reads it.
    let window = match fa.first().and_then(|f| f.voi.as_ref()) {
        Some(Voi::Window(w)) => Window::linear(w.center, w.width),
        _ => fallback,
    };
    Ok(Decoded {
        rows: px.rows,
        cols: px.cols,
        data: px.data,
        window,
    })
}

/// Window → bilinear float resize → normalise → gray → RGB → `[3, size, size]`.
fn model_pipeline(window: Window, size: usize) -> Result<Pipeline, String> {
    Pipeline::new(vec![
        Step::Window { window },
        Step::Resize {
            height: size,
            width: size,
            filter: Filter::Bilinear,
            mode: ResizeMode::Float,
        },
        // SigLIP: mean 0.5, std 0.5 (transformers IMAGENET_STANDARD_MEAN/STD). One mean and
        // std for every channel, so normalising before gray → RGB gives the same array with a
        // third of the work; the Python side does the same.
        Step::Normalize {
            mean: vec![0.5],
            std: vec![0.5],
        },
        Step::GrayToRgb,
        Step::ToChannelsFirst,
    ])
    .map_err(|e| e.to_string())
}

fn to_model(d: &Decoded, size: usize) -> Result<Array3<f32>, String> {
    let img =
        ArrayViewD::from_shape(IxDyn(&[d.rows, d.cols]), &d.data).map_err(|e| e.to_string())?;
    model_pipeline(d.window, size)?
        .apply_image(img)
        .map_err(|e| e.to_string())
}

fn process(path: &Path, args: &Args) -> Result<Array3<f32>, String> {
    to_model(&decode(path, args.fallback)?, args.size)
}

/// One pass over every file; returns the elapsed time.
fn pass(files: &[PathBuf], args: &Args) -> Result<Duration, String> {
    let t = Instant::now();
    files.par_iter().try_for_each(|p| {
        let out = process(p, args)?;
        std::hint::black_box(out);
        Ok::<(), String>(())
    })?;
    Ok(t.elapsed())
}

fn stages(files: &[PathBuf], args: &Args) -> Result<(), String> {
    let (mut t_open, mut t_decode, mut t_model) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let (mut t_window, mut t_resize) = (Duration::ZERO, Duration::ZERO);
    for p in files {
        let t0 = Instant::now();
        let src = dicom::open(p, ReadExtent::Full).map_err(|e| e.to_string())?;
        let t1 = Instant::now();
        let ds = src.dataset();
        let pa = PixelAttrs::read(p, ds).map_err(|e| e.to_string())?;
        let mut warnings = Vec::new();
        let fa = attrs::frame_attrs(ds, pa.frames, pa.signed, &mut warnings);
        let px =
            dicom::decode(p, &src, &pa, &fa, DEFAULT_MAX_SAMPLES).map_err(|e| e.to_string())?;
        let window = match fa.first().and_then(|f| f.voi.as_ref()) {
            Some(Voi::Window(w)) => Window::linear(w.center, w.width),
            _ => args.fallback,
        };
        let d = Decoded {
            rows: px.rows,
            cols: px.cols,
            data: px.data,
            window,
        };
        let t2 = Instant::now();
        std::hint::black_box(to_model(&d, args.size)?);
        let t3 = Instant::now();
        t_open += t1 - t0;
        t_decode += t2 - t1;
        t_model += t3 - t2;
        // The two computing steps of the pipeline alone, through public functions with the
        // same arithmetic (the fused pipeline windows with Window::apply_slice and resizes
        // with resize_f32's passes, reusing its buffers); the rest of the model time is
        // normalisation and writing the three planes.
        let mut windowed = Array3::<f32>::zeros((d.rows, d.cols, 1));
        let t4 = Instant::now();
        d.window.apply_slice(
            &d.data,
            windowed.as_slice_mut().ok_or("fresh array is contiguous")?,
        );
        let t5 = Instant::now();
        std::hint::black_box(
            resize_f32(windowed.view(), args.size, args.size, Filter::Bilinear)
                .map_err(|e| e.to_string())?,
        );
        let t6 = Instant::now();
        t_window += t5 - t4;
        t_resize += t6 - t5;
    }
    let n = files.len() as f64;
    for (name, t) in [
        ("open+parse", t_open),
        ("decode+modality", t_decode),
        ("window+resize+rgb+normalise", t_model),
        ("of_which_window", t_window),
        ("of_which_resize", t_resize),
    ] {
        println!(
            "STAGE side=medvqa stage={name} ms_per_file={:.3}",
            t.as_secs_f64() * 1e3 / n
        );
    }
    Ok(())
}

fn run(args: &Args) -> Result<(), String> {
    let text =
        std::fs::read_to_string(&args.list).map_err(|e| format!("{}: {e}", args.list.display()))?;
    let files: Vec<PathBuf> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(PathBuf::from)
        .collect();
    if files.is_empty() {
        return Err(format!("{}: no files listed", args.list.display()));
    }
    if let Some(dir) = &args.dump {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for (i, p) in files.iter().take(args.dump_count).enumerate() {
            let out = process(p, args)?;
            let path = dir.join(format!("{i}.npy"));
            medvqa_ingest::npy::write_f32(&path, out.view().into_dyn())
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    for &threads in &args.threads {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(|e| e.to_string())?;
        let n_threads = pool.current_num_threads();
        let best = pool.install(|| -> Result<Duration, String> {
            // Untimed warm-up: page cache, allocator, lazily built decoder tables.
            pass(&files, args)?;
            let mut best = Duration::MAX;
            for _ in 0..args.runs {
                best = best.min(pass(&files, args)?);
            }
            Ok(best)
        })?;
        let s = best.as_secs_f64();
        println!(
            "RESULT side=medvqa threads={n_threads} files={} best_s={s:.4} files_per_s={:.2}",
            files.len(),
            files.len() as f64 / s
        );
    }
    if args.stages {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .map_err(|e| e.to_string())?;
        pool.install(|| stages(&files, args))?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("ingest_bench: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ingest_bench: {e}");
            ExitCode::FAILURE
        }
    }
}
