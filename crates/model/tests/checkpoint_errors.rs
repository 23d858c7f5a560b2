//! A checkpoint that does not match its config is refused with every problem listed at once:
//! missing, mis-shaped and unexpected tensors, named as the checkpoint names them.

mod common;

use burn::prelude::*;
use common::{fixtures_dir, read_tensors};
use medvqa_model::tensor_io::TensorWriter;
use medvqa_model::vision::VisionTransformer;

#[test]
fn missing_mis_shaped_and_unexpected_tensors_are_all_named() {
    let src = fixtures_dir().join("siglip_vision");
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(src.join("config.json"), tmp.path().join("config.json")).unwrap();
    let mut writer = TensorWriter::new();
    for (name, (shape, values)) in read_tensors(&src.join("model.safetensors")) {
        match name.as_str() {
            "vision_model.encoder.layers.1.mlp.fc2.bias" => continue, // missing
            "vision_model.head.probe" => {
                writer.f32(&name, &[1, 32], values).unwrap(); // mis-shaped
            }
            _ => {
                writer.f32(&name, &shape, values).unwrap();
            }
        }
    }
    writer.f32("vision_model.encoder.layers.2.mlp.fc1.weight", &[2, 2], vec![0.0; 4]).unwrap(); // unexpected
    writer.f32("text_model.embeddings.token_embedding.weight", &[2, 2], vec![0.0; 4]).unwrap(); // other tower: ignored
    writer.write(&tmp.path().join("model.safetensors")).unwrap();

    let err = VisionTransformer::load(tmp.path(), &Device::flex()).unwrap_err().to_string();
    eprintln!("{err}");
    assert!(err.contains("1 missing") && err.contains("vision_model.encoder.layers.1.mlp.fc2.bias"), "{err}");
    assert!(err.contains("1 mis-shaped") && err.contains("vision_model.head.probe: expected [1, 1, 32], found [1, 32]"), "{err}");
    assert!(err.contains("1 unexpected") && err.contains("vision_model.encoder.layers.2.mlp.fc1.weight"), "{err}");
    assert!(!err.contains("text_model"), "{err}");
    assert!(err.contains(&tmp.path().display().to_string()), "{err}");
}

#[test]
fn corrupt_weights_and_configs_name_the_file() {
    let src = fixtures_dir().join("clip_vision");
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(src.join("config.json"), tmp.path().join("config.json")).unwrap();
    let bytes = std::fs::read(src.join("model.safetensors")).unwrap();
    std::fs::write(tmp.path().join("model.safetensors"), &bytes[..bytes.len() / 2]).unwrap();
    let err = VisionTransformer::load(tmp.path(), &Device::flex()).unwrap_err().to_string();
    assert!(err.contains("model.safetensors") && err.contains("not a valid safetensors"), "{err}");

    std::fs::write(tmp.path().join("config.json"), br#"{"model_type":"bert"}"#).unwrap();
    let err = VisionTransformer::load(tmp.path(), &Device::flex()).unwrap_err().to_string();
    assert!(err.contains("config.json") && err.contains("unsupported"), "{err}");
}
