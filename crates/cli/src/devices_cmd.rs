//! `medvqa devices`: every WGPU adapter this machine has, the CPU backend, and what each
//! `--device` value resolves to here. Starts no runtime, so it is quick and cannot crash on a
//! machine without a GPU.

use medvqa_model::device::{cpu_report, list_adapters, plan, AdapterReport, DeviceChoice};
use serde_json::json;

#[derive(clap::Args)]
pub struct DevicesArgs {
    /// Print the list as JSON ({"adapters": [...], "cpu": {...}, "choices": {...}}) instead of a
    /// table.
    #[arg(long)]
    pub json: bool,
}

/// Prints the report; exit code 0 even when there is no adapter (the CPU backend always exists).
pub fn run(args: DevicesArgs) -> i32 {
    let adapters = list_adapters();
    let cpu = cpu_report();
    let choices: Vec<(DeviceChoice, Result<(String, Option<String>), String>)> = DeviceChoice::ALL
        .into_iter()
        .map(|c| {
            (
                c,
                plan(c)
                    .map(|p| (p.label, p.note))
                    .map_err(|e| e.to_string()),
            )
        })
        .collect();

    if args.json {
        let choices: serde_json::Map<String, serde_json::Value> = choices
            .iter()
            .map(|(c, r)| {
                let v = match r {
                    Ok((label, note)) => json!({ "label": label, "note": note }),
                    Err(e) => json!({ "error": e }),
                };
                (c.to_string(), v)
            })
            .collect();
        let out = json!({ "adapters": adapters, "cpu": cpu, "choices": choices });
        match serde_json::to_string_pretty(&out) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("medvqa devices: {e}");
                return 1;
            }
        }
        return 0;
    }

    if adapters.is_empty() {
        println!("WGPU adapters: none found (no Vulkan/Metal/DX12/OpenGL driver answered).");
        println!("  On Debian/Ubuntu, Mesa's software Vulkan driver: apt-get install mesa-vulkan-drivers libvulkan1");
    } else {
        println!("WGPU adapters ({}):", adapters.len());
        print_table(&adapters);
    }
    println!();
    println!(
        "CPU backend: {} ({} threads, f16 {})",
        cpu.backend,
        cpu.threads,
        yes_no(cpu.f16)
    );
    println!();
    println!("--device values here:");
    let width = choices
        .iter()
        .map(|(c, _)| c.as_str().len())
        .max()
        .unwrap_or(0);
    for (choice, resolved) in &choices {
        match resolved {
            Ok((label, note)) => {
                println!("  {:width$}  {label}", choice.as_str());
                if let Some(note) = note {
                    println!("  {:width$}  note: {note}", "");
                }
            }
            Err(e) => println!("  {:width$}  unavailable: {e}", choice.as_str()),
        }
    }
    0
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

fn print_table(adapters: &[AdapterReport]) {
    let header = ["#", "API", "type", "vendor", "f16", "name", "driver"];
    let rows: Vec<[String; 7]> = adapters
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let driver = match (a.driver.is_empty(), a.driver_info.is_empty()) {
                (false, false) => format!("{} ({})", a.driver, a.driver_info),
                (false, true) => a.driver.clone(),
                (true, false) => a.driver_info.clone(),
                (true, true) => "-".to_string(),
            };
            [
                i.to_string(),
                a.backend.clone(),
                if a.software {
                    format!("{} (software)", a.device_type)
                } else {
                    a.device_type.clone()
                },
                format!("{} ({:#06x})", a.vendor, a.vendor_id),
                yes_no(a.f16).to_string(),
                a.name.clone(),
                driver,
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let last = cells.len() - 1;
        let text: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i == last {
                    c.clone()
                } else {
                    format!("{c:w$}", w = widths[i])
                }
            })
            .collect();
        println!("  {}", text.join("  "));
    };
    line(&header.map(String::from));
    for row in &rows {
        line(row);
    }
}
