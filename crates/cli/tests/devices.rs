//! `medvqa devices` on this machine: exits 0, and `--json` describes the adapters, the CPU
//! backend and every `--device` value.

use std::process::Command;

fn devices(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_medvqa"))
        .arg("devices")
        .args(args)
        .output()
        .expect("run medvqa")
}

#[test]
fn devices_json_lists_adapters_cpu_and_choices() {
    let out = devices(&["--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");

    let adapters = v["adapters"].as_array().expect("adapters array");
    for a in adapters {
        for key in [
            "name",
            "vendor",
            "backend",
            "driver",
            "driver_info",
            "device_type",
            "label",
        ] {
            assert!(a[key].is_string(), "{key} missing in {a}");
        }
        assert!(
            a["vendor_id"].is_u64() && a["f16"].is_boolean() && a["software"].is_boolean(),
            "{a}"
        );
    }
    // CI installs Mesa's software Vulkan driver and sets MEDVQA_REQUIRE_WGPU=1.
    if std::env::var("MEDVQA_REQUIRE_WGPU").is_ok_and(|s| s.trim() == "1") {
        assert!(
            adapters.iter().any(|a| a["backend"] == "Vulkan"),
            "no Vulkan adapter listed: {v}"
        );
    } else if adapters.is_empty() {
        eprintln!("SKIP: no WGPU adapter here; only the CPU part of the report is checked");
    }

    assert_eq!(v["cpu"]["backend"], "flex");
    assert!(
        v["cpu"]["threads"].as_u64().is_some_and(|n| n >= 1),
        "{}",
        v["cpu"]
    );

    let choices = v["choices"].as_object().expect("choices object");
    let names: Vec<&str> = choices.keys().map(String::as_str).collect();
    for name in ["auto", "wgpu", "vulkan", "metal", "dx12", "cpu"] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    assert_eq!(choices["cpu"]["label"], v["cpu"]["label"]);
    // Auto always resolves to something: an adapter, or the CPU backend with a note.
    let auto = &choices["auto"];
    assert!(auto["label"].is_string(), "{auto}");
    if auto["label"] == v["cpu"]["label"] {
        assert!(auto["note"].is_string(), "a CPU fallback says why: {auto}");
    }
    if cfg!(target_os = "linux") {
        assert!(
            choices["metal"]["error"].is_string(),
            "{}",
            choices["metal"]
        );
    }
}

#[test]
fn devices_table_names_the_cpu_backend() {
    let out = devices(&[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8");
    assert!(text.contains("CPU backend: flex"), "{text}");
    assert!(text.contains("WGPU adapters"), "{text}");
    assert!(text.contains("--device values here:"), "{text}");
}
