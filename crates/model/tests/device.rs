//! Device selection on this machine: choices parse, the software Vulkan adapter is found and
//! runs a real op with the CPU backend's result, impossible choices are errors (not panics), and
//! selecting twice reuses the started runtime.
//!
//! Tests that need a WGPU adapter go through `wgpu_for_tests`: they skip with `SKIP:` on a
//! machine without one, and fail in CI where `tools/test.sh` sets `MEDVQA_REQUIRE_WGPU=1`.

use std::str::FromStr;
use std::time::Instant;

use burn::prelude::{Device, Tensor, TensorData};
use burn::tensor::FloatDType;
use medvqa_model::device::{
    cpu_report, list_adapters, plan, select_device, wgpu_for_tests, wgpu_required, Backend,
    DeviceChoice, DeviceError,
};

#[test]
fn every_flag_value_parses_and_prints_back() {
    for (text, choice) in [
        ("auto", DeviceChoice::Auto),
        ("wgpu", DeviceChoice::Wgpu),
        ("vulkan", DeviceChoice::Vulkan),
        ("metal", DeviceChoice::Metal),
        ("dx12", DeviceChoice::Dx12),
        ("cpu", DeviceChoice::Cpu),
    ] {
        assert_eq!(DeviceChoice::from_str(text).unwrap(), choice);
        assert_eq!(choice.to_string(), text);
    }
    assert_eq!(
        DeviceChoice::from_str(" Vulkan ").unwrap(),
        DeviceChoice::Vulkan
    );
    assert_eq!(DeviceChoice::default(), DeviceChoice::Auto);
}

#[test]
fn unknown_flag_value_is_an_error_naming_it() {
    let err = DeviceChoice::from_str("cuda").unwrap_err();
    assert!(matches!(&err, DeviceError::UnknownChoice { value } if value == "cuda"));
    assert!(
        err.to_string()
            .contains("auto, wgpu, vulkan, metal, dx12, cpu"),
        "{err}"
    );
}

/// A deterministic 64×64 matrix in [-1/8, 1/8] (a small LCG, so nothing random is needed).
fn matrix(seed: u32) -> Vec<f32> {
    let mut state = seed;
    (0..64 * 64)
        .map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            ((state >> 8) as f32 / (1u32 << 24) as f32 - 0.5) / 4.0
        })
        .collect()
}

