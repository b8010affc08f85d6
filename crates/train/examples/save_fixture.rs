//! Loads a model for training and saves it unchanged in the sentence-transformers v6 layout
//! (used by scripts/parity/check_saved_model.py to check the round trip with the reference).
//!
//! Run: `cargo run --release -p splade-train --example save_fixture -- SRC_DIR OUT_DIR`
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (src, out) = match (args.get(1), args.get(2)) {
        (Some(s), Some(o)) => (s, o),
        _ => return Err("usage: save_fixture SRC_DIR OUT_DIR".into()),
    };
    let encoder = splade_encoder::TrainableEncoder::load(
        std::path::Path::new(src),
        &candle_core::Device::Cpu,
    )?;
    splade_train::save::save_model(&encoder, encoder.vars(), std::path::Path::new(out), |_| {
        Ok(())
    })?;
    Ok(())
}
