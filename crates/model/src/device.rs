//! Where the model runs: the compute device is chosen once, at the edge, from a
//! [`DeviceChoice`] (the CLI's `--device auto|wgpu|vulkan|metal|dx12|cpu`). Model code takes the
//! resulting [`burn::prelude::Device`] and never asks which backend it is.
//!
//! ```no_run
//! use medvqa_model::device::{select_device, DeviceChoice};
//!
//! let selected = select_device(DeviceChoice::Auto)?;
//! if let Some(note) = &selected.note {
//!     eprintln!("{note}");
//! }
//! eprintln!("running on {}", selected.label);
//! # Ok::<(), medvqa_model::device::DeviceError>(())
//! ```
//!
//! # Why the adapters are probed first
//! Burn's wgpu runtime panics (`AdapterUnavailable`, then `RecvError` on every later op) when a
//! tensor is created on a wgpu device that has no adapter behind it. So adapters are listed
//! through the wgpu crate burn re-exports (`burn::tensor::wgpu::wgpu`) before any burn device is
//! touched, the adapter to use is picked from that list, and burn is then started on exactly
//! that adapter: its graphics API pinned (`graphics_api`) and its [`DeviceKind`] index counted
//! the way cubecl-wgpu counts it (the n-th adapter *of its type* on that API). After start-up the
//! adapter burn reports is compared with the probed one.
//!
//! # Starting a runtime once
//! Burn refuses to initialise the same wgpu runtime twice in a process. Started devices are kept
//! in a process-wide cache keyed by (graphics API, device kind), so [`select_device`] can be
//! called any number of times, with any choices that resolve to the same adapter.
//! Probing and start-up run under one lock: the Vulkan loader is not safe when instances are
//! created and dropped on several threads at once (cubecl-wgpu guards its own instances the
//! same way).
//!
//! # f16
//! With burn's `wgpu` feature (no `vulkan`/`metal` feature, which the workspace leaves off
//! because the `vulkan` runtime crashed in lavapipe, docs/burn-notes.md) every graphics API is
//! fed WGSL, and cubecl-wgpu registers f16 as fully usable exactly when the adapter has
//! `wgpu::Features::SHADER_F16` (cubecl-wgpu 0.11.3 `backend/wgsl.rs`, `register_types`).
//! Burn exposes the result as [`Device::supports_dtype`]`(DType::F16)` (storage, conversion
//! *and* arithmetic). [`AdapterReport::f16`] reads the adapter feature without starting a
//! runtime; [`SelectedDevice::f16`] asks the started device. Measured on this machine (Mesa
//! 22.3.6): lavapipe on Vulkan has `SHADER_F16`, `supports_dtype(F16)` is `true`, and a 64×64
//! f16 matmul runs and lands within 5.3e-4 of flex's f32 result (tests/device.rs); the OpenGL
//! llvmpipe adapter has no `SHADER_F16`. Flex reports f16 (and bf16) as supported too.
//!
//! # Running quietly
//! Listing adapters asks every graphics API compiled in, OpenGL included. On a headless Linux
//! machine Mesa's EGL prints `error: XDG_RUNTIME_DIR is invalid or not set in the environment`
//! while the OpenGL API is probed; it is harmless (no display is needed for compute). Set
//! `XDG_RUNTIME_DIR` to a private directory (e.g. `export XDG_RUNTIME_DIR=/tmp/runtime-$USER`,
//! mode 0700) to silence it; `tools/test.sh` does so for CI. The library does not set
//! environment variables itself: that is not thread-safe once threads run.

use std::fmt;
use std::future::Future;
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll, Wake, Waker};

use burn::prelude::{Device, DeviceKind};
use burn::tensor::wgpu::{wgpu, WgpuBackend};
use burn::tensor::DType;
use serde::Serialize;

/// Which device the user asked for (`--device`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum DeviceChoice {
    /// A hardware GPU through WGPU when one exists, otherwise the CPU backend with a note.
    ///
    /// Software adapters (lavapipe, llvmpipe, WARP: wgpu `DeviceType::Cpu`) are passed over:
    /// a ViT-B/16 forward took 93 s per image on lavapipe against about 0.7 s on flex on the
    /// same machine (STACK-NOTES.md), so the CPU backend is the better default there. Ask for
    /// `wgpu` or `vulkan` to use a software adapter anyway.
    #[default]
    Auto,
    /// WGPU on whichever graphics API burn would choose (Vulkan, then DX12, then OpenGL; Metal on
    /// macOS), preferring a hardware adapter but accepting a software one.
    Wgpu,
    /// WGPU pinned to Vulkan.
    Vulkan,
    /// WGPU pinned to Metal.
    Metal,
    /// WGPU pinned to DirectX 12.
    Dx12,
    /// Burn's `flex` backend: pure Rust on the CPU, threads from rayon's global pool.
    Cpu,
}