/// `a · b + 1` on `device`, read back to the host.
fn matmul_on(device: &Device) -> Vec<f32> {
    let a = Tensor::<2>::from_data(TensorData::new(matrix(1), [64, 64]), device);
    let b = Tensor::<2>::from_data(TensorData::new(matrix(2), [64, 64]), device);
    (a.matmul(b) + 1.0)
        .into_data()
        .try_into_vec::<f32>()
        .expect("f32 result")
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn cpu_backend_runs_a_matmul() {
    let selected = select_device(DeviceChoice::Cpu).unwrap();
    assert_eq!(selected.backend, Backend::Flex);
    assert!(
        selected.label.starts_with("cpu (flex, "),
        "{}",
        selected.label
    );
    assert!(selected.note.is_none());
    let out = matmul_on(&selected.device);
    // Reference on the host in f64: flex must agree to float rounding.
    let (a, b) = (matrix(1), matrix(2));
    let mut worst = 0.0f64;
    for i in 0..64 {
        for j in 0..64 {
            let want: f64 = 1.0
                + (0..64)
                    .map(|k| a[i * 64 + k] as f64 * b[k * 64 + j] as f64)
                    .sum::<f64>();
            worst = worst.max((out[i * 64 + j] as f64 - want).abs());
        }
    }
    assert!(worst < 1e-6, "flex matmul off by {worst}");
}

#[test]
fn wgpu_matmul_equals_the_cpu_backend() {
    let started = Instant::now();
    let Some(selected) = wgpu_for_tests() else {
        return;
    };
    let selected_in = started.elapsed();
    assert_eq!(selected.backend, Backend::Wgpu);
    assert!(selected.label.starts_with("wgpu/"), "{}", selected.label);

    let first = Instant::now();
    let on_gpu = matmul_on(&selected.device);
    let first_op = first.elapsed();
    let second = Instant::now();
    let again = matmul_on(&selected.device);
    let second_op = second.elapsed();
    eprintln!(
        "{}: select {:.2} s, first 64x64 matmul (pipeline compile) {:.2} s, second {:.3} s, f16 {}",
        selected.label,
        selected_in.as_secs_f64(),
        first_op.as_secs_f64(),
        second_op.as_secs_f64(),
        selected.f16
    );

    let on_cpu = matmul_on(&select_device(DeviceChoice::Cpu).unwrap().device);
    let diff = max_abs_diff(&on_gpu, &on_cpu);
    assert!(diff <= 1e-5, "wgpu and flex differ by {diff}");
    assert_eq!(
        on_gpu, again,
        "the same op twice on one device gives the same bits"
    );
}

#[test]
fn selecting_twice_reuses_the_started_runtime() {
    let Some(first) = wgpu_for_tests() else {
        return;
    };
    // Burn refuses a second start of one runtime; select_device must hand back the same one,
    // also when another choice resolves to the same adapter.
    let second = select_device(DeviceChoice::Wgpu).unwrap();
    assert_eq!(first.device, second.device);
    assert_eq!(first.label, second.label);
    if first.label.starts_with("wgpu/Vulkan") {
        let vulkan = select_device(DeviceChoice::Vulkan).unwrap();
        assert_eq!(vulkan.device, first.device);
    }
    let out = matmul_on(&second.device);
    assert_eq!(out.len(), 64 * 64);
    // And the CPU backend can be selected any number of times too.
    assert_eq!(
        select_device(DeviceChoice::Cpu).unwrap().device,
        select_device(DeviceChoice::Cpu).unwrap().device
    );
}

#[test]
fn the_software_vulkan_adapter_is_listed() {
    let adapters = list_adapters();
    for a in &adapters {
        eprintln!(
            "adapter: {} — vendor {} ({:#x}), driver {} {}, f16 {}",
            a.label, a.vendor, a.vendor_id, a.driver, a.driver_info, a.f16
        );
    }
    let vulkan: Vec<_> = adapters.iter().filter(|a| a.backend == "Vulkan").collect();
    if vulkan.is_empty() {
        assert!(
            !wgpu_required(),
            "MEDVQA_REQUIRE_WGPU=1 but no Vulkan adapter: {adapters:?}"
        );
        eprintln!(
            "SKIP: no Vulkan adapter on this machine (install mesa-vulkan-drivers libvulkan1)"
        );
        return;
    }
    // The adapter the policy helper starts is one of the listed ones.
    let Some(selected) = wgpu_for_tests() else {
        return;
    };
    assert!(
        adapters.iter().any(|a| a.label == selected.label),
        "{} not in {adapters:?}",
        selected.label
    );
    // Where it is Mesa's lavapipe (this machine, CI), its identity is what Mesa reports.
    if let Some(lvp) = vulkan.iter().find(|a| a.driver == "llvmpipe") {
        assert_eq!(lvp.vendor_id, 0x10005, "Mesa's Khronos vendor id");
        assert_eq!(lvp.vendor, "Mesa");
        assert_eq!(lvp.device_type, "Cpu");
        assert!(lvp.software);
        assert!(lvp.name.starts_with("llvmpipe"), "{}", lvp.name);
    }
}

#[test]
fn auto_skips_software_adapters_and_says_why() {
    let adapters = list_adapters();
    let auto = plan(DeviceChoice::Auto).unwrap();
    if adapters.iter().any(|a| !a.software) {
        assert_eq!(auto.backend, Backend::Wgpu, "{adapters:?}");
        assert!(auto.note.is_none());
    } else {
        assert_eq!(auto.backend, Backend::Flex);
        let note = auto.note.expect("the fallback is explained");
        assert!(note.contains("using the CPU backend"), "{note}");
        if adapters.is_empty() {
            assert!(note.contains("no WGPU adapter found"), "{note}");
        } else {
            assert!(note.contains("only software WGPU adapters"), "{note}");
            assert!(note.contains(&adapters[0].name), "{note}");
        }
        // And the selected device is the CPU one, which runs.
        let selected = select_device(DeviceChoice::Auto).unwrap();
        assert_eq!(selected.backend, Backend::Flex);
        assert_eq!(matmul_on(&selected.device).len(), 64 * 64);
    }
}

#[test]
fn apis_this_platform_lacks_are_errors_naming_what_exists() {
    if cfg!(target_os = "linux") {
        for choice in [DeviceChoice::Metal, DeviceChoice::Dx12] {
            let err = select_device(choice).unwrap_err();
            assert!(matches!(err, DeviceError::ApiUnavailable { .. }), "{err:?}");
            let text = err.to_string();
            assert!(
                text.contains("not available on this platform (linux)"),
                "{text}"
            );
            assert!(text.contains("adapters found:"), "{text}");
            for a in list_adapters() {
                assert!(text.contains(&a.label), "{text} should list {}", a.label);
            }
        }
    } else {
        eprintln!("SKIP: Metal/DX12 availability is only known on Linux");
    }
}

#[test]
fn cpu_report_counts_rayon_threads() {
    let cpu = cpu_report();
    assert_eq!(cpu.backend, "flex");
    assert_eq!(cpu.threads, rayon::current_num_threads());
    assert!(cpu.label.contains(&format!("{} threads", cpu.threads)));
}

#[test]
fn f16_matmul_runs_where_the_device_says_it_can() {
    let Some(selected) = wgpu_for_tests() else {
        return;
    };
    if !selected.f16 {
        eprintln!("SKIP: {} does not compute in f16", selected.label);
        return;
    }
    let device = &selected.device;
    let a =
        Tensor::<2>::from_data(TensorData::new(matrix(1), [64, 64]), device).cast(FloatDType::F16);
    let b =
        Tensor::<2>::from_data(TensorData::new(matrix(2), [64, 64]), device).cast(FloatDType::F16);
    let out = (a.matmul(b) + 1.0)
        .cast(FloatDType::F32)
        .into_data()
        .try_into_vec::<f32>()
        .expect("f32 result");
    let reference = matmul_on(&select_device(DeviceChoice::Cpu).unwrap().device);
    // f16 has an 11-bit significand: results near 1 are within a few 2^-11 ≈ 4.9e-4 steps.
    let diff = max_abs_diff(&out, &reference);
    eprintln!(
        "{}: f16 64x64 matmul max abs diff vs flex f32 = {diff:.2e}",
        selected.label
    );
    assert!(diff < 4e-3, "f16 matmul off by {diff}");
    assert!(
        diff > 0.0,
        "an f16 computation cannot be bit-equal to f32 here: was f16 really used?"
    );
}