impl DeviceChoice {
    /// Every choice, in the order the CLI lists them.
    pub const ALL: [DeviceChoice; 6] = [
        DeviceChoice::Auto,
        DeviceChoice::Wgpu,
        DeviceChoice::Vulkan,
        DeviceChoice::Metal,
        DeviceChoice::Dx12,
        DeviceChoice::Cpu,
    ];

    /// The flag value, e.g. `"vulkan"`.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceChoice::Auto => "auto",
            DeviceChoice::Wgpu => "wgpu",
            DeviceChoice::Vulkan => "vulkan",
            DeviceChoice::Metal => "metal",
            DeviceChoice::Dx12 => "dx12",
            DeviceChoice::Cpu => "cpu",
        }
    }
}

impl FromStr for DeviceChoice {
    type Err = DeviceError;

    /// Parses a flag value; case and surrounding spaces are ignored.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase();
        DeviceChoice::ALL
            .into_iter()
            .find(|c| c.as_str() == wanted)
            .ok_or_else(|| DeviceError::UnknownChoice {
                value: s.to_string(),
            })
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which burn backend a device belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Backend {
    /// Burn's wgpu runtime (Vulkan, Metal, DX12 or OpenGL underneath).
    Wgpu,
    /// Burn's pure-Rust CPU backend.
    Flex,
}

/// A device ready for tensors, with what the user should be told about it.
#[derive(Clone, Debug)]
pub struct SelectedDevice {
    /// Pass this to `init` of every module and to tensor constructors.
    pub device: Device,
    /// Which backend `device` belongs to.
    pub backend: Backend,
    /// One line naming the device, e.g. `wgpu/Vulkan: llvmpipe (LLVM 15.0.6, 256 bits) [Cpu]` or
    /// `cpu (flex, 2 threads)`.
    pub label: String,
    /// Something the user should read, e.g. why [`DeviceChoice::Auto`] fell back to the CPU.
    pub note: Option<String>,
    /// Whether the device computes in f16 ([`Device::supports_dtype`]); see the module docs.
    pub f16: bool,
}

/// Why a device could not be chosen or started.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// The `--device` value is not one of the known choices.
    #[error("unknown device `{value}`: expected one of auto, wgpu, vulkan, metal, dx12, cpu")]
    UnknownChoice {
        /// The value as given.
        value: String,
    },
    /// The requested graphics API is not compiled for this platform (e.g. Metal on Linux).
    #[error("device `{choice}`: {api} is not available on this platform ({os}); adapters found: {found}")]
    ApiUnavailable {
        /// What was asked for.
        choice: DeviceChoice,
        /// The graphics API that is missing.
        api: String,
        /// `std::env::consts::OS`.
        os: &'static str,
        /// Every adapter that does exist, or `none`.
        found: String,
    },
    /// The graphics API exists but no adapter answered on it.
    #[error("device `{choice}`: no {wanted} adapter found; adapters found: {found}")]
    NoAdapter {
        /// What was asked for.
        choice: DeviceChoice,
        /// The kind of adapter that was looked for, e.g. `Vulkan`.
        wanted: String,
        /// Every adapter that does exist, or `none`.
        found: String,
    },
    /// Burn's wgpu runtime refused to start on the probed adapter.
    #[error("could not start wgpu on {adapter}: {message}")]
    Init {
        /// The adapter's label.
        adapter: String,
        /// Burn's error.
        message: String,
    },
    /// Burn started on another adapter than the one probed (e.g. `CUBECL_WGPU_DEFAULT_DEVICE`
    /// redirected it).
    #[error("wgpu was asked for {expected} but started on {got}")]
    WrongAdapter {
        /// The probed adapter's label.
        expected: String,
        /// The adapter burn reported.
        got: String,
    },
}

/// One adapter wgpu sees, as `medvqa devices` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AdapterReport {
    /// The adapter's name, e.g. `llvmpipe (LLVM 15.0.6, 256 bits)`.
    pub name: String,
    /// PCI vendor id (or a Khronos vendor id above 0xFFFF, e.g. 0x10005 for Mesa).
    pub vendor_id: u32,
    /// Readable vendor for known ids, otherwise `unknown`.
    pub vendor: String,
    /// Device id within the vendor.
    pub device_id: u32,
    /// Graphics API: `Vulkan`, `Metal`, `Dx12`, `Gl`.
    pub backend: String,
    /// Driver name, e.g. `llvmpipe`.
    pub driver: String,
    /// Driver details, e.g. `Mesa 22.3.6 (LLVM 15.0.6)`.
    pub driver_info: String,
    /// wgpu's device type: `DiscreteGpu`, `IntegratedGpu`, `VirtualGpu`, `Cpu` (a software
    /// rasterizer), `Other`.
    pub device_type: String,
    /// Whether the adapter offers f16 shaders (`wgpu::Features::SHADER_F16`), which is what
    /// burn's wgpu runtime needs to compute in f16.
    pub f16: bool,
    /// A software rasterizer (device type `Cpu`): skipped by `--device auto`.
    pub software: bool,
    /// The label [`SelectedDevice::label`] uses for this adapter.
    pub label: String,
}

/// The CPU backend, as `medvqa devices` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CpuReport {
    /// Always `flex`: the CPU backend this build uses.
    pub backend: String,
    /// Threads in rayon's global pool, which flex runs on (`RAYON_NUM_THREADS` changes it).
    pub threads: usize,
    /// Whether flex reports f16 as supported ([`Device::supports_dtype`]).
    pub f16: bool,
    /// The label [`SelectedDevice::label`] uses for it.
    pub label: String,
}

/// What a [`DeviceChoice`] resolves to on this machine, without starting any runtime.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The backend that would run.
    pub backend: Backend,
    /// The device's label.
    pub label: String,
    /// What the user should be told (see [`SelectedDevice::note`]).
    pub note: Option<String>,
    /// Index into the probed adapters, for wgpu.
    adapter: Option<usize>,
}

/// Every adapter of every graphics API wgpu sees on this machine, in probe order (Vulkan, Metal,
/// DX12, OpenGL; enumeration order within each). Empty when there is none. Starts no runtime.
pub fn list_adapters() -> Vec<AdapterReport> {
    let _guard = lock();
    probe().iter().map(report).collect()
}

/// The CPU backend's report.
pub fn cpu_report() -> CpuReport {
    CpuReport {
        backend: "flex".to_string(),
        threads: rayon::current_num_threads(),
        f16: Device::flex().supports_dtype(DType::F16),
        label: cpu_label(),
    }
}

/// What `choice` would select here, and why, without starting a runtime.
pub fn plan(choice: DeviceChoice) -> Result<Plan, DeviceError> {
    let _guard = lock();
    plan_locked(choice)
}

/// Picks the device for `choice` and starts it.
///
/// - [`DeviceChoice::Auto`]: a hardware adapter through WGPU, else the CPU backend with a
///   [`note`](SelectedDevice::note) saying why.
/// - [`DeviceChoice::Wgpu`]: the best adapter on burn's preferred graphics API, software ones
///   included; an error when there is none.
/// - `Vulkan` / `Metal` / `Dx12`: the best adapter on that API; an error naming what exists when
///   there is none.
/// - [`DeviceChoice::Cpu`]: burn's `flex` backend.
///
/// Safe to call repeatedly: a wgpu runtime is started once per adapter and reused.
pub fn select_device(choice: DeviceChoice) -> Result<SelectedDevice, DeviceError> {
    let _guard = lock();
    let plan = plan_locked(choice)?;
    match plan.adapter {
        None => Ok(SelectedDevice {
            device: Device::flex(),
            backend: Backend::Flex,
            label: plan.label,
            note: plan.note,
            f16: Device::flex().supports_dtype(DType::F16),
        }),
        Some(index) => {
            let (device, f16) = start_wgpu(&probe()[index])?;
            Ok(SelectedDevice {
                device,
                backend: Backend::Wgpu,
                label: plan.label,
                note: plan.note,
                f16,
            })
        }
    }
}

/// The test policy for WGPU: the selected wgpu device ([`DeviceChoice::Wgpu`]), or `None` after
/// printing `SKIP: …` when this machine has no adapter.
///
/// # Panics
/// When `MEDVQA_REQUIRE_WGPU=1` (set by `tools/test.sh`, which installs Mesa's software Vulkan
/// driver) and no adapter can be started: in CI a missing adapter is a failure, not a skip.
pub fn wgpu_for_tests() -> Option<SelectedDevice> {
    match select_device(DeviceChoice::Wgpu) {
        Ok(selected) => Some(selected),
        Err(e) if wgpu_required() => panic!(
            "MEDVQA_REQUIRE_WGPU=1 but no WGPU device could be started: {e}\n\
             (install Mesa's software Vulkan driver: apt-get install mesa-vulkan-drivers libvulkan1)"
        ),
        Err(e) => {
            eprintln!("SKIP: no WGPU device ({e}); set MEDVQA_REQUIRE_WGPU=1 to make this a failure");
            None
        }
    }
}

/// Whether `MEDVQA_REQUIRE_WGPU=1` is set: tests that need a WGPU adapter must then fail, not
/// skip, when there is none.
pub fn wgpu_required() -> bool {
    std::env::var("MEDVQA_REQUIRE_WGPU").is_ok_and(|v| v.trim() == "1")
}

/// One probed adapter.
struct Probed {
    info: wgpu::AdapterInfo,
    f16: bool,
    /// How burn addresses this adapter on its graphics API; `None` when it cannot be addressed
    /// exactly (a second software adapter on one API, or an `Other` adapter beside others:
    /// burn's [`DeviceKind`] has no `Other(n)`).
    kind: Option<DeviceKind>,
}

/// Serialises probing and runtime start-up (see the module docs).
fn lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    // A panic while holding the lock leaves nothing half-written that later callers read.
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The adapters of every graphics API compiled in, probed once per process. Call under [`lock`].
fn probe() -> &'static [Probed] {
    static PROBED: OnceLock<Vec<Probed>> = OnceLock::new();
    PROBED.get_or_init(|| {
        let mut all = Vec::new();
        for api in [
            wgpu::Backend::Vulkan,
            wgpu::Backend::Metal,
            wgpu::Backend::Dx12,
            wgpu::Backend::Gl,
        ] {
            if !api_compiled(api) {
                continue;
            }
            // One instance per API, as cubecl-wgpu probes, so the enumeration order (which the
            // DeviceKind index refers to) is the one burn will see.
            let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
                backends: api.into(),
                ..wgpu::InstanceDescriptor::new_without_display_handle()
            });
            let adapters = block_on(instance.enumerate_adapters(api.into()));
            let infos: Vec<_> = adapters
                .iter()
                .map(|a| (a.get_info(), a.features()))
                .collect();
            let alone = infos.len() == 1;
            let mut seen = [0usize; 5];
            for (info, features) in infos {
                let slot = type_rank(info.device_type) as usize;
                let nth = seen[slot];
                seen[slot] += 1;
                let kind = match info.device_type {
                    wgpu::DeviceType::DiscreteGpu => Some(DeviceKind::DiscreteGpu(nth)),
                    wgpu::DeviceType::IntegratedGpu => Some(DeviceKind::IntegratedGpu(nth)),
                    wgpu::DeviceType::VirtualGpu => Some(DeviceKind::VirtualGpu(nth)),
                    // cubecl-wgpu's `Cpu` kind always takes the first software adapter.
                    wgpu::DeviceType::Cpu => (nth == 0).then_some(DeviceKind::Cpu),
                    // Only reachable through the default selector, which is exact when alone.
                    wgpu::DeviceType::Other => alone.then_some(DeviceKind::DefaultDevice),
                };
                all.push(Probed {
                    f16: features.contains(wgpu::Features::SHADER_F16),
                    info,
                    kind,
                });
            }
        }
        all
    })
}

fn api_compiled(api: wgpu::Backend) -> bool {
    wgpu::Instance::enabled_backend_features().contains(api.into())
}

/// Burn's preference among graphics APIs for an unpinned device (cubecl-wgpu 0.11.3
/// `AutoGraphicsApi::chain`).
fn auto_chain() -> &'static [wgpu::Backend] {
    if cfg!(target_os = "macos") {
        &[wgpu::Backend::Metal]
    } else {
        &[
            wgpu::Backend::Vulkan,
            wgpu::Backend::Dx12,
            wgpu::Backend::Gl,
        ]
    }
}

/// Lower is preferred: hardware before software, discrete before integrated.
fn type_rank(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

fn is_software(info: &wgpu::AdapterInfo) -> bool {
    info.device_type == wgpu::DeviceType::Cpu
}

/// The preferred addressable adapter on `api`, optionally excluding software ones.
fn best_on(adapters: &[Probed], api: wgpu::Backend, allow_software: bool) -> Option<usize> {
    adapters
        .iter()
        .enumerate()
        .filter(|(_, p)| p.info.backend == api && p.kind.is_some())
        .filter(|(_, p)| allow_software || !is_software(&p.info))
        // min_by_key keeps the first of equals: enumeration order breaks ties.
        .min_by_key(|(_, p)| type_rank(p.info.device_type))
        .map(|(i, _)| i)
}

fn plan_locked(choice: DeviceChoice) -> Result<Plan, DeviceError> {
    match choice {
        DeviceChoice::Cpu => Ok(cpu_plan(None)),
        DeviceChoice::Auto => Ok(plan_auto(probe())),
        DeviceChoice::Wgpu => plan_any(probe()),
        DeviceChoice::Vulkan => plan_pinned(choice, wgpu::Backend::Vulkan, probe()),
        DeviceChoice::Metal => plan_pinned(choice, wgpu::Backend::Metal, probe()),
        DeviceChoice::Dx12 => plan_pinned(choice, wgpu::Backend::Dx12, probe()),
    }
}

fn cpu_plan(note: Option<String>) -> Plan {
    Plan {
        backend: Backend::Flex,
        label: cpu_label(),
        note,
        adapter: None,
    }
}

fn wgpu_plan(adapters: &[Probed], index: usize) -> Plan {
    Plan {
        backend: Backend::Wgpu,
        label: wgpu_label(&adapters[index].info),
        note: None,
        adapter: Some(index),
    }
}

/// A hardware adapter on burn's preferred API, else the CPU backend with the reason.
fn plan_auto(adapters: &[Probed]) -> Plan {
    if let Some(index) = auto_chain()
        .iter()
        .find_map(|&api| best_on(adapters, api, false))
    {
        return wgpu_plan(adapters, index);
    }
    let software: Vec<String> = adapters
        .iter()
        .filter(|p| is_software(&p.info))
        .map(|p| wgpu_label(&p.info))
        .collect();
    let note = if software.is_empty() {
        "no WGPU adapter found: using the CPU backend".to_string()
    } else {
        format!(
            "only software WGPU adapters found ({}): using the CPU backend, which runs models far \
             faster than those (pass --device wgpu to use one anyway)",
            software.join("; ")
        )
    };
    cpu_plan(Some(note))
}

/// As burn's automatic selection: the first API with a hardware adapter, else the first with
/// any adapter.
fn plan_any(adapters: &[Probed]) -> Result<Plan, DeviceError> {
    let chain = auto_chain();
    chain
        .iter()
        .find_map(|&api| best_on(adapters, api, false))
        .or_else(|| chain.iter().find_map(|&api| best_on(adapters, api, true)))
        .map(|index| wgpu_plan(adapters, index))
        .ok_or_else(|| DeviceError::NoAdapter {
            choice: DeviceChoice::Wgpu,
            wanted: chain
                .iter()
                .map(|a| format!("{a:?}"))
                .collect::<Vec<_>>()
                .join(" or "),
            found: found_list(adapters),
        })
}

/// The best adapter on `api`, software ones included.
fn plan_pinned(
    choice: DeviceChoice,
    api: wgpu::Backend,
    adapters: &[Probed],
) -> Result<Plan, DeviceError> {
    if !api_compiled(api) {
        return Err(DeviceError::ApiUnavailable {
            choice,
            api: format!("{api:?}"),
            os: std::env::consts::OS,
            found: found_list(adapters),
        });
    }
    best_on(adapters, api, true)
        .map(|index| wgpu_plan(adapters, index))
        .ok_or_else(|| DeviceError::NoAdapter {
            choice,
            wanted: format!("{api:?}"),
            found: found_list(adapters),
        })
}

/// Starts burn's wgpu runtime on `probed` (once per process) and returns the device and whether
/// it computes in f16. Call under [`lock`].
fn start_wgpu(probed: &Probed) -> Result<(Device, bool), DeviceError> {
    static STARTED: Mutex<Vec<(wgpu::Backend, DeviceKind, Device, bool)>> = Mutex::new(Vec::new());
    let label = wgpu_label(&probed.info);
    let Some(kind) = probed.kind.clone() else {
        return Err(DeviceError::Init {
            adapter: label,
            message: "burn cannot address this adapter exactly".into(),
        });
    };
    let api = probed.info.backend;
    let mut started = STARTED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((_, _, device, f16)) = started.iter().find(|(a, k, _, _)| *a == api && *k == kind) {
        return Ok((device.clone(), *f16));
    }
    let pinned = match api {
        wgpu::Backend::Vulkan => WgpuBackend::Vulkan,
        wgpu::Backend::Metal => WgpuBackend::Metal,
        wgpu::Backend::Dx12 => WgpuBackend::Dx12,
        wgpu::Backend::Gl => WgpuBackend::Gl,
        other => {
            return Err(DeviceError::Init {
                adapter: label,
                message: format!("graphics API {other:?} is not supported"),
            })
        }
    };
    let (device, setup) = Device::wgpu_options()
        .device_kind(kind.clone())
        .graphics_api(pinned)
        .init_with_setup()
        .map_err(|e| DeviceError::Init {
            adapter: label.clone(),
            message: e.to_string(),
        })?;
    let got = setup.adapter.get_info();
    if got.backend != api
        || got.name != probed.info.name
        || got.device_type != probed.info.device_type
    {
        return Err(DeviceError::WrongAdapter {
            expected: label,
            got: wgpu_label(&got),
        });
    }
    let f16 = device.supports_dtype(DType::F16);
    started.push((api, kind, device.clone(), f16));
    Ok((device, f16))
}

fn report(p: &Probed) -> AdapterReport {
    let info = &p.info;
    AdapterReport {
        name: info.name.clone(),
        vendor_id: info.vendor,
        vendor: vendor_name(info.vendor).unwrap_or("unknown").to_string(),
        device_id: info.device,
        backend: format!("{:?}", info.backend),
        driver: info.driver.clone(),
        driver_info: info.driver_info.clone(),
        device_type: format!("{:?}", info.device_type),
        f16: p.f16,
        software: is_software(info),
        label: wgpu_label(info),
    }
}

fn wgpu_label(info: &wgpu::AdapterInfo) -> String {
    format!(
        "wgpu/{:?}: {} [{:?}]",
        info.backend, info.name, info.device_type
    )
}

fn cpu_label() -> String {
    format!("cpu (flex, {} threads)", rayon::current_num_threads())
}

fn found_list(adapters: &[Probed]) -> String {
    if adapters.is_empty() {
        return "none".to_string();
    }
    adapters
        .iter()
        .map(|p| wgpu_label(&p.info))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Readable names for vendor ids: PCI-SIG vendor ids, and the Khronos ids above 0xFFFF that
/// Vulkan reports for vendors without one (Vulkan spec, `VkVendorId`).
pub fn vendor_name(id: u32) -> Option<&'static str> {
    Some(match id {
        0x10de => "NVIDIA",
        0x1002 | 0x1022 => "AMD",
        0x8086 => "Intel",
        0x106b => "Apple",
        0x5143 => "Qualcomm",
        0x13b5 => "ARM",
        0x1010 => "Imagination",
        0x14e4 => "Broadcom",
        0x1414 => "Microsoft",
        0x144d => "Samsung",
        0x10001 => "Vivante",
        0x10002 => "VeriSilicon",
        0x10003 => "Kazan",
        0x10004 => "Codeplay",
        0x10005 => "Mesa",
        0x10006 => "PoCL",
        0x10007 => "Mobileye",
        _ => return None,
    })
}

/// Runs a future to completion on this thread. wgpu's native adapter enumeration completes
/// without waiting on anything, so parking is only a safety net.
fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut context = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        match future.as_mut().poll(&mut context) {
            Poll::Ready(output) => return output,
            Poll::Pending => std::thread::park(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vendors_have_names() {
        assert_eq!(vendor_name(0x10de), Some("NVIDIA"));
        assert_eq!(vendor_name(0x10005), Some("Mesa"));
        assert_eq!(vendor_name(0xdead), None);
    }

    #[test]
    fn cpu_never_touches_wgpu() {
        let plan = plan(DeviceChoice::Cpu).unwrap();
        assert_eq!(plan.backend, Backend::Flex);
        assert!(plan.label.starts_with("cpu (flex, "), "{}", plan.label);
    }
}
